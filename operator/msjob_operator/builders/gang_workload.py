"""Kubernetes' own gang scheduling (``--gang-scheduler workload-api``): a ``scheduling.k8s.io/v1beta1``
Workload and PodGroup per job, and the pods name their PodGroup in ``spec.schedulingGroup``.

kube-scheduler's GangScheduling plugin (feature gate GenericWorkload) binds a PodGroup's pods only once
``minCount`` of them fit. It counts pods already bound to the group, so pods of an earlier attempt that
are still terminating would let a new gang bind one by one: every gang attempt gets a PodGroup of its own
(``<job>-<attempt>``), and the PodGroups of earlier attempts are deleted (each goes once its pods are gone:
the API server's protection finalizer). The Workload, named after the job, is the template the PodGroups
refer to; the scheduler does not read it.
"""

from __future__ import annotations

from typing import Any

from ..api import naming
from ..api.models import GROUP, KIND, MSJobSpec

WORKLOAD_API_GROUP, WORKLOAD_API_VERSION = "scheduling.k8s.io", "v1beta1"
API_VERSION = f"{WORKLOAD_API_GROUP}/{WORKLOAD_API_VERSION}"
TEMPLATE = "gang"  # the Workload's one pod group template
INITIALLY_SCHEDULED = "PodGroupInitiallyScheduled"  # the PodGroup condition the scheduler sets


def podgroup_name(job: str, attempt: int) -> str:
    return f"{job}-{attempt}"


def _gang(min_count: int) -> dict[str, Any]:
    return {"gang": {"minCount": min_count}}


def build_workload(job: dict[str, Any], min_count: int) -> dict[str, Any]:
    name = job["metadata"]["name"]
    template: dict[str, Any] = {"name": TEMPLATE, "schedulingPolicy": _gang(min_count)}
    return {
        "apiVersion": API_VERSION, "kind": "Workload", "metadata": naming.child_metadata(job, name),
        "spec": {"podGroupTemplates": [template], "controllerRef": {"apiGroup": GROUP, "kind": KIND, "name": name}},
    }


def build_podgroup(job: dict[str, Any], spec: MSJobSpec, min_count: int, attempt: int) -> dict[str, Any]:
    name = job["metadata"]["name"]
    policy = spec.run_policy.scheduling_policy if spec.run_policy else None
    body: dict[str, Any] = {
        "workloadRef": {"workloadName": name, "templateName": TEMPLATE},
        "schedulingPolicy": _gang(min_count),
        # A MindSpore cluster that loses one member is lost whole: disrupt (preempt) the group whole too.
        "disruptionMode": {"all": {}},
    }
    if policy and policy.priority_class:
        body["priorityClassName"] = policy.priority_class
    return {"apiVersion": API_VERSION, "kind": "PodGroup",
            "metadata": naming.child_metadata(job, podgroup_name(name, attempt)),
            "spec": body}


def join(pod: dict[str, Any]) -> None:
    """Point a pod at its attempt's PodGroup (the attempt is in the pod's labels)."""
    labels = pod["metadata"]["labels"]
    pod["spec"]["schedulingGroup"] = {
        "podGroupName": podgroup_name(labels[naming.JOB_NAME_LABEL], int(labels[naming.ATTEMPT_LABEL]))}


def podgroup_state(group: dict[str, Any]) -> tuple[str, str]:
    """(phase, the scheduler's reason when the gang is not scheduled) of a PodGroup, as status.podGroup
    shows it: Scheduled, Unschedulable or Pending."""
    for condition in (group.get("status") or {}).get("conditions") or []:
        if condition.get("type") != INITIALLY_SCHEDULED:
            continue
        if condition.get("status") == "True":
            return "Scheduled", ""
        reason = condition.get("reason") or "Unschedulable"
        return ("Unschedulable" if reason == "Unschedulable" else "Pending",
                f"{reason}: {condition.get('message') or ''}".strip())
    return "Pending", ""
