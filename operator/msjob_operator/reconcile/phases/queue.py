"""Kueue: a Kueue-managed job runs only while its Workload is admitted.

A job is Kueue-managed when the operator runs with ``--kueue`` and the job's ``metadata.labels`` carry
``kueue.x-k8s.io/queue-name``. Kueue's convention is that such a job is suspended until it is admitted; the
operator applies that rule itself (``runPolicy.suspend`` stays the user's): until the Workload is admitted
the job holds no pod, and shows ``Suspended`` with the queue's reason (``QueuedForQuota``, ...) and
``status.waiting`` with Kueue's words. Admitted, it runs with the admission's node selectors and
tolerations on its pods. Evicted (preempted, deactivated), its pods are deleted, not counted as a failure,
and once they are gone the quota goes back to Kueue; admitted again, it starts a new attempt, like a
resume. A finished job marks its Workload Finished (Kueue releases the quota). The user's suspension
wins: the Workload is deactivated while the job is suspended.

Everything is read from the Workload as observed (its name is deterministic): nothing is remembered in
memory, so a restarted operator carries on without a second Workload.
"""

from __future__ import annotations

from typing import Any, Optional

from ...api.enums import ConditionType, ReplicaType
from ...api.status import KueueStatus, WaitingStatus
from ...builders import workload as wl
from ...builders.env import replica_count
from ...builders.pods import build_pod
from .. import conditions as cond
from .. import health
from ..context import FORCE_DELETE_AFTER, Gang, PassContext, classify, deletions, release_gang, truncate
from ..queueing import WorkloadState, apply_update, cluster_queue, conditions, pod_update, queue_name, state
from .summary import summarize

# Why a Kueue-managed job holds no pods (Suspended condition, status.waiting, Events).
QUEUED_FOR_QUOTA = "QueuedForQuota"
QUEUE_INADMISSIBLE = "QueueInadmissible"
ADMISSION_CHECKS_PENDING = "AdmissionChecksPending"
KUEUE_EVICTED = "KueueEvicted"
WORKLOAD_INACTIVE = "QueueWorkloadInactive"
WORKLOAD_OUTDATED = "QueueWorkloadOutdated"
WORKLOAD_REFUSED = "QueueWorkloadRefused"
WORKLOAD_FINISHED = "QueueWorkloadFinished"
PRIORITY_CLASS_NOT_FOUND = "WorkloadPriorityClassNotFound"
FLAVOR_NOT_FOUND = "ResourceFlavorNotFound"
KUEUE_NOT_SERVED = "KueueNotServed"
ADMITTED = "Admitted"
# Kueue objects no watch event will announce (a WorkloadPriorityClass or ResourceFlavor created later).
RECHECK_SECONDS = 10.0


