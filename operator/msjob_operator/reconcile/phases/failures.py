"""Member failures and losses: what the failure policy says, and the restart it leads to.

* lost: a member of a running gang vanished unseen (force-deleted, removed while the operator was down);
* scheduler address: the members dial a scheduler address the scheduler Service no longer has;
* failures: failed members, and members deleted while they ran (by hand, eviction, preemption, node loss).

Each phase returns True when it decided the pass.
"""

from __future__ import annotations

from typing import Optional

from ...api import naming
from ...api.enums import ConditionType, FailureAction, ReplicaType
from ...api.status import MemberFailure, ReplicaStatus
from .. import conditions as cond
from ..context import OUTPUT_IN_MESSAGE, Gang, PassContext, PodDeletion, deletions, truncate
from ..observed import PodView
from ..policy import Decision, decide, severity
from .converge import restart, scheduler_ip
from .lifecycle import end_finished

_RESTARTS = (FailureAction.RESTART_JOB.value, FailureAction.RESTART_JOB_IGNORE_BUDGET.value)


def describe_failure(pod: PodView) -> str:
    what = f"{pod.replica_type or 'member'} {pod.index} (pod {pod.name})"
    if pod.stopped_by_deletion:
        how = f" ({pod.disruption_reason})" if pod.disruption_reason else ""
        return f"{what} was deleted while the job was running{how}"
    parts = []
    if pod.exit_code is not None:
        parts.append(f"exit code {pod.exit_code}")
    if pod.reason:
        parts.append(pod.reason)
    detail = f"failed: {', '.join(parts)}" if parts else "failed"
    if pod.node:
        detail += f" on node {pod.node}"
    text = f"{what} {detail}"
    if pod.message:
        # The end of a log says why (MindSpore logs a lot before it): keep the last lines, and
        # leave room in the condition message for what follows (rule, restart budget).
        output = pod.message.strip()
        if len(output) > OUTPUT_IN_MESSAGE:
            output = "..." + output[-(OUTPUT_IN_MESSAGE - 3):]
        text += f"; last output: {output}"
    return text


def failure_record(decision: Decision, now: str) -> MemberFailure:
    pod = decision.pod
    return MemberFailure(
        pod=pod.name, replicaType=pod.replica_type, index=pod.index, container=pod.container,
        exitCode=None if pod.stopped_by_deletion else pod.exit_code,
        reason=pod.disruption_reason or ("Deleted" if pod.stopped_by_deletion else pod.reason),
        message=truncate(pod.message.strip()) if pod.message else None, node=pod.node,
        time=pod.finished_at or now, action=f"{decision.action} ({decision.rule})",
    )


def lost(p: PassContext, gang: Gang) -> Optional[tuple[list[str], str]]:
    """The members of a gang that was all running that are gone, never seen to fail or terminate: their
    pod names and the message, with ``lastFailure`` recorded; None when there is none."""
    if not cond.is_true(p.conditions, ConditionType.RUNNING):
        return None
    lost = [key for key in gang.expected if key not in gang.current]
    if p.spec.mindspore and p.spec.mindspore.enable_recovery:
        # With MS_ENABLE_RECOVERY a new scheduler alone is a real recovery: it is just recreated.
        lost = [key for key in lost if key[0] != ReplicaType.SCHEDULER.value]
    if not lost:
        return None
    pod_names = [naming.pod_name(p.name, *key) for key in lost]
    p.status.last_failure = MemberFailure(pod=pod_names[0], replicaType=lost[0][0], index=lost[0][1], reason="Lost",
                                          time=p.now_text,
                                          action=f"{FailureAction.RESTART_JOB_IGNORE_BUDGET.value} (member lost)")
    more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
    return pod_names, f"pod {', '.join(pod_names[:3])}{more} vanished without being seen to fail or terminate"


def lost_members(p: PassContext, gang: Gang) -> bool:
    """A member of a gang that was all running is gone, and the operator never saw it fail or terminate.
    A new pod alone would join a MindSpore cluster that has broken up: restart the gang; not counted,
    as no fault is known."""
    found = lost(p, gang)
    return found is not None and _restart_uncounted(p, gang, "MemberLost", found[1])


