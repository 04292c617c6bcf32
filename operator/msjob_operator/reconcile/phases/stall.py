"""Stalls: no training step for too long (spec.health), by worker 0's progress reports."""

from __future__ import annotations

from typing import Optional

from ...api.enums import ConditionType, StallAction
from .. import conditions as cond
from .. import health
from ..context import Gang, PassContext
from .converge import restart
from .lifecycle import end_finished


def progress(p: PassContext, gang: Gang) -> bool:
    """Worker 0's last report into status.progress in every pass until the job has finished, also the
    pass that ends it: the reporter's last report (at the sidecar's SIGTERM) and the pod's Succeeded
    phase are often seen together.  Never decides the pass."""
    if health.enabled(p.spec):
        health.copy_progress(p)
    return False


def detected(p: PassContext) -> Optional[tuple[str, str]]:
    """The stall action and its message when no step came for too long (the Stalled condition set);
    None otherwise."""
    if not health.enabled(p.spec):
        return None
    is_stalled, message = health.update(p, p.spec)
    if not is_stalled:
        return None
    if p.condition(ConditionType.STALLED, cond.TRUE, "NoProgress", message):
        p.plan.transitions.append("stalled")
    return (p.spec.health.stall_action if p.spec.health else None) or StallAction.RESTART_JOB.value, message


def stalled(p: PassContext, gang: Gang) -> bool:
    found = detected(p)
    if found is None:
        return False
    action, message = found
    if action == StallAction.FAIL_JOB.value:
        p.finish(False, "Stalled", message)
    elif p.restart_gang("Stalled", message, counted=True):
        restart(p, gang)
        return True
    return end_finished(p, gang) if cond.finished(p.conditions) else False