def admission(p: PassContext, gang: Gang) -> bool:
    """The phase: hold a queued job (True: nothing else to do), or let an admitted, finished or suspended
    one go on to the other phases (False), keeping its Workload in step with it."""
    if not p.config.kueue:
        return False
    queue = queue_name(p.job)
    name = wl.workload_name(p.job)
    workload = next((w for w in p.kueue.workloads if w["metadata"]["name"] == name), None)
    if queue is None:
        # Not (or no longer) queued: the job leaves Kueue, and its Workload goes.
        p.plan.workload_writes.extend(wl.delete(w) for w in p.kueue.workloads
                                      if not w["metadata"].get("deletionTimestamp"))
        p.status.kueue = None
        return False
    if cond.finished(p.conditions):
        _finish(p, workload, queue)
        return False
    if sum(replica_count(p.spec, rtype) for rtype, _ in p.spec.ms_replica_specs.items()) > p.config.max_pods_per_job:
        return False  # fails in lifecycle.over_the_cap, never queued
    if not p.config.kueue_available:
        return _hold(p, gang, KUEUE_NOT_SERVED, f"the job is labelled {wl.QUEUE_NAME_LABEL}={queue} but "
                     f"{wl.KUEUE_API_VERSION} is not served: install Kueue, then restart the operator", queue)
    suspended = bool(p.spec.run_policy and p.spec.run_policy.suspend)
    if workload is None or workload["metadata"].get("deletionTimestamp"):
        return _create(p, gang, queue, name, suspended, replaced=workload is not None)
    now = state(workload)
    if _keep_in_step(p, workload, queue, suspended, now) and now == WorkloadState.INACTIVE:
        now = WorkloadState.QUEUED  # activated in this pass: in the queue again
    _report(p, workload, queue, now)
    if suspended:
        if now == WorkloadState.EVICTED and _quiet(gang):
            p.plan.workload_writes.append(wl.release(workload, conditions(workload)["Evicted"], p.now_text))
        return False  # lifecycle.suspended deletes the pods
    if wl.pod_set_shapes(pod_sets(p)) != wl.pod_set_shapes((workload.get("spec") or {}).get("podSets") or []):
        # Pod sets are immutable: a resized job (or new resources) needs a new Workload, once its pods are gone.
        held = _hold(p, gang, WORKLOAD_OUTDATED, f"the job's pods changed (replicas or resources) since Workload "
                     f"{name} was created: it is replaced once the job's pods are gone", queue)
        if _quiet(gang):
            p.plan.workload_writes.append(wl.delete(workload))
        return held
    if now == WorkloadState.ADMITTED:
        return _admitted(p, gang, workload, queue)
    if now == WorkloadState.EVICTED:
        evicted = conditions(workload)["Evicted"]
        held = _hold(p, gang, KUEUE_EVICTED, f"evicted by Kueue ({evicted.get('reason')}): "
                     f"{evicted.get('message') or ''}".strip(), queue, warning=True)
        if _quiet(gang):
            p.plan.workload_writes.append(wl.release(workload, evicted, p.now_text))
        return held
    reason, message = _waiting(workload, queue, now, p)
    return _hold(p, gang, reason, message, queue)


def apply_admission(p: PassContext, pod: dict[str, Any], replica_type: str) -> None:
    """The admission's node selector and tolerations (its flavors'), on a pod about to be created."""
    if not p.config.kueue or queue_name(p.job) is None:
        return
    name = wl.workload_name(p.job)
    workload = next((w for w in p.kueue.workloads if w["metadata"]["name"] == name), None)
    if workload is not None and state(workload) == WorkloadState.ADMITTED:
        apply_update(pod, pod_update(workload, wl.pod_set_name(replica_type), p.kueue.flavors))


def pod_sets(p: PassContext) -> list[dict[str, Any]]:
    """One pod set per replica type, from the pod the operator would create (devices and sidecars included)."""
    out = []
    for rtype, replica in p.spec.ms_replica_specs.items():
        # Any address: the env it goes into is not part of a pod set.
        pod = build_pod(p.job, p.spec, rtype, replica, 0, attempt=0, scheduler_ip="127.0.0.1")
        if rtype == ReplicaType.WORKER.value and health.enabled(p.spec):
            health.add_reporter(pod, p.spec, p.config.reporter_image)
        out.append(wl.pod_set(rtype, replica_count(p.spec, rtype), pod))
    return out


# -- the steps --------------------------------------------------------------------------------------
def _create(p: PassContext, gang: Gang, queue: str, name: str, suspended: bool, replaced: bool) -> bool:
    if replaced:
        return _hold(p, gang, WORKLOAD_OUTDATED, f"waiting for the old Workload {name} to be deleted", queue)
    refused = p.refusals.get(("Workload", name))
    if refused is not None:
        return _hold(p, gang, WORKLOAD_REFUSED, f"the API server refused Workload {name}: {refused.message}", queue)
    priority: Optional[tuple[str, int]] = None
    priority_class = ((p.job["metadata"].get("labels") or {}).get(wl.PRIORITY_CLASS_LABEL))
    if priority_class:
        found = p.kueue.priority_classes.get(priority_class)
        if found is None:
            p.plan.requeue(RECHECK_SECONDS)
            return _hold(p, gang, PRIORITY_CLASS_NOT_FOUND, f"WorkloadPriorityClass {priority_class} (label "
                         f"{wl.PRIORITY_CLASS_LABEL}) does not exist", queue)
        priority = (priority_class, int(found.get("value") or 0))
    p.plan.create_workloads.append(wl.build_workload(p.job, queue=queue, pod_sets=pod_sets(p), priority=priority,
                                                     active=not suspended))
    p.status.kueue = KueueStatus(workload=name, localQueue=queue, state=WorkloadState.QUEUED.value)
    if suspended:
        return False
    return _hold(p, gang, QUEUED_FOR_QUOTA, f"Workload {name} created in LocalQueue {queue}; waiting for Kueue", queue)


