"""What a member of a ``restartStrategy: InPlace`` job gets: pure builders.

* the gang ConfigMap ``<job>-gang`` (``gang_configmap``): the epoch and barrier its agents watch;
* in each member pod (``add_agent``): the runtime's init container (the operator's image copies
  ``msjob_runtime`` into an emptyDir), and the main container's command wrapped by the agent
  (``python3 <runtime>/msjob_runtime/agent.py --grace-seconds G -- <command...>``) with its
  identity (POD_NAME, POD_NAMESPACE) from the downward API;
* each member's Lease ``<pod>-agent`` (``member_lease``), created before its pod: the agent writes
  its reports there (not on the pod, whose every write reaches every pod watcher of the cluster);
* the agent's identity (``prerequisites``): a ServiceAccount ``<job>-agent`` and a Role allowing
  ``get``/``patch`` on the job's own member pods and Leases and ``get``/``list``/``watch`` on its
  gang ConfigMap, all by ``resourceNames``, and a RoleBinding.  A template that names its own
  ``serviceAccountName`` keeps it, and the Role is bound to that account instead.

The Role also covers what worker 0's progress reporter needs (``get``/``patch`` on its own pod),
so worker 0 runs as ``<job>-agent`` when both are on.  PYTHONPATH is left alone: the agent runs
as a plain script and needs no import path, and an image's own ``ENV PYTHONPATH`` stays in force.
See docs/in-place-restart.md for the protocol.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from msjob_runtime.agent_protocol import LEASE_API, LEASE_GROUP, gang_configmap_name, gang_data, member_lease_name

from ..api import naming
from . import rbac
from .containers import main_container
from .env import merge_env
from .rbac import reporter_name
from .reporter import reporter_user
from .runtime import agent_command, agent_env, install_runtime


def agent_name(job_name: str) -> str:
    """Name of the agents' ServiceAccount, Role and RoleBinding."""
    return f"{job_name}-agent"


def gang_configmap(job: Mapping[str, Any], epoch: int, released: int, final: bool = False) -> dict[str, Any]:
    """The ConfigMap ``<job>-gang`` with this data (labelled and owned as the job's child)."""
    name = gang_configmap_name(job["metadata"]["name"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": naming.child_metadata(job, name),
            "data": gang_data(epoch, released, final)}


def member_lease(job: Mapping[str, Any], pod_name: str) -> dict[str, Any]:
    """The Lease ``<pod>-agent`` its member's agents report on (labelled and owned as the job's child; it
    outlives the member's pods, whose UID the agent writes as holder)."""
    return {"apiVersion": LEASE_API, "kind": "Lease",
            "metadata": naming.child_metadata(job, member_lease_name(pod_name)), "spec": {}}


def role(job: Mapping[str, Any], pod_names: Iterable[str]) -> dict[str, Any]:
    """The Role ``<job>-agent``: its members' pods and Leases and its gang ConfigMap, by name, nothing else."""
    job_name = job["metadata"]["name"]
    pod_names = sorted(set(pod_names))
    gang = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
            "resourceNames": [gang_configmap_name(job_name)]}
    leases = {"apiGroups": [LEASE_GROUP], "resources": ["leases"], "verbs": ["get", "patch"],
              "resourceNames": [member_lease_name(pod) for pod in pod_names]}
    return rbac.role(job, pod_names, name=agent_name(job_name), extra_rules=[gang, leases])


def service_account(job: Mapping[str, Any]) -> dict[str, Any]:
    return rbac.service_account(job, agent_name(job["metadata"]["name"]))


def role_binding(job: Mapping[str, Any], accounts: Iterable[str]) -> dict[str, Any]:
    """The RoleBinding ``<job>-agent`` of the Role to ``accounts`` (ServiceAccounts of the job's namespace)."""
    return rbac.role_binding(job, accounts, name=agent_name(job["metadata"]["name"]))


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
    merge_env(main, agent_env())  # MSJOB_NAME is the pod builder's already
    user, group = reporter_user(spec)
    install_runtime(spec, image, run_as_user=user, run_as_group=group)
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
