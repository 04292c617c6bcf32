"""Admission rules on the replicas' pod templates, added to the generated PodTemplateSpec schema.

What the API server would refuse only when the operator creates a pod (a label value of 64
characters, an init container named like a container, a container named like one the operator
injects) is refused when the MSJob is submitted instead, with a message that says what to change.

CEL's cost budget needs bounds on what the rules walk: the lists and maps they iterate get
``maxItems``/``maxProperties`` far above anything a training pod uses, and container names the
63-character limit Kubernetes enforces anyway.
"""

from __future__ import annotations

from typing import Any

# Containers the operator adds to members; a template may not use these names.
REPORTER_CONTAINER = "msjob-reporter"  # the progress reporter sidecar of worker 0
RUNTIME_CONTAINER = "msjob-runtime"  # the init container that copies msjob_runtime into a member
AGENT_CONTAINER = "msjob-agent"  # reserved for the in-place restart agent
RESERVED_CONTAINER_NAMES = (REPORTER_CONTAINER, RUNTIME_CONTAINER, AGENT_CONTAINER)
MAX_CONTAINERS = 64
MAX_LABELS = 128
LABEL_NAME_MAX = 63
LABEL_KEY_MAX = 317  # a 253-character DNS subdomain prefix, '/', and a 63-character name
# Kubernetes' label syntax (apimachinery's IsQualifiedName and IsValidLabelValue).
_LABEL_NAME = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY_RE = f"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$"
LABEL_VALUE_RE = f"^({_LABEL_NAME})?$"


def _rule(rule: str, message: str) -> dict[str, str]:
    return {"rule": rule, "message": message}


def _label_rules() -> list[dict[str, str]]:
    return [
        _rule(f"self.all(k, k.size() <= {LABEL_KEY_MAX} && k.matches('{LABEL_KEY_RE}') && "
              f"(k.contains('/') ? k.split('/')[0].size() <= 253 : true))",
              "template.metadata.labels: every label key must be a valid label key: an optional DNS subdomain prefix "
              "and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit."),
        _rule(f"self.all(k, self[k].matches('{LABEL_VALUE_RE}'))",
              "template.metadata.labels: every label value must be empty or at most 63 ASCII letters, digits, '-', '_' "
              "or '.', starting and ending with a letter or digit."),
    ]


def _container_rules() -> list[dict[str, str]]:
    reserved = ", ".join(f"'{name}'" for name in RESERVED_CONTAINER_NAMES)
    return [
        _rule("!has(self.initContainers) || self.initContainers.all(i, !self.containers.exists(c, c.name == i.name))",
              "template.spec: container names must be unique across initContainers and containers; rename the init "
              "container (the one named 'mindspore', or the first container, runs MindSpore)."),
        _rule(f"self.containers.all(c, !(c.name in [{reserved}])) && "
              f"(!has(self.initContainers) || self.initContainers.all(c, !(c.name in [{reserved}])))",
              f"template.spec: the container names {reserved} are reserved for the containers the operator adds; "
              "rename yours."),
    ]


def harden_template(schema: dict[str, Any]) -> dict[str, Any]:
    """The PodTemplateSpec schema with the admission rules above (modified in place and returned)."""
    labels = schema["properties"]["metadata"]["properties"]["labels"]
    labels["maxProperties"] = MAX_LABELS
    labels["additionalProperties"]["maxLength"] = LABEL_NAME_MAX
    labels["x-kubernetes-validations"] = _label_rules()
    pod_spec = schema["properties"]["spec"]
    for field in ("containers", "initContainers", "ephemeralContainers"):
        containers = pod_spec["properties"][field]
        containers["maxItems"] = MAX_CONTAINERS
        containers["items"]["properties"]["name"]["maxLength"] = LABEL_NAME_MAX
        for part in ("limits", "requests"):
            quantities = containers["items"]["properties"].get("resources", {}).get("properties", {}).get(part)
            if quantities is not None:
                quantities["maxProperties"] = MAX_LABELS
    pod_spec.setdefault("x-kubernetes-validations", []).extend(_container_rules())
    return schema
