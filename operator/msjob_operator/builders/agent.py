"""What a member of a ``restartStrategy: InPlace`` job gets: pure builders.

* the gang ConfigMap ``<job>-gang`` (``gang_configmap``): the epoch and barrier its agents watch;
* in each member pod (``add_agent``): the runtime's init container (the operator's image copies
  ``msjob_runtime`` into an emptyDir), and the main container's command wrapped by the agent
  (``python3 <runtime>/msjob_runtime/agent.py --grace-seconds G -- <command...>``) with its
  identity (POD_NAME, POD_NAMESPACE) from the downward API;
* the agent's identity (``prerequisites``): a ServiceAccount ``<job>-agent`` and a Role allowing
  ``get``/``patch`` on the job's own member pods and ``get``/``list``/``watch`` on its gang
  ConfigMap, all by ``resourceNames``, and a RoleBinding.  A template that names its own
  ``serviceAccountName`` keeps it, and the Role is bound to that account instead.

The Role also covers what worker 0's progress reporter needs (``get``/``patch`` on its own pod),
so worker 0 runs as ``<job>-agent`` when both are on.  PYTHONPATH is left alone: the agent runs
as a plain script and needs no import path, and an image's own ``ENV PYTHONPATH`` stays in force.
See docs/in-place-restart.md for the protocol.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from msjob_runtime.agent_protocol import JOB_ENV, gang_configmap_name, gang_data

from ..api import naming
from .containers import main_container
from .rbac import RBAC_API_VERSION, reporter_name
from .reporter import reporter_user
from .runtime import (
    INSTALL_CONTAINER,
    RUNTIME_VOLUME,
    agent_command,
    agent_env,
    install_container,
    runtime_mount,
    runtime_volume,
)


def agent_name(job_name: str) -> str:
    """Name of the agents' ServiceAccount, Role and RoleBinding."""
    return f"{job_name}-agent"


def _metadata(job: Mapping[str, Any], name: str) -> dict[str, Any]:
    meta = job["metadata"]
    out = {"name": name, "labels": naming.job_labels(meta["name"]),
           "ownerReferences": [naming.owner_reference(dict(job))]}
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    return out


def gang_configmap(job: Mapping[str, Any], epoch: int, released: int, final: bool = False) -> dict[str, Any]:
    """The ConfigMap ``<job>-gang`` with this data (labelled and owned as the job's child)."""
    name = gang_configmap_name(job["metadata"]["name"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(job, name),
            "data": gang_data(epoch, released, final)}


def role(job: Mapping[str, Any], pod_names: Iterable[str]) -> dict[str, Any]:
    """The Role ``<job>-agent``: its members' pods and its gang ConfigMap, by name, nothing else."""
    names = sorted(set(pod_names))
    if not names:
        raise ValueError("the agents' Role needs at least one pod name (an empty resourceNames allows every pod)")
    job_name = job["metadata"]["name"]
    return {
        "apiVersion": RBAC_API_VERSION, "kind": "Role", "metadata": _metadata(job, agent_name(job_name)),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": names},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
             "resourceNames": [gang_configmap_name(job_name)]},
        ],
    }


def service_account(job: Mapping[str, Any]) -> dict[str, Any]:
    name = agent_name(job["metadata"]["name"])
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(job, name)}


def role_binding(job: Mapping[str, Any], accounts: Iterable[str]) -> dict[str, Any]:
    """The RoleBinding ``<job>-agent`` of the Role to ``accounts`` (ServiceAccounts of the job's namespace)."""
    meta = _metadata(job, agent_name(job["metadata"]["name"]))
    namespace = job["metadata"].get("namespace")
    subjects = [{"kind": "ServiceAccount", "name": name, **({"namespace": namespace} if namespace else {})}
                for name in sorted(set(accounts))]
    return {"apiVersion": RBAC_API_VERSION, "kind": "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
            "subjects": subjects}


def pod_account(pod_spec: Mapping[str, Any], job_name: str) -> str:
    """The ServiceAccount a member runs as: the template's own, else the agents'."""
    own = pod_spec.get("serviceAccountName")
    return own if own and own != reporter_name(job_name) else agent_name(job_name)


def add_agent(pod: dict[str, Any], image: str) -> None:
    """Run the member's main container under the agent (in place: the pod dict is changed).

    ValueError when the main container has no ``command`` (admission refuses such jobs)."""
    job_name = pod["metadata"]["labels"][naming.JOB_NAME_LABEL]
    spec = pod["spec"]
    main = main_container(spec)
    if main is None:
        raise ValueError("the pod has no container to run under the agent")
    main["command"] = agent_command(main, spec.get("terminationGracePeriodSeconds"))
    taken = {e.get("name") for e in main.get("env") or []}
    env = main.setdefault("env", [])
    env.extend(e for e in agent_env() if e["name"] not in taken)
    if JOB_ENV not in taken and not any(e.get("name") == JOB_ENV for e in env):
        env.append({"name": JOB_ENV, "value": job_name})
    mounts = main.setdefault("volumeMounts", [])
    if not any(m.get("name") == RUNTIME_VOLUME for m in mounts):
        mounts.append(runtime_mount())
    volumes = spec.setdefault("volumes", [])
    if not any(v.get("name") == RUNTIME_VOLUME for v in volumes):
        volumes.append(runtime_volume())
    inits = spec.setdefault("initContainers", [])
    if not any(c.get("name") == INSTALL_CONTAINER for c in inits):
        user, group = reporter_user(spec)
        # Before the user's own init containers: a native sidecar among them may need the runtime too.
        inits.insert(0, install_container(image, run_as_user=user, run_as_group=group))
    spec["serviceAccountName"] = pod_account(spec, job_name)


def prerequisites(job: Mapping[str, Any], pod_names: Iterable[str],
                  accounts: Iterable[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(objects to create if missing, objects to write whole): the agents' ServiceAccount (when a member
    runs as it); the Role and RoleBinding, written whole since the pod names follow the job's size and
    the accounts its templates."""
    job_name = job["metadata"]["name"]
    accounts = sorted(set(accounts)) or [agent_name(job_name)]
    created = [service_account(job)] if agent_name(job_name) in accounts else []
    return created, [role(job, pod_names), role_binding(job, accounts)]
