"""restartStrategy InPlace: gang restarts that restart the members' processes inside their pods.

A restart moves ``status.gang.epoch`` (and the gang ConfigMap, written before any pod) one up and keeps
``released``: every member's agent stops its process group and acknowledges in its report.  Once no
process of the old epoch is left in any pod of the job (each pod has ended, or its agent reported the
new epoch, or Exited or Stopped at the old one), and the backoff of restarts in a row has passed,
``released`` follows ``epoch`` and every agent starts its process again.  The protocol is
docs/in-place-restart.md; everything is read again each pass (status and reports), so an operator that
dies mid-way resumes the same restart.

What counts as a member failure, by the failure policy exactly as for a pod's exit code:
* a process that failed (its agent's report: Exited with a non-zero code at the current epoch), judged on
  a view of the member with the report's exit code and output;
* a pod that failed at pod level (the agent gave up or could not start, e.g. no python3 in the image;
  eviction), was deleted while it ran, or vanished unseen: that member is recreated while the others
  restart in place (its new agent waits at the barrier).
``RestartReplica`` (e.g. a failed scheduler under ``enableRecovery``) recreates that member alone;
``FailJob`` ends the job (the ConfigMap turns ``final``: the agents exit with their last code).
"""

from __future__ import annotations

import dataclasses

from msjob_runtime.progress import parse_time

from ...api import naming
from ...api.enums import FailureAction, RestartStrategy, StallAction
from ...api.status import RestartRecord
from ...builders.runtime import AGENT_PYTHON
from .. import backoff, health, inplace
from .. import conditions as cond
from ..context import FORCE_DELETE_AFTER, Gang, PassContext, deletions, fmt_time, ms_time, truncate
from ..observed import PodView
from ..policy import Decision, decide, severity
from . import restarts, stall
from .converge import converge, restart
from .failures import describe_failure, failure_record, lost, restart_replicas
from .lifecycle import end_finished

_RESTARTS = (FailureAction.RESTART_JOB.value, FailureAction.RESTART_JOB_IGNORE_BUDGET.value)
# A member that has not acknowledged a new epoch this long after its grace period is recreated instead
# (its agent cannot report: the pod-level path takes over).
ACK_SLACK_SECONDS = 30.0


def in_place(p: PassContext, gang: Gang) -> bool:
    if not inplace.active(p):
        return False
    if _fall_back(p, gang):
        return True
    _replace_again(p, gang)
    under_way = inplace.restarting(p)
    began = _on_troubles(p, gang)
    if not under_way and not began and not cond.finished(p.conditions):
        _on_lost(p, gang) or _on_stall(p, gang)
    if cond.finished(p.conditions):
        return end_finished(p, gang)  # the agents are told (final) once the clean-up is under way
    if inplace.restarting(p):
        _barrier(p, gang)
    elif not p.plan.delete_pods:
        return False  # nothing to do here: the later phases go on
    converge(p, gang)
    return True


def _fall_back(p: PassContext, gang: Gang) -> bool:
    """A member's image has no python3 for the agent: the job goes on with Recreate (for good), from a new
    gang without the agent; not counted, nor added to the restarts in a row (no fault of the training)."""
    found = next(((pod, why) for pod in gang.current.values() if (why := inplace.missing_python(pod))), None)
    if found is None:
        return False
    pod, why = found
    inplace.state(p).fallback = truncate(f"the image of {pod.replica_type} {pod.index} has no {AGENT_PYTHON} "
                                         f"for the in-place restart agent: {why}")
    p.status.last_failure = failure_record(Decision(FailureAction.RESTART_JOB_IGNORE_BUDGET.value,
                                                    "InPlace unavailable: Recreate from now on", pod), p.now_text)
    message = (f"restartStrategy InPlace falls back to Recreate: the image of pod {pod.name} has no {AGENT_PYTHON} "
               f"to run the in-place restart agent (add {AGENT_PYTHON} to the image, or set restartStrategy "
               "Recreate); the gang starts again without the agent")
    if p.restart_gang("InPlaceUnavailable", message, counted=False, streak=False):
        restart(p, gang)
    else:
        end_finished(p, gang)
    return True


# ----- what failed

@dataclasses.dataclass(frozen=True)
class _Trouble:
    view: PodView  # the pod, or (reported) the pod as its failed process would look as a failed pod
    reported: bool  # a process failure from the agent's report (the pod itself runs on)


