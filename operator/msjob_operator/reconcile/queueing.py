"""Reading Kueue's objects: where a Workload stands, what its admission puts on the pods. Pure.

Kueue writes the Workload's status: ``QuotaReserved`` then ``Admitted`` (with ``status.admission``: the
ClusterQueue and, per pod set, the ResourceFlavor of each resource), ``Evicted`` (preempted, deactivated,
...: the quota stays reserved until the framework gives it back), ``Finished`` (written by the framework).
A re-admission resets ``Evicted`` to False.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping, Optional, Sequence

from ..builders.workload import QUEUE_NAME_LABEL
from .observed import controller_owner


class WorkloadState(str, enum.Enum):
    QUEUED = "Queued"  # no quota reserved (never admitted, or requeued after an eviction)
    INACTIVE = "Inactive"  # spec.active false, no quota reserved: Kueue will not admit it
    RESERVED = "QuotaReserved"  # quota reserved, admission checks still pending
    ADMITTED = "Admitted"
    EVICTED = "Evicted"  # evicted, the quota still reserved: the job must stop, then give it back
    FINISHED = "Finished"


@dataclasses.dataclass(frozen=True)
class KueueObserved:
    """Kueue's objects as the operator's caches show them (only with --kueue)."""

    workloads: Sequence[dict[str, Any]] = ()  # Kueue Workloads (the pass keeps those the job controls)
    flavors: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # ResourceFlavors by name
    priority_classes: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # WorkloadPriorityClass
    local_queues: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # the job's namespace's

    def owned_by(self, uid: Optional[str]) -> "KueueObserved":
        mine = [w for w in self.workloads
                if uid and (controller_owner(w.get("metadata") or {}) or {}).get("uid") == uid]
        return dataclasses.replace(self, workloads=mine)


def queue_name(job: dict[str, Any]) -> Optional[str]:
    return ((job.get("metadata") or {}).get("labels") or {}).get(QUEUE_NAME_LABEL) or None


def conditions(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (workload.get("status") or {}).get("conditions") or []}


def is_true(found: Mapping[str, dict[str, Any]], ctype: str) -> bool:
    return (found.get(ctype) or {}).get("status") == "True"


def state(workload: dict[str, Any]) -> WorkloadState:
    found = conditions(workload)
    reserved = is_true(found, "QuotaReserved")
    if is_true(found, "Finished"):
        return WorkloadState.FINISHED
    if is_true(found, "Evicted") and reserved:
        return WorkloadState.EVICTED
    if reserved and is_true(found, "Admitted") and (workload.get("status") or {}).get("admission"):
        return WorkloadState.ADMITTED
    if reserved:
        return WorkloadState.RESERVED
    if (workload.get("spec") or {}).get("active") is False:
        return WorkloadState.INACTIVE
    return WorkloadState.QUEUED


def cluster_queue(workload: dict[str, Any], local_queues: Mapping[str, dict[str, Any]]) -> Optional[str]:
    """The ClusterQueue: the admission's, else the one the Workload's LocalQueue points at."""
    admitted = ((workload.get("status") or {}).get("admission") or {}).get("clusterQueue")
    if admitted:
        return str(admitted)
    local = local_queues.get(str((workload.get("spec") or {}).get("queueName") or ""))
    found = ((local or {}).get("spec") or {}).get("clusterQueue")
    return str(found) if found else None


@dataclasses.dataclass
class PodUpdate:
    """What an admission adds to the pods of one pod set (Kueue's own frameworks do the same)."""

    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    missing_flavors: list[str] = dataclasses.field(default_factory=list)

    def add_tolerations(self, tolerations: Sequence[dict[str, Any]]) -> None:
        self.tolerations.extend(t for t in tolerations if t not in self.tolerations)


def assigned_flavors(workload: dict[str, Any], pod_set: str) -> list[str]:
    for assignment in ((workload.get("status") or {}).get("admission") or {}).get("podSetAssignments") or []:
        if assignment.get("name") == pod_set:
            return sorted(set((assignment.get("flavors") or {}).values()))
    return []


def pod_update(workload: dict[str, Any], pod_set: str, flavors: Mapping[str, dict[str, Any]]) -> PodUpdate:
    """Each assigned ResourceFlavor's nodeLabels (as nodeSelector) and tolerations, then what admission
    checks ask for in ``status.admissionChecks[].podSetUpdates``."""
    update = PodUpdate()
    for name in assigned_flavors(workload, pod_set):
        flavor = flavors.get(name)
        if flavor is None:
            update.missing_flavors.append(name)
            continue
        spec = flavor.get("spec") or {}
        update.node_selector.update(spec.get("nodeLabels") or {})
        update.add_tolerations(spec.get("tolerations") or [])
    for check in (workload.get("status") or {}).get("admissionChecks") or []:
        for entry in check.get("podSetUpdates") or []:
            if entry.get("name") != pod_set:
                continue
            update.labels.update(entry.get("labels") or {})
            update.annotations.update(entry.get("annotations") or {})
            update.node_selector.update(entry.get("nodeSelector") or {})
            update.add_tolerations(entry.get("tolerations") or [])
    return update


def apply_update(pod: dict[str, Any], update: PodUpdate) -> None:
    meta, spec = pod["metadata"], pod["spec"]
    # The operator's own labels stay: they are how it finds its members.
    meta["labels"] = {**update.labels, **meta.get("labels", {})}
    meta["annotations"] = {**meta.get("annotations", {}), **update.annotations}
    if update.node_selector:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **update.node_selector}
    tolerations = list(spec.get("tolerations") or [])
    tolerations.extend(t for t in update.tolerations if t not in tolerations)
    if tolerations:
        spec["tolerations"] = tolerations