def _keep_in_step(p: PassContext, workload: dict[str, Any], queue: str, suspended: bool, now: WorkloadState) -> bool:
    """The Workload follows the job: inactive while the user suspends it, in the job's queue while queued.
    True when this pass activates it again."""
    active = (workload.get("spec") or {}).get("active") is not False
    ours = wl.DEACTIVATED_ANNOTATION in (workload["metadata"].get("annotations") or {})
    activated = not suspended and not active and ours
    if suspended and active:
        p.plan.workload_writes.append(wl.set_active(workload, False))
    elif activated:
        p.plan.workload_writes.append(wl.set_active(workload, True))
    if now in (WorkloadState.QUEUED, WorkloadState.INACTIVE) and (workload.get("spec") or {}).get("queueName") != queue:
        p.plan.workload_writes.append(wl.set_queue(workload, queue))
    return activated


def _admitted(p: PassContext, gang: Gang, workload: dict[str, Any], queue: str) -> bool:
    missing = sorted({f for rtype, _ in p.spec.ms_replica_specs.items()
                      for f in pod_update(workload, wl.pod_set_name(rtype), p.kueue.flavors).missing_flavors})
    if missing:
        p.plan.requeue(RECHECK_SECONDS)
        return _hold(p, gang, FLAVOR_NOT_FOUND, f"admitted with ResourceFlavor {', '.join(missing)}, which the "
                     "operator cannot read (deleted, or no RBAC to list resourceflavors)", queue)
    message = f"admitted by ClusterQueue {cluster_queue(workload, p.kueue.local_queues)}"
    if cond.is_true(p.conditions, ConditionType.SUSPENDED):
        p.condition(ConditionType.SUSPENDED, cond.FALSE, ADMITTED, message)
        p.event("Normal", ADMITTED, message)
        if cond.is_true(p.conditions, ConditionType.CREATED):
            # It ran before (evicted, or suspended): its old pods are stale, as after a resume.
            p.new_attempt()
            gang.current, gang.stale = classify(p.members, p.attempt, set(gang.expected))
    return False


def _finish(p: PassContext, workload: Optional[dict[str, Any]], queue: str) -> None:
    """A finished job's Workload is marked Finished: Kueue releases its quota."""
    if workload is None or workload["metadata"].get("deletionTimestamp"):
        return
    if state(workload) == WorkloadState.FINISHED:
        _report(p, workload, queue, WorkloadState.FINISHED)
        return
    succeeded = cond.is_true(p.conditions, ConditionType.SUCCEEDED)
    ended = cond.get(p.conditions, ConditionType.SUCCEEDED if succeeded else ConditionType.FAILED)
    text = (ended.message if ended else None) or ("the MSJob succeeded" if succeeded else "the MSJob failed")
    write = wl.finish(workload["metadata"]["name"], succeeded, text, p.now_text)
    p.plan.workload_writes.append(write)
    p.status.kueue = KueueStatus(workload=write.name, localQueue=queue,
                                 clusterQueue=cluster_queue(workload, p.kueue.local_queues),
                                 state=WorkloadState.FINISHED.value, reason="Succeeded" if succeeded else "Failed",
                                 message=truncate(f"finished: {text}", 1024))


