"""Helpers to submit and observe MSJobs with the official client (as a user's tooling would)."""

from __future__ import annotations

import copy

from kubernetes.client import CoreV1Api, CustomObjectsApi

from msjob_operator.api import naming

from ..helpers import wait_for

GROUP, VERSION, PLURAL = "mindspore.gitee.com", "v1", "msjobs"
# Annotations of the local cluster's kwok stages: what a fake pod's containers do.
EXIT = "kwok.msjob.test/exit-code"
RUN = "kwok.msjob.test/run-seconds"

# Pods for the fake (kwok) nodes, which accept any pod; test annotations drive what their containers do.
# The node selector keeps them off other nodes (the process node has its own taint anyway).
KWOK_POD_SPEC = {
    "containers": [{"name": "mindspore", "image": "mindspore/mindspore:2.10", "command": ["python", "train.py"]}],
    "nodeSelector": {"type": "kwok"},
}


def template(annotations: dict | None = None, **spec_overrides) -> dict:
    spec = copy.deepcopy(KWOK_POD_SPEC)
    spec.update(spec_overrides)
    return {"metadata": {"annotations": dict(annotations or {}), "labels": {"app": "msjob-test"}}, "spec": spec}


def msjob(name: str, workers: int = 2, scheduler: bool = True, ps: int = 0, worker_annotations: dict | None = None,
          **spec) -> dict:
    replicas = {"Worker": {"replicas": workers, "template": template(worker_annotations)}}
    if scheduler:
        replicas["Scheduler"] = {"replicas": 1, "template": template()}
    if ps:
        replicas["PS"] = {"replicas": ps, "template": template()}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MSJob", "metadata": {"name": name},
            "spec": {"msReplicaSpecs": replicas, **spec}}


class MSJobs:
    def __init__(self, api_client, namespace: str):
        self.custom = CustomObjectsApi(api_client)
        self.core = CoreV1Api(api_client)
        self.ns = namespace

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)

    def get(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def patch(self, name: str, patch: dict) -> dict:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, patch)

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def exists(self, name: str) -> bool:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)["items"]
        return any(i["metadata"]["name"] == name for i in items)

    def pods(self, name: str, include_terminating: bool = True) -> list:
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"{naming.JOB_NAME_LABEL}={name}").items
        if not include_terminating:
            pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        return sorted(pods, key=lambda p: p.metadata.name)

    def services(self, name: str) -> list:
        return self.core.list_namespaced_service(self.ns, label_selector=f"{naming.JOB_NAME_LABEL}={name}").items

    def condition(self, name: str, ctype: str) -> dict | None:
        for c in (self.get(name).get("status") or {}).get("conditions") or []:
            if c["type"] == ctype:
                return c
        return None

    def wait_condition(self, name: str, ctype: str, timeout: float = 60, status: str = "True") -> dict:
        def check():
            c = self.condition(name, ctype)
            return c if c and c["status"] == status else None
        return wait_for(check, timeout=timeout, message=f"MSJob {name} condition {ctype}={status}",
                        describe=lambda: (self.get(name).get("status") if self.exists(name) else "job gone"))

    def wait_pods(self, name: str, count: int, phase: str | None = "Running", timeout: float = 60,
                  attempt: int | None = None) -> list:
        def check():
            pods = self.pods(name, include_terminating=False)
            if attempt is not None:
                pods = [p for p in pods if p.metadata.labels.get(naming.ATTEMPT_LABEL) == str(attempt)]
            if len(pods) == count and (phase is None or all(p.status.phase == phase for p in pods)):
                return pods
            return None
        return wait_for(check, timeout=timeout, message=f"{count} pods of {name} in phase {phase}",
                        describe=lambda: [(p.metadata.name, p.status.phase, p.metadata.labels.get(naming.ATTEMPT_LABEL))
                                          for p in self.pods(name)])

    def annotate_pod(self, pod_name: str, annotations: dict) -> None:
        self.core.patch_namespaced_pod(pod_name, self.ns, {"metadata": {"annotations": annotations}})

    def events(self, name: str) -> list:
        return [e for e in self.core.list_namespaced_event(self.ns).items if e.involved_object.name == name]

    def wait_event(self, name: str, reason_prefix: str, event_type: str | None = None, timeout: float = 30):
        """Events are posted asynchronously, a moment after the status they describe."""
        def find():
            return next((e for e in self.events(name) if e.reason.startswith(reason_prefix)
                         and (event_type is None or e.type == event_type)), None)
        return wait_for(find, timeout=timeout, message=f"an Event {reason_prefix}* about {name}",
                        describe=lambda: [(e.type, e.reason) for e in self.events(name)])
