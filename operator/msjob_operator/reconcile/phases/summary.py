"""The end of every pass: replica counts, the gang scheduler's view, why pods wait, the state."""

from __future__ import annotations

import dataclasses

from ...api import naming
from ...builders.env import replica_count
from .. import conditions as cond
from .. import waiting
from ..context import Gang, PassContext, truncate


def summarize(p: PassContext, gang: Gang, job_blockers: waiting.JobBlockers | None = None) -> None:
    """Write the status fields every pass recomputes from what exists; ``job_blockers`` only while the
    job is starting pods (None after it finished or while it is suspended: nothing waits then)."""
    replica_statuses = {}
    for rtype, _ in p.spec.ms_replica_specs.items():
        mine = [pod for key, pod in gang.current.items() if key[0] == rtype]
        old = (p.status.get("replicaStatuses") or {}).get(rtype) or {}
        entry = {
            "active": sum(pod.active for pod in mine),
            "ready": sum(pod.running and pod.ready for pod in mine),
            "succeeded": sum(pod.succeeded for pod in mine),
            # A member that ends after its deletion was asked for (cleanup after the job ended, a
            # suspension, a gang restart) was stopped, not failed: SIGTERM's exit code is no fault.
            "failed": sum(pod.failed and not pod.deleting for pod in mine),
            "selector": naming.selector_string(naming.replica_labels(p.name, rtype)),
        }
        if old.get("restarts"):
            entry["restarts"] = old["restarts"]
        replica_statuses[rtype] = entry
    p.status["replicaStatuses"] = replica_statuses
    workers = replica_statuses.get("Worker", {})
    p.status["workers"] = f"{workers.get('ready', 0)}/{replica_count(p.spec, 'Worker')}"
    gang_status(p)
    if job_blockers is not None:
        update_waiting(p, gang, job_blockers)
    p.status["state"] = cond.state(p.conditions)
    p.status["observedGeneration"] = p.job["metadata"].get("generation")
    p.status.setdefault("restartCount", 0)


def gang_status(p: PassContext) -> None:
    """Show the gang scheduler's view (e.g. waiting for resources in a queue) in the job's status."""
    if not p.podgroups:
        p.status.pop("podGroup", None)
        return
    group = p.podgroups[0]
    gstatus = group.get("status") or {}
    message = ""
    for condition in gstatus.get("conditions") or []:
        if condition.get("type") == "Unschedulable" and condition.get("status") == "True":
            message = f"{condition.get('reason') or 'Unschedulable'}: {condition.get('message') or ''}".strip()
    entry = {"name": group["metadata"]["name"], "phase": gstatus.get("phase") or "Pending"}
    if message and entry["phase"] != "Running":
        entry["message"] = truncate(message, 1024)
    previous = p.status.get("podGroup") or {}
    if (previous.get("phase"), previous.get("message")) != (entry["phase"], entry.get("message")):
        queue = (group.get("spec") or {}).get("queue")
        where = f" in queue {queue}" if queue else ""
        text = f"PodGroup {entry['name']} is {entry['phase']}{where}"
        if entry.get("message"):
            text += f": {entry['message']}"
        p.event("Warning" if entry.get("message") else "Normal", f"Gang{entry['phase']}", text)
    p.status["podGroup"] = entry


def gang_blocker(p: PassContext) -> waiting.Cause | None:
    group = p.status.get("podGroup") or {}
    if group and group.get("phase") != "Running" and group.get("message"):
        return waiting.Cause(waiting.GANG_NOT_SCHEDULED, f"PodGroup {group['name']} is {group['phase']}: {group['message']}")
    return None


def update_waiting(p: PassContext, gang: Gang, job_blockers: waiting.JobBlockers) -> None:
    """``status.waiting`` and the Waiting condition; an Event each time a replica type's cause changes."""
    totals = {rtype: replica_count(p.spec, rtype) for rtype, _ in p.spec.ms_replica_specs.items()}
    if job_blockers.gang is None:
        job_blockers = dataclasses.replace(job_blockers, gang=gang_blocker(p))
    causes = waiting.causes_by_type(gang.not_started(), p.name, gang.current, p.refusals, p.holders, job_blockers)
    found = waiting.summarize(causes, totals)
    previous = p.status.get("waiting") or {}
    if found is None:
        p.status.pop("waiting", None)
        all_running = not gang.not_started()
        p.condition("Waiting", cond.FALSE, "PodsRunning" if all_running else "PodsStarting",
                    "every pod is running" if all_running else "no known cause holds the pods up")
        return
    found["since"] = previous.get("since") if previous.get("reason") == found["reason"] else p.now_text
    before = previous.get("replicaTypes") or {}
    for rtype, entry in found["replicaTypes"].items():
        if (before.get(rtype) or {}).get("reason") != entry["reason"]:
            p.event("Warning", entry["reason"], f"{rtype}: {entry['message']}")
    p.status["waiting"] = found
    p.condition("Waiting", cond.TRUE, found["reason"], found["message"])
