"""Services of an MSJob: a ClusterIP in front of the scheduler, and a headless Service for pod DNS."""

from __future__ import annotations

from typing import Any

from ..api import naming
from ..api.enums import LaunchMode, ReplicaType
from ..api.models import MSJobSpec
from .env import SCHEDULER_PORT_NAME, launch_mode, needs_scheduler_service, scheduler_port


def _service(job: dict[str, Any], name: str, labels: dict[str, Any], selector: dict[str, Any], port: int,
             **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": job["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [naming.owner_reference(job)],
        },
        "spec": {
            "selector": selector,
            "ports": [{"name": SCHEDULER_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}],
            **spec,
        },
    }


def build_services(job: dict[str, Any], spec: MSJobSpec, scheduler_ip: str | None = None) -> list[dict[str, Any]]:
    """The job's Services; ``scheduler_ip`` pins the scheduler Service's ClusterIP (the address the
    running members were given, when the Service must be created again)."""
    name = job["metadata"]["name"]
    port = scheduler_port(spec)
    services = [
        # Per-pod DNS names <pod>.<job>.<namespace>.svc, published before pods are ready.
        _service(job, naming.headless_service_name(name), naming.job_labels(name), naming.job_labels(name), port,
                 clusterIP="None", publishNotReadyAddresses=True),
    ]
    if needs_scheduler_service(spec):
        # The stable literal IP that every member uses as MS_SCHED_HOST: in front of the Scheduler
        # pod, or of worker 0 where msrun runs the scheduler.
        if launch_mode(spec) == LaunchMode.MSRUN.value:
            selector = {**naming.replica_labels(name, ReplicaType.WORKER.value), naming.REPLICA_INDEX_LABEL: "0"}
        else:
            selector = naming.replica_labels(name, ReplicaType.SCHEDULER.value)
        pinned = {"clusterIP": scheduler_ip} if scheduler_ip else {}
        services.append(_service(
            job, naming.scheduler_service_name(name), naming.replica_labels(name, ReplicaType.SCHEDULER.value),
            selector, port,
            type="ClusterIP", **pinned,
        ))
    return services
