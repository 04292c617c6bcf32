"""Pods of an MSJob: the user's template plus identity, labels, owner and the MindSpore env."""

from __future__ import annotations

import copy
from typing import Any

from ..api import naming
from ..api.enums import LaunchMode, ReplicaType
from ..api.models import MSJobSpec, ReplicaSpec
from . import probes, ranktable
from .containers import main_container
from .devices import request_devices, worker_devices
from .env import launch_mode, merge_env, mindspore_env


def build_pod(
    job: dict[str, Any], spec: MSJobSpec, replica_type: str, replica: ReplicaSpec, index: int, *,
    attempt: int, scheduler_ip: str | None,
) -> dict[str, Any]:
    name = job["metadata"]["name"]
    namespace = job["metadata"]["namespace"]
    template = copy.deepcopy(replica.template or {})
    meta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    pod_name = naming.pod_name(name, replica_type, index)

    labels = {
        **(meta.get("labels") or {}),
        **naming.replica_labels(name, replica_type),
        naming.REPLICA_INDEX_LABEL: str(index),
        naming.ATTEMPT_LABEL: str(attempt),
    }
    # The operator restarts members itself (the whole gang, as a rule): a container restarted in
    # place would rejoin a MindSpore cluster that has already broken up.
    pod_spec["restartPolicy"] = "Never"
    pod_spec.setdefault("hostname", pod_name)
    pod_spec.setdefault("subdomain", naming.headless_service_name(name))
    grace = probes.startup_grace(spec)
    for container in pod_spec.get("containers") or []:
        # Puts the last log lines into the pod status when a container fails, so the job's
        # condition can say why without anyone fetching logs.
        container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
        probes.tolerate_slow_start(container, grace)
    container = main_container(pod_spec)
    if container is not None and replica_type == ReplicaType.WORKER.value:
        request_devices(container, worker_devices(spec))
        if launch_mode(spec) == LaunchMode.RANK_TABLE.value:
            # The ConfigMap volume (not a subPath) so the kubelet updates hccl.json in place.
            pod_spec.setdefault("volumes", []).append(ranktable.volume(name))
            container.setdefault("volumeMounts", []).append(ranktable.volume_mount())
    annotations = dict(meta.get("annotations") or {})
    if container is not None:
        merge_env(container, mindspore_env(
            spec, job=name, namespace=namespace, replica_type=replica_type, index=index, scheduler_ip=scheduler_ip,
        ))
        if scheduler_ip and any(e.get("name") == "MS_SCHED_HOST" and e.get("value") == scheduler_ip
                                for e in container.get("env") or []):
            # Which scheduler address the member dials: if the Service's changes, the member is lost to it.
            annotations[naming.SCHEDULER_ADDRESS_ANNOTATION] = scheduler_ip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [naming.owner_reference(job)],
        },
        "spec": pod_spec,
    }