def _report_key(pod: PodView) -> str:
    """handledFailures entry of a process failure the job goes on with (Ignore): the pod stays, a later
    epoch of it may fail again."""
    return f"{pod.uid}/{pod.agent.epoch if pod.agent else ''}"


def reported_view(pod: PodView) -> PodView:
    """The member as its failed process would look as a failed pod: the report's exit code and output."""
    report = pod.agent
    assert report is not None
    return dataclasses.replace(pod, phase="Failed", exit_code=report.exit_code, reason="Error",
                               message=report.output or None, finished_at=report.finished_at, container=None,
                               deleting=False, disruption=False, disruption_reason=None)


def _process_failed(pod: PodView, epoch: int) -> bool:
    return not pod.finished and not pod.deleting and pod.agent is not None and pod.agent.failed \
        and pod.agent.epoch == epoch


def _delete(p: PassContext, pods: list[PodView]) -> None:
    planned = {d.name for d in p.plan.delete_pods}
    p.plan.delete_pods.extend(d for d in deletions(pods, p.now) if d.name not in planned)


def _replace_again(p: PassContext, gang: Gang) -> None:
    """A member whose replacement was decided but whose deletion did not happen (the operator died)."""
    handled = set(p.status.handled_failures or [])
    epoch = inplace.epoch(p)
    for pod in gang.current.values():
        if pod.uid not in handled or pod.deleting:
            continue
        view = reported_view(pod) if _process_failed(pod, epoch) else pod if pod.failed else None
        if view is not None and decide(p.spec, view).action != FailureAction.IGNORE.value:
            _delete(p, [pod])


def _troubles(p: PassContext, gang: Gang) -> list[_Trouble]:
    handled, epoch = set(p.status.handled_failures or []), inplace.epoch(p)
    found = []
    for v in gang.current.values():
        if v.uid in handled:
            continue
        if _process_failed(v, epoch) and _report_key(v) not in handled:
            found.append(_Trouble(reported_view(v), True))
        elif v.failed or v.stopped_by_deletion:
            found.append(_Trouble(v, False))
    found.sort(key=lambda t: (t.view.finished_at or t.view.deletion_timestamp or "", t.view.name))
    return found


def _on_troubles(p: PassContext, gang: Gang) -> bool:
    """Decide on the failures not handled yet; True when an in-place restart began."""
    troubles = _troubles(p, gang)
    if not troubles:
        return False
    decisions = [decide(p.spec, t.view) for t in troubles]
    first, strongest = decisions[0], max(decisions, key=lambda d: severity(d.action))
    message, action, under_way = describe_failure(first.pod), strongest.action, inplace.restarting(p)
    if action != FailureAction.IGNORE.value and not (under_way and action in _RESTARTS):
        p.status.last_failure = failure_record(first, p.now_text)
    if action == FailureAction.FAIL_JOB.value:
        p.finish(False, "MemberFailed", f"{message} ({strongest.rule})")
        return False
    if action in _RESTARTS:
        began = False
        if not under_way:
            pod = strongest.pod
            reason = "MemberDisrupted" if pod.disruption else "MemberDeleted" if pod.stopped_by_deletion else \
                "MemberFailed"
            if not begin(p, reason, f"{message} ({strongest.rule})", counted=action == FailureAction.RESTART_JOB.value,
                         member=pod.name):
                return False
            began = True
        _recreate(p, [t.view for t in troubles if not t.reported], "its pod failed, was evicted or was deleted")
        return began
    if action == FailureAction.RESTART_REPLICA.value:
        restart_replicas(p, gang, [d for d in decisions if d.action == action], message)
        return False
    for trouble, d in zip(troubles, decisions, strict=True):  # Ignore
        p.remember_handled(_report_key(trouble.view) if trouble.reported else trouble.view.uid)
        p.event("Warning", "MemberFailureIgnored", f"{describe_failure(d.pod)} ({d.rule})")
    return False


def _on_lost(p: PassContext, gang: Gang) -> bool:
    """A member of a running gang vanished unseen: recreated, the others restart in place (not counted)."""
    found = lost(p, gang)
    if found is None:
        return False
    names, message = found
    if not begin(p, "MemberLost", message, counted=False, member=names[0]):
        return False
    _note_recreated(p, names)
    return True


