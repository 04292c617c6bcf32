"""The environment MindSpore's processes need to form a cluster (dynamic networking).

See docs/mindspore-contract in the README: ``MS_SCHED_HOST`` must be a literal IP.  The scheduler
binds its own pod IP (downward API); everyone else dials the scheduler Service's ClusterIP, which
exists before any pod is created and survives a scheduler restart.
"""

from __future__ import annotations

from typing import Any

from ..api.enums import MS_ROLES, LaunchMode, ReplicaType
from ..api.limits import DEFAULT_SCHEDULER_PORT
from ..api.models import MSJobSpec
from .devices import processes_per_pod, worker_devices

SCHEDULER_PORT_NAME = "msjob-port"
MSRUN_LOG_DIR = "/tmp/msrun-logs"
DEFAULT_MSRUN_CLUSTER_TIMEOUT = 600


def launch_mode(spec: MSJobSpec) -> str:
    return (spec.mindspore.launch_mode if spec.mindspore else None) or LaunchMode.DYNAMIC.value


def needs_scheduler_service(spec: MSJobSpec) -> bool:
    """Dynamic mode with a Scheduler replica, or msrun (whose scheduler lives in worker 0)."""
    mode = launch_mode(spec)
    with_scheduler = mode == LaunchMode.DYNAMIC.value and replica_count(spec, ReplicaType.SCHEDULER.value) > 0
    return with_scheduler or mode == LaunchMode.MSRUN.value


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
) -> list[dict[str, Any]]:
    """Env entries for one member, in a stable order."""
    env: list[dict[str, Any]] = [
        {"name": "MSJOB_NAME", "value": job},
        {"name": "MSJOB_NAMESPACE", "value": namespace},
        {"name": "MSJOB_REPLICA_TYPE", "value": replica_type},
        {"name": "MSJOB_REPLICA_INDEX", "value": str(index)},
    ]
    devices = worker_devices(spec)
    if replica_type == ReplicaType.WORKER.value and devices.resource:
        env.append({"name": "MSJOB_DEVICE_RESOURCE", "value": devices.resource})
        env.append({"name": "MSJOB_DEVICES_PER_POD", "value": str(devices.per_pod)})
        timeout = spec.mindspore.cluster_timeout_seconds if spec.mindspore else None
        if devices.ascend and timeout:
            # HCCL's own link set-up deadline should not be shorter than the cluster's.
            env.append({"name": "HCCL_CONNECT_TIMEOUT", "value": str(timeout)})
    mode = launch_mode(spec)
    if mode == LaunchMode.MSRUN.value:
        return env + msrun_env(spec, index=index, scheduler_ip=scheduler_ip)
    if mode == LaunchMode.RANK_TABLE.value:
        from .ranktable import rank_env

        per_pod = processes_per_pod(spec)
        return env + rank_env(index, per_pod, per_pod * replica_count(spec, ReplicaType.WORKER.value))
    has_scheduler = replica_count(spec, ReplicaType.SCHEDULER.value) > 0
    if not has_scheduler:
        # Without a scheduler there is no dynamic-networking cluster to join.
        return env
    env.append({"name": "MS_ROLE", "value": MS_ROLES[replica_type]})
    if replica_type == ReplicaType.SCHEDULER.value:
        env.append({"name": "MS_SCHED_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    else:
        if not scheduler_ip:
            raise ValueError("the scheduler Service's ClusterIP is needed before non-scheduler pods can be built")
        env.append({"name": "MS_SCHED_HOST", "value": scheduler_ip})
    env.append({"name": "MS_SCHED_PORT", "value": str(scheduler_port(spec))})
    processes = replica_count(spec, ReplicaType.WORKER.value) * processes_per_pod(spec)
    env.append({"name": "MS_WORKER_NUM", "value": str(processes)})
    servers = replica_count(spec, ReplicaType.PS.value)
    if servers:
        env.append({"name": "MS_SERVER_NUM", "value": str(servers)})
    if servers and replica_type in (ReplicaType.WORKER.value, ReplicaType.PS.value):
        # With parameter servers, numeric ids cannot work on MindSpore 2.10: a numeric id is the rank
        # within its role, yet ids must be unique across roles (worker 0 and server 0 collide). Any
        # non-numeric id makes the scheduler reassign every rank by (host IP, id) once all have
        # registered, and workers that joined with numeric ids keep their old rank: collectives
        # then hang. Deterministic names are taken as ids, the reassigned ranks honoured.
        env.append({"name": "MS_NODE_ID", "value": f"{replica_type.lower()}-{index}"})
    elif replica_type == ReplicaType.WORKER.value:
        # A numeric MS_NODE_ID is the worker's rank: ranks then follow replica indexes.
        env.append({"name": "MS_NODE_ID", "value": str(index)})
    settings = spec.mindspore
    if settings and settings.cluster_timeout_seconds:
        env.append({"name": "MS_TOPO_TIMEOUT", "value": str(settings.cluster_timeout_seconds)})
    if settings and settings.enable_recovery:
        env.append({"name": "MS_ENABLE_RECOVERY", "value": "1"})
    return env


def msrun_env(spec: MSJobSpec, *, index: int, scheduler_ip: str | None) -> list[dict[str, Any]]:
    """What `msrun` needs in worker pod `index`; MSRUN_ARGS holds them as msrun flags.

    msrun starts the scheduler itself where --master_addr is a local address: worker 0 gets its own
    pod IP, every other pod the ClusterIP of the Service in front of worker 0.
    """
    per_pod = processes_per_pod(spec)
    total = per_pod * replica_count(spec, ReplicaType.WORKER.value)
    timeout = (spec.mindspore.cluster_timeout_seconds if spec.mindspore else None) or DEFAULT_MSRUN_CLUSTER_TIMEOUT
    if index == 0:
        master = {"name": "MS_SCHED_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    elif scheduler_ip:
        master = {"name": "MS_SCHED_HOST", "value": scheduler_ip}
    else:
        raise ValueError("the msrun master Service's ClusterIP is needed before worker pods 1.. can be built")
    return [
        master,
        {"name": "MS_SCHED_PORT", "value": str(scheduler_port(spec))},
        {"name": "MS_WORKER_NUM", "value": str(total)},
        {"name": "MS_LOCAL_WORKER", "value": str(per_pod)},
        {"name": "MS_NODE_RANK", "value": str(index)},
        {"name": "MSRUN_CLUSTER_TIMEOUT", "value": str(timeout)},
        {"name": "MSRUN_LOG_DIR", "value": MSRUN_LOG_DIR},
        # Kubernetes expands $(VAR) of earlier entries, so the flags follow the values above.
        {"name": "MSRUN_ARGS", "value": (
            "--worker_num=$(MS_WORKER_NUM) --local_worker_num=$(MS_LOCAL_WORKER) --node_rank=$(MS_NODE_RANK) "
            "--master_addr=$(MS_SCHED_HOST) --master_port=$(MS_SCHED_PORT) --join=True "
            "--cluster_time_out=$(MSRUN_CLUSTER_TIMEOUT) --log_dir=$(MSRUN_LOG_DIR)")},
    ]


def merge_env(container: dict[str, Any], injected: list[dict[str, Any]]) -> None:
    """Add injected variables the user has not set; the user's own values always win."""
    existing = container.setdefault("env", [])
    taken = {item.get("name") for item in existing}
    existing.extend(item for item in injected if item["name"] not in taken)
