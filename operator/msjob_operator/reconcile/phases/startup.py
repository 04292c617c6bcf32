"""The startup deadline: every pod of an attempt must be running in time, or the attempt fails
(or restarts) naming what held each pod up."""

from __future__ import annotations

from ...api import naming
from ...api.enums import StartupDeadlineAction
from .. import waiting
from ..context import Gang, PassContext
from .converge import restart
from .lifecycle import end_finished

SHOWN = 5  # pods named in the message


def startup_deadline(p: PassContext, gang: Gang) -> bool:
    policy = p.spec.failure_policy
    deadline = policy.startup_deadline_seconds if policy else None
    not_started = gang.not_started()
    if not deadline or not not_started or not p.passed(p.status.attempt_start_time, deadline):
        return False
    details = []
    for key in not_started[:SHOWN]:
        name = naming.pod_name(p.name, *key)
        pod = gang.current.get(key)
        cause = waiting.pod_cause(name, pod, refusal=p.refusals.get(("Pod", name)), holder=p.holders.get(name),
                                  job=waiting.JobBlockers())
        if cause is not None:
            details.append(cause.message)
        elif pod is None:
            details.append(f"{name} not created")
        else:
            details.append(f"{pod.name} {pod.waiting_reason or pod.phase}")
    more = f" and {len(not_started) - SHOWN} more" if len(not_started) > SHOWN else ""
    message = (f"{len(not_started)} of {len(gang.expected)} pods not running after "
               f"failurePolicy.startupDeadlineSeconds={deadline}: {'; '.join(details)}{more}")
    action = (policy.startup_deadline_action if policy else None) or StartupDeadlineAction.FAIL_JOB.value
    if action == StartupDeadlineAction.RESTART_JOB.value:
        if p.restart_gang("StartupDeadlineExceeded", message, counted=True):
            restart(p, gang)
            return True
    else:
        p.finish(False, "StartupDeadlineExceeded", message)
    return end_finished(p, gang)