def _on_stall(p: PassContext, gang: Gang) -> bool:
    """No training step for too long (spec.health): the processes are restarted in place."""
    found = stall.detected(p)
    if found is None:
        return False
    action, message = found
    if action == StallAction.FAIL_JOB.value:
        p.finish(False, "Stalled", message)
        return False
    return begin(p, "Stalled", message, counted=True, member=health.reporter_pod(p.name))


# ----- the restart

def begin(p: PassContext, reason: str, message: str, counted: bool, member: str) -> bool:
    """Move the epoch (counted as a gang restart); False when a budget is spent (the job has failed)."""
    delay = p.account_restart(message, counted)
    if delay is None:
        return False
    state = inplace.state(p)
    state.epoch = inplace.epoch(p) + 1
    state.release_at = fmt_time(backoff.after(p.now, delay)) if delay else None
    p.status.last_restart = RestartRecord(strategy=RestartStrategy.IN_PLACE.value, reason=reason, member=member,
                                          epoch=state.epoch, failureDetected=ms_time(p.now))
    p.announce_restart(reason, message, delay, doing="restarting every member in place", new="epoch",
                       step=f"epoch {state.epoch}", running="the gang is restarting in place")
    return True


def _recreate(p: PassContext, pods: list[PodView], why: str) -> None:
    """Members that cannot restart in place: deleted, then created again by converge (same attempt)."""
    for pod in pods:
        p.remember_handled(pod.uid)
        p.event("Warning", "MemberRecreated", f"recreating {pod.replica_type} {pod.index} (pod {pod.name}) while "
                                              f"the others restart in place: {why}")
    _delete(p, [pod for pod in pods if not pod.deleting])
    _note_recreated(p, [pod.name for pod in pods])


def _note_recreated(p: PassContext, names: list[str]) -> None:
    record = p.status.last_restart
    if record is None or record.strategy != RestartStrategy.IN_PLACE.value or not names:
        return
    known = list(record.recreated or [])
    record.recreated = (known + [n for n in names if n not in known])[-64:]


def _ack_deadline(p: PassContext, record: RestartRecord) -> float:
    """Seconds from now until members that have not acknowledged are recreated instead."""
    graces = [int((replica.template.get("spec") or {}).get("terminationGracePeriodSeconds") or 30)
              for _, replica in p.spec.ms_replica_specs.items()]
    began = parse_time(record.failure_detected) or p.now
    return backoff.remaining(began, max(graces, default=30) + ACK_SLACK_SECONDS, p.now)


def _barrier(p: PassContext, gang: Gang) -> None:
    """Release the new epoch once no process of the old one is left in any pod of the job."""
    old, state, record = inplace.released(p), inplace.state(p), p.status.last_restart
    # A member that has ended (by itself, or at pod level) has no agent left to restart it.
    planned = {d.name for d in p.plan.delete_pods}
    ended = [pod for pod in gang.current.values() if pod.finished and not pod.deleting and pod.name not in planned]
    _recreate(p, ended, "it had ended")
    # Members whose pods are gone (deleted while no operator looked, say): converge creates them.
    _note_recreated(p, [naming.pod_name(p.name, *key) for key in gang.expected if key not in gang.current])
    silent = [pod for pod in gang.members if not inplace.acknowledged(pod, old)]
    if silent:
        left = _ack_deadline(p, record) if record is not None else ACK_SLACK_SECONDS
        if left <= 0:
            _recreate(p, [pod for pod in silent if not pod.deleting],
                      f"its agent did not acknowledge epoch {state.epoch} in time")
        else:
            p.plan.requeue(left)
        _delete(p, [pod for pod in silent if pod.deleting])  # force-deletes those stuck terminating
        if any(pod.deleting for pod in silent):
            p.plan.requeue(FORCE_DELETE_AFTER.total_seconds())
        return  # each report that comes in is a new pass
    if record is not None and restarts.reach(p, record, restarts.STOPPED):
        p.event("Normal", "GangStopped", f"no process of epoch {old} is left in any of the {len(gang.members)} pods")
    release_at = parse_time(state.release_at)
    if release_at is not None and release_at > p.now:
        p.plan.requeue((release_at - p.now).total_seconds())
        return
    state.released, state.release_at = state.epoch, None
    if record is not None and restarts.reach(p, record, restarts.RELEASED):
        p.event("Normal", "BarrierLifted", f"epoch {state.epoch} released: every member starts its process again")