def _report(p: PassContext, workload: dict[str, Any], queue: str, now: WorkloadState) -> None:
    """status.kueue: the Workload, its queues, and where it stands in Kueue's words."""
    found = conditions(workload)
    cq = cluster_queue(workload, p.kueue.local_queues)
    reason: Optional[str]
    if now == WorkloadState.ADMITTED:
        reason, message = "Admitted", f"admitted by ClusterQueue {cq}"
    elif now in (WorkloadState.FINISHED, WorkloadState.EVICTED):
        shown = found[now.value]
        reason, message = shown.get("reason"), f"{now.value.lower()}: {shown.get('message') or ''}".strip()
    else:
        reason, message = (found.get("QuotaReserved") or {}).get("reason"), _waiting(workload, queue, now, p)[1]
    p.status.kueue = KueueStatus(workload=workload["metadata"]["name"], localQueue=queue, clusterQueue=cq,
                                 state=now.value, reason=reason, message=truncate(message, 1024))


def _waiting(workload: dict[str, Any], queue: str, now: WorkloadState, p: PassContext) -> tuple[str, str]:
    """Why a Workload that is not admitted waits, in Kueue's words, naming its ClusterQueue."""
    found = conditions(workload)
    reserved = found.get("QuotaReserved") or {}
    cq = cluster_queue(workload, p.kueue.local_queues)
    where = f"ClusterQueue {cq}" if cq else f"LocalQueue {queue}"
    words = str(reserved.get("message") or "")
    if now == WorkloadState.INACTIVE:
        return WORKLOAD_INACTIVE, f"Workload {workload['metadata']['name']} is inactive (spec.active: false)" + (
            f": {found['Evicted'].get('message')}" if is_evicted(found) else "")
    if now == WorkloadState.RESERVED:
        admitted = str((found.get("Admitted") or {}).get("message") or "")
        return ADMISSION_CHECKS_PENDING, f"quota reserved in {where}; waiting for admission checks: {admitted}"
    if now == WorkloadState.FINISHED:
        return WORKLOAD_FINISHED, (f"Workload {workload['metadata']['name']} was marked Finished before the job "
                                   f"ended: {(found.get('Finished') or {}).get('message') or ''}")
    if reserved.get("reason") == "Inadmissible":
        return QUEUE_INADMISSIBLE, f"Kueue cannot admit the job to {where}: {words}"
    return QUEUED_FOR_QUOTA, f"waiting for quota in {where}" + (f": {words}" if words else "")


def is_evicted(found: dict[str, dict[str, Any]]) -> bool:
    return (found.get("Evicted") or {}).get("status") == "True"


def _quiet(gang: Gang) -> bool:
    """No pod of the job runs or could still start: the quota may go back."""
    return not any(pod.active or (pod.deleting and not pod.finished) for pod in gang.members)


def _hold(p: PassContext, gang: Gang, reason: str, message: str, queue: str, warning: bool = False) -> bool:
    """No pods until admitted: as a suspension, shown as one (condition Suspended with the queue's reason)."""
    message = truncate(message, 1024)
    p.plan.delete_pods.extend(deletions(gang.members, p.now))
    if any(pod.deleting for pod in gang.members):
        p.plan.requeue(FORCE_DELETE_AFTER.total_seconds())
    release_gang(p)
    known = cond.get(p.conditions, ConditionType.SUSPENDED)
    before = (known.status, known.reason) if known is not None else None  # set_condition changes it in place
    p.condition(ConditionType.SUSPENDED, cond.TRUE, reason, message)
    if before != (cond.TRUE, reason):
        p.event("Warning" if warning else "Normal", reason, message)
    p.condition(ConditionType.RUNNING, cond.FALSE, reason, "the job waits for Kueue")
    p.condition(ConditionType.RESTARTING, cond.FALSE, reason, "the job waits for Kueue")
    p.status.start_time = None  # activeDeadlineSeconds counts from the admission, as from a resume
    previous = p.status.waiting
    since = previous.since if previous is not None and previous.reason == reason else p.now_text
    p.status.waiting = WaitingStatus(reason=reason, message=message, since=since)
    p.condition(ConditionType.WAITING, cond.TRUE, reason, message)
    if p.status.kueue is None or p.status.kueue.workload is None:
        p.status.kueue = KueueStatus(localQueue=queue, state=WorkloadState.QUEUED.value, message=message)
    summarize(p, gang)
    return True