def _restart_uncounted(p: PassContext, gang: Gang, reason: str, message: str) -> bool:
    if p.restart_gang(reason, message, counted=False):
        restart(p, gang)
    else:
        end_finished(p, gang)  # the limit on uncounted restarts is reached
    return True


def scheduler_address(p: PassContext, gang: Gang) -> bool:
    """Members built with a scheduler address the scheduler Service no longer has can never reach the
    scheduler (its Service was deleted and its address taken): restart the gang with the new one."""
    address, _ = scheduler_ip(p)
    if address is None:
        return False
    p.status.scheduler_address = address
    astray = [pod for pod in gang.current.values()
              if pod.scheduler_address and pod.scheduler_address != address and not pod.finished]
    if not astray:
        return False
    message = (f"the scheduler Service's address changed to {address}; {len(astray)} members dial "
               f"{astray[0].scheduler_address} (pod {astray[0].name})")
    return _restart_uncounted(p, gang, "SchedulerAddressChanged", message)


def failures(p: PassContext, gang: Gang) -> bool:
    """Failed members, and members deleted while the job ran, by the failure policy."""
    spec, current = p.spec, gang.current
    handled = set(p.status.handled_failures or [])
    for v in current.values():
        # A member whose replacement was decided but whose deletion did not happen (operator died).
        if v.uid in handled and v.failed and not v.deleting and decide(spec,
                                                                       v).action == FailureAction.RESTART_REPLICA.value:
            p.plan.delete_pods.append(PodDeletion(v.name, v.uid))
    troubled = [v for v in current.values() if v.uid not in handled and (v.failed or v.stopped_by_deletion)]
    if not troubled:
        return False
    troubled.sort(key=lambda v: (v.finished_at or v.deletion_timestamp or "", v.name))
    decisions = [decide(spec, v) for v in troubled]
    first = decisions[0]  # the earliest failure is the likely cause; report it
    strongest = max(decisions, key=lambda d: severity(d.action))
    p.status.last_failure = failure_record(first, p.now_text)
    message = describe_failure(first.pod)
    action = strongest.action
    if action == FailureAction.FAIL_JOB.value:
        p.finish(False, "MemberFailed", f"{message} ({strongest.rule})")
    elif action in _RESTARTS:
        pod = strongest.pod
        deleted = "MemberDeleted" if pod.stopped_by_deletion else "MemberFailed"
        reason = "MemberDisrupted" if pod.disruption else deleted
        if p.restart_gang(reason, f"{message} ({strongest.rule})", counted=action == FailureAction.RESTART_JOB.value):
            restart(p, gang)
            return True
    elif action == FailureAction.RESTART_REPLICA.value:
        restart_replicas(p, gang, [d for d in decisions if d.action == action], message)
    else:  # Ignore
        for d in decisions:
            p.remember_handled(d.pod.uid)
            p.event("Warning", "MemberFailureIgnored", f"{describe_failure(d.pod)} ({d.rule})")
    if cond.finished(p.conditions):
        return end_finished(p, gang)
    return False


def restart_replicas(p: PassContext, gang: Gang, replaced: list[Decision], message: str) -> None:
    if not p.budget_left():
        p.finish(False, "BackoffLimitExceeded",
                 f"{message}; the restart budget (runPolicy.backoffLimit={p.backoff_limit}) is used up")
        return
    p.count_restart()
    statuses = p.status.replica_statuses = p.status.replica_statuses or {}
    for decision in replaced:
        pod = decision.pod
        p.remember_handled(pod.uid)
        p.count_any_restart()
        entry = statuses.setdefault(pod.replica_type or "", ReplicaStatus())
        entry.restarts = (entry.restarts or 0) + 1
        p.event("Warning", "MemberRestarted", f"recreating {describe_failure(pod)} ({decision.rule})")
        p.plan.transitions.append("restarted:MemberRestarted")
        if pod.key is not None:
            gang.current.pop(pod.key, None)
    p.plan.delete_pods.extend(deletions([d.pod for d in replaced if not d.pod.deleting], p.now))
