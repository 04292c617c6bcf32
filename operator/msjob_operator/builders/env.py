"""The environment MindSpore's processes need to form a cluster (dynamic networking).

See docs/mindspore-contract in the README: ``MS_SCHED_HOST`` must be a literal IP.  The scheduler
binds its own pod IP (downward API); everyone else dials the scheduler Service's ClusterIP, which
exists before any pod is created and survives a scheduler restart.
"""

from __future__ import annotations

from ..api.models import DEFAULT_SCHEDULER_PORT, MS_ROLES, MSJobSpec

SCHEDULER_PORT_NAME = "msjob-port"
MAIN_CONTAINER = "mindspore"


def main_container(pod_spec: dict) -> dict | None:
    """The container MindSpore runs in: the one named 'mindspore', else the first."""
    containers = pod_spec.get("containers") or []
    for container in containers:
        if container.get("name") == MAIN_CONTAINER:
            return container
    return containers[0] if containers else None


def scheduler_port(spec: MSJobSpec) -> int:
    """The container port named 'msjob-port' (as ms-operator reads it), else the spec's setting, else 2222."""
    for _, replica in spec.ms_replica_specs.items():
        for container in (replica.template.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == SCHEDULER_PORT_NAME and port.get("containerPort"):
                    return int(port["containerPort"])
    if spec.mindspore and spec.mindspore.scheduler_port:
        return spec.mindspore.scheduler_port
    return DEFAULT_SCHEDULER_PORT


def replica_count(spec: MSJobSpec, replica_type: str) -> int:
    for rtype, replica in spec.ms_replica_specs.items():
        if rtype == replica_type:
            return replica.replicas if replica.replicas is not None else 1
    return 0


def mindspore_env(
    spec: MSJobSpec, *, job: str, namespace: str, replica_type: str, index: int, scheduler_ip: str | None
) -> list[dict]:
    """Env entries for one member, in a stable order."""
    env: list[dict] = [
        {"name": "MSJOB_NAME", "value": job},
        {"name": "MSJOB_NAMESPACE", "value": namespace},
        {"name": "MSJOB_REPLICA_TYPE", "value": replica_type},
        {"name": "MSJOB_REPLICA_INDEX", "value": str(index)},
    ]
    has_scheduler = replica_count(spec, "Scheduler") > 0
    if not has_scheduler:
        # Without a scheduler there is no dynamic-networking cluster to join.
        return env
    env.append({"name": "MS_ROLE", "value": MS_ROLES[replica_type]})
    if replica_type == "Scheduler":
        env.append({"name": "MS_SCHED_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    else:
        if not scheduler_ip:
            raise ValueError("the scheduler Service's ClusterIP is needed before non-scheduler pods can be built")
        env.append({"name": "MS_SCHED_HOST", "value": scheduler_ip})
    env.append({"name": "MS_SCHED_PORT", "value": str(scheduler_port(spec))})
    env.append({"name": "MS_WORKER_NUM", "value": str(replica_count(spec, "Worker"))})
    servers = replica_count(spec, "PS")
    if servers:
        env.append({"name": "MS_SERVER_NUM", "value": str(servers)})
    if replica_type == "Worker":
        # A numeric MS_NODE_ID is the worker's rank: ranks then follow replica indexes.
        env.append({"name": "MS_NODE_ID", "value": str(index)})
    settings = spec.mindspore
    if settings and settings.cluster_timeout_seconds:
        env.append({"name": "MS_TOPO_TIMEOUT", "value": str(settings.cluster_timeout_seconds)})
    if settings and settings.enable_recovery:
        env.append({"name": "MS_ENABLE_RECOVERY", "value": "1"})
    return env


def merge_env(container: dict, injected: list[dict]) -> None:
    """Add injected variables the user has not set; the user's own values always win."""
    existing = container.setdefault("env", [])
    taken = {item.get("name") for item in existing}
    existing.extend(item for item in injected if item["name"] not in taken)
