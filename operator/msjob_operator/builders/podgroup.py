"""The gang: one PodGroup per MSJob, so the whole cluster is scheduled at once or not at all."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..api import naming
from ..api.models import MSJobSpec
from ..config import VOLCANO, WORKLOAD_API, Config, GangSettings
from . import gang_workload, quantity

VOLCANO_GROUP, VOLCANO_VERSION = "scheduling.volcano.sh", "v1beta1"
COSCHEDULING_GROUP, COSCHEDULING_VERSION = "scheduling.x-k8s.io", "v1alpha1"
# What each gang scheduler reads on a pod to find its group.
VOLCANO_GROUP_ANNOTATION = "scheduling.k8s.io/group-name"
VOLCANO_TASK_ANNOTATION = "volcano.sh/task-spec"
COSCHEDULING_LABEL = "scheduling.x-k8s.io/pod-group"


def gang_enabled(spec: MSJobSpec, config: Config) -> bool:
    mode = config.gang.mode
    if mode == "never" or not config.gang_available:
        return False
    return mode == "always" or bool(spec.run_policy and spec.run_policy.scheduling_policy)


def podgroup_api(gang: GangSettings) -> tuple[str, str]:
    if gang.scheduler == WORKLOAD_API:
        return gang_workload.WORKLOAD_API_GROUP, gang_workload.WORKLOAD_API_VERSION
    return (VOLCANO_GROUP, VOLCANO_VERSION) if gang.scheduler == VOLCANO else (COSCHEDULING_GROUP, COSCHEDULING_VERSION)


def pod_count(spec: MSJobSpec) -> int:
    return sum(replica.replicas if replica.replicas is not None else 1 for _, replica in spec.ms_replica_specs.items())


def total_requests(spec: MSJobSpec) -> dict[str, str]:
    """The sum of every pod's requests (limits where no request is given), devices included."""
    totals: dict[str, Decimal] = {}
    for _, replica in spec.ms_replica_specs.items():
        count = replica.replicas if replica.replicas is not None else 1
        pod: dict[str, Decimal] = {}
        for container in (replica.template.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            requests = dict(resources.get("limits") or {})
            requests.update(resources.get("requests") or {})
            quantity.add(pod, requests)
        for name, value in pod.items():
            totals[name] = totals.get(name, Decimal(0)) + value * count
    return {name: quantity.format(value) for name, value in sorted(totals.items())}


def min_member(spec: MSJobSpec) -> int:
    """The gang's size: schedulingPolicy.minAvailable, else every pod of the job."""
    policy = spec.run_policy.scheduling_policy if spec.run_policy else None
    return (policy.min_available if policy and policy.min_available else None) or pod_count(spec)


def build_podgroup(job: dict[str, Any], spec: MSJobSpec, gang: GangSettings) -> dict[str, Any]:
    """Volcano's or coscheduling's PodGroup (the Workload API's are per attempt: builders.gang_workload)."""
    name = job["metadata"]["name"]
    policy = (spec.run_policy.scheduling_policy if spec.run_policy else None)
    group, version = podgroup_api(gang)
    min_resources = (policy.min_resources if policy and policy.min_resources else None) or total_requests(spec)
    body: dict[str, Any] = {"minMember": min_member(spec)}
    if min_resources:
        body["minResources"] = {k: str(v) for k, v in min_resources.items()}
    if gang.scheduler == VOLCANO:
        if policy and policy.queue:
            body["queue"] = policy.queue
        if policy and policy.priority_class:
            body["priorityClassName"] = policy.priority_class
    elif policy and policy.schedule_timeout_seconds:
        body["scheduleTimeoutSeconds"] = policy.schedule_timeout_seconds
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "PodGroup",
        "metadata": {
            "name": name,
            "namespace": job["metadata"]["namespace"],
            "labels": naming.job_labels(name),
            "ownerReferences": [naming.owner_reference(job)],
        },
        "spec": body,
    }


def join_gang(pod: dict[str, Any], spec: MSJobSpec, replica_type: str, gang: GangSettings) -> None:
    """Point a pod at its job's PodGroup and at the gang scheduler."""
    job = pod["metadata"]["labels"][naming.JOB_NAME_LABEL]
    if gang.pod_scheduler_name:
        pod["spec"]["schedulerName"] = gang.pod_scheduler_name
    if gang.scheduler == WORKLOAD_API:
        gang_workload.join(pod)
    elif gang.scheduler == VOLCANO:
        pod["metadata"]["annotations"][VOLCANO_GROUP_ANNOTATION] = job
        pod["metadata"]["annotations"][VOLCANO_TASK_ANNOTATION] = naming.replica_label(replica_type)
    else:
        pod["metadata"]["labels"][COSCHEDULING_LABEL] = job
    policy = spec.run_policy.scheduling_policy if spec.run_policy else None
    if policy and policy.priority_class and not pod["spec"].get("priorityClassName"):
        pod["spec"]["priorityClassName"] = policy.priority_class
