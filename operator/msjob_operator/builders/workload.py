"""The Kueue Workload of an MSJob, and the writes the operator makes to it: pure builders.

The operator is Kueue's job framework for MSJobs (Kueue knows nothing of the MSJob kind): it creates one
Workload per Kueue-managed job, owned by the job (garbage-collected with it), with one pod set per replica
type; Kueue admits it against its ClusterQueue's quota; the operator runs the job only while it is
admitted, gives the quota back after an eviction and marks the Workload Finished when the job ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
from decimal import Decimal
from typing import Any, Literal, Optional

from ..api import naming
from ..api.models import GROUP, KIND
from . import quantity

KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"
KUEUE_API_VERSION = f"{KUEUE_GROUP}/{KUEUE_VERSION}"
# Kueue's conventions for job frameworks: labels on the job (the MSJob) name its LocalQueue and priority.
QUEUE_NAME_LABEL = f"{KUEUE_GROUP}/queue-name"
PRIORITY_CLASS_LABEL = f"{KUEUE_GROUP}/priority-class"
# On the Workload: Kueue quotes it in its messages ("JobUID: ...").
JOB_UID_LABEL = f"{KUEUE_GROUP}/job-uid"
# On a Workload the operator deactivated because the job was suspended (runPolicy.suspend): only such a
# Workload is activated again on resume (one deactivated by an administrator or by Kueue stays so).
DEACTIVATED_ANNOTATION = f"{GROUP}/deactivated-for-suspend"
FIELD_MANAGER = "msjob-operator"  # server-side apply of the Workload's Finished condition
# The pod template fields Kueue reads to count quota and to match flavors.
_TEMPLATE_SPEC_FIELDS = ("nodeSelector", "affinity", "tolerations", "priorityClassName", "runtimeClassName",
                         "overhead", "restartPolicy")
_CONTAINER_FIELDS = ("name", "image", "resources", "restartPolicy")


def workload_name(job: dict[str, Any]) -> str:
    """``msjob-<job>-<5 hex>``, like Kueue's own frameworks: deterministic, and unique per job incarnation
    (the hash covers the job's UID), so a restarted operator finds the Workload it created."""
    meta = job["metadata"]
    digest = hashlib.sha1("\n".join((KIND, GROUP, meta["name"], meta["uid"])).encode()).hexdigest()
    return f"{KIND.lower()}-{meta['name']}-{digest[:5]}"


def pod_set_name(replica_type: str) -> str:
    return naming.replica_label(replica_type)


def _slim(container: dict[str, Any]) -> dict[str, Any]:
    return {k: container[k] for k in _CONTAINER_FIELDS if k in container}


def pod_set(replica_type: str, count: int, pod: dict[str, Any]) -> dict[str, Any]:
    """One pod set: ``count`` pods like ``pod`` (as the operator would create it, devices included), kept
    to what Kueue reads: the containers' resources and the fields that match flavors."""
    spec = pod.get("spec") or {}
    template: dict[str, Any] = {k: spec[k] for k in _TEMPLATE_SPEC_FIELDS if k in spec}
    template["containers"] = [_slim(c) for c in spec.get("containers") or []]
    if spec.get("initContainers"):
        template["initContainers"] = [_slim(c) for c in spec["initContainers"]]
    return {"name": pod_set_name(replica_type), "count": count, "template": {"spec": template}}


def build_workload(job: dict[str, Any], *, queue: str, pod_sets: list[dict[str, Any]],
                   priority: Optional[tuple[str, int]] = None, active: bool = True) -> dict[str, Any]:
    meta = job["metadata"]
    spec: dict[str, Any] = {"queueName": queue, "podSets": pod_sets}
    if priority is not None:
        # Kueue's CRD requires the value beside the reference: the framework resolves the class.
        spec["priorityClassRef"] = {"group": KUEUE_GROUP, "kind": "WorkloadPriorityClass", "name": priority[0]}
        spec["priority"] = priority[1]
    metadata: dict[str, Any] = {
        "name": workload_name(job),
        "namespace": meta["namespace"],
        "labels": {**naming.job_labels(meta["name"]), JOB_UID_LABEL: meta["uid"]},
        "ownerReferences": [naming.owner_reference(job)],
    }
    if not active:
        spec["active"] = False
        metadata["annotations"] = {DEACTIVATED_ANNOTATION: "true"}
    return {"apiVersion": KUEUE_API_VERSION, "kind": "Workload", "metadata": metadata, "spec": spec}


PodSetShape = tuple[str, int, tuple[tuple[str, Decimal], ...]]


def pod_set_shapes(pod_sets: list[dict[str, Any]]) -> list[PodSetShape]:
    """What a Workload was admitted for: each pod set's name, count and per-pod requests (limits where no
    request is given), normalized, so the Workload a job has can be compared with the one it needs."""
    shapes = []
    for entry in pod_sets:
        totals: dict[str, Decimal] = {}
        template = (entry.get("template") or {}).get("spec") or {}
        for container in [*(template.get("containers") or []), *(template.get("initContainers") or [])]:
            resources = container.get("resources") or {}
            quantity.add(totals, {**(resources.get("limits") or {}), **(resources.get("requests") or {})})
        shapes.append((str(entry.get("name")), int(entry.get("count") or 0), tuple(sorted(totals.items()))))
    return sorted(shapes)


@dataclasses.dataclass(frozen=True)
class WorkloadWrite:
    """One write to an existing Workload of the job, applied before the job's pods are touched.

    ``apply-status``: server-side apply of ``body`` to the status subresource (our own conditions only:
    Kueue's stay, the list is a map keyed by type); ``patch-status``: a merge patch of the status,
    conditional on ``resource_version`` (a Conflict makes the pass plan again from the new Workload);
    ``patch``: a merge patch of the Workload (spec.active, spec.queueName); ``delete``: only the
    incarnation with ``uid``."""

    name: str
    what: Literal["apply-status", "patch-status", "patch", "delete"]
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    resource_version: Optional[str] = None
    uid: Optional[str] = None


def condition(ctype: str, status: bool, reason: str, message: str, now: str) -> dict[str, Any]:
    return {"type": ctype, "status": "True" if status else "False", "reason": reason, "message": message[:32768],
            "lastTransitionTime": now}


def finish(name: str, succeeded: bool, message: str, now: str) -> WorkloadWrite:
    """``Finished=True`` (reason Succeeded or Failed): Kueue releases the job's quota."""
    body = {"apiVersion": KUEUE_API_VERSION, "kind": "Workload", "metadata": {"name": name},
            "status": {"conditions": [condition("Finished", True, "Succeeded" if succeeded else "Failed", message,
                                                now)]}}
    return WorkloadWrite(name, "apply-status", body)


def release(workload: dict[str, Any], evicted: dict[str, Any], now: str) -> WorkloadWrite:
    """After an eviction, once the job's pods are gone: give the quota back and requeue, as Kueue's own
    frameworks do (no admission; QuotaReserved False/Pending; Admitted False/NoReservation; Requeued,
    True after a preemption or node failures)."""
    reason, message = str(evicted.get("reason") or "Evicted"), str(evicted.get("message") or "")
    replaced = {"QuotaReserved", "Admitted", "Requeued"}
    conditions = [c for c in (workload.get("status") or {}).get("conditions") or [] if c.get("type") not in replaced]
    conditions += [
        condition("QuotaReserved", False, "Pending", message, now),
        condition("Admitted", False, "NoReservation", "The workload has no reservation", now),
        condition("Requeued", reason in ("Preempted", "NodeFailures"), reason, message, now),
    ]
    meta = workload["metadata"]
    return WorkloadWrite(meta["name"], "patch-status", {"status": {"admission": None, "conditions": conditions}},
                         resource_version=meta.get("resourceVersion"))


def set_active(workload: dict[str, Any], active: bool) -> WorkloadWrite:
    """Deactivate a suspended job's Workload (Kueue evicts it and admits no more), or activate it again."""
    body = {"metadata": {"annotations": {DEACTIVATED_ANNOTATION: None if active else "true"}},
            "spec": {"active": active}}
    return WorkloadWrite(workload["metadata"]["name"], "patch", body)


def set_queue(workload: dict[str, Any], queue: str) -> WorkloadWrite:
    return WorkloadWrite(workload["metadata"]["name"], "patch", {"spec": {"queueName": queue}})


def delete(workload: dict[str, Any]) -> WorkloadWrite:
    meta = workload["metadata"]
    return WorkloadWrite(meta["name"], "delete", uid=meta.get("uid"))
