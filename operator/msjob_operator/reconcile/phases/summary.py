"""The end of every pass: replica counts, the gang scheduler's view, why pods wait, the state."""

from __future__ import annotations

import dataclasses

from ...api import naming
from ...api.enums import ConditionType, ReplicaType
from ...api.status import PodGroupStatus, ReplicaStatus, WaitingStatus
from ...builders.env import replica_count
from .. import conditions as cond
from .. import waiting
from ..context import Gang, PassContext, truncate
from ..gang import current_podgroup, podgroup_state

SCHEDULED_PHASES = ("Running", "Scheduled")  # Volcano's, the Workload API's


def summarize(p: PassContext, gang: Gang, job_blockers: waiting.JobBlockers | None = None) -> None:
    """Write the status fields every pass recomputes from what exists; ``job_blockers`` only while the
    job is starting pods (None after it finished or while it is suspended: nothing waits then)."""
    st = p.status
    old = st.replica_statuses or {}
    replica_statuses: dict[str, ReplicaStatus] = {}
    for rtype, _ in p.spec.ms_replica_specs.items():
        mine = [pod for key, pod in gang.current.items() if key[0] == rtype]
        replica_statuses[rtype] = ReplicaStatus(
            active=sum(pod.active for pod in mine),
            ready=sum(pod.running and pod.ready for pod in mine),
            succeeded=sum(pod.succeeded for pod in mine),
            # A member that ends after its deletion was asked for (cleanup after the job ended, a
            # suspension, a gang restart) was stopped, not failed: SIGTERM's exit code is no fault.
            failed=sum(pod.failed and not pod.deleting for pod in mine),
            restarts=(old[rtype].restarts if rtype in old else None) or None,
            selector=naming.selector_string(naming.replica_labels(p.name, rtype)),
        )
    st.replica_statuses = replica_statuses
    workers = replica_statuses.get(ReplicaType.WORKER.value)
    st.workers = f"{(workers.ready if workers else 0) or 0}/{replica_count(p.spec, ReplicaType.WORKER.value)}"
    gang_status(p)
    if job_blockers is not None:
        update_waiting(p, gang, job_blockers)
    st.state = cond.state(p.conditions)
    st.observed_generation = p.job["metadata"].get("generation")
    st.restart_count = st.restart_count or 0


def gang_status(p: PassContext) -> None:
    """Show the gang scheduler's view (e.g. waiting for resources in a queue) in the job's status."""
    group = current_podgroup(p)
    if group is None:
        p.status.pod_group = None
        return
    phase, message = podgroup_state(p, group)
    entry = PodGroupStatus(name=group["metadata"]["name"], phase=phase)
    if message and entry.phase not in SCHEDULED_PHASES:
        entry.message = truncate(message, 1024)
    previous = p.status.pod_group or PodGroupStatus()
    if (previous.phase, previous.message) != (entry.phase, entry.message):
        queue = (group.get("spec") or {}).get("queue")
        where = f" in queue {queue}" if queue else ""
        text = f"PodGroup {entry.name} is {entry.phase}{where}"
        if entry.message:
            text += f": {entry.message}"
        p.event("Warning" if entry.message else "Normal", f"Gang{entry.phase}", text)
    p.status.pod_group = entry


def gang_blocker(p: PassContext) -> waiting.Cause | None:
    group = p.status.pod_group
    if group is not None and group.phase not in SCHEDULED_PHASES and group.message:
        return waiting.Cause(waiting.GANG_NOT_SCHEDULED, f"PodGroup {group.name} is {group.phase}: {group.message}")
    return None


def update_waiting(p: PassContext, gang: Gang, job_blockers: waiting.JobBlockers) -> None:
    """``status.waiting`` and the Waiting condition; an Event each time a replica type's cause changes."""
    totals = {rtype: replica_count(p.spec, rtype) for rtype, _ in p.spec.ms_replica_specs.items()}
    if job_blockers.gang is None:
        job_blockers = dataclasses.replace(job_blockers, gang=gang_blocker(p))
    causes = waiting.causes_by_type(gang.not_started(), p.name, gang.current, p.refusals, p.holders, job_blockers)
    found = waiting.summarize(causes, totals)
    previous = p.status.waiting
    if found is None:
        p.status.waiting = None
        all_running = not gang.not_started()
        p.condition(ConditionType.WAITING, cond.FALSE, "PodsRunning" if all_running else "PodsStarting",
                    "every pod is running" if all_running else "no known cause holds the pods up")
        return
    now = WaitingStatus.model_validate(found)
    now.since = previous.since if previous is not None and previous.reason == now.reason else p.now_text
    before = (previous.replica_types if previous is not None else None) or {}
    for rtype, entry in (now.replica_types or {}).items():
        if (before[rtype].reason if rtype in before else None) != entry.reason:
            p.event("Warning", entry.reason or "", f"{rtype}: {entry.message}")
    p.status.waiting = now
    p.condition(ConditionType.WAITING, cond.TRUE, now.reason or "", now.message or "")
