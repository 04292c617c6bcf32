"""Kubeflow-style job conditions: one entry per type, transition time kept while the status holds."""

from __future__ import annotations

from typing import Optional

from ..api.enums import ConditionType
from ..api.status import Condition

TRUE, FALSE = "True", "False"

# The state shown by `kubectl get msj` is the most significant true condition.
_STATE_ORDER = [ConditionType.FAILED, ConditionType.SUCCEEDED, ConditionType.SUSPENDED, ConditionType.RESTARTING,
                ConditionType.RUNNING, ConditionType.CREATED]


def get(conditions: list[Condition], ctype: ConditionType) -> Optional[Condition]:
    for cond in conditions:
        if cond.type == ctype.value:
            return cond
    return None


def is_true(conditions: list[Condition], ctype: ConditionType) -> bool:
    cond = get(conditions, ctype)
    return cond is not None and cond.status == TRUE


def set_condition(conditions: list[Condition], ctype: ConditionType, status: str, reason: str, message: str,
                  now: str) -> bool:
    """Set a condition in place; returns True when its status changed (a transition)."""
    cond = get(conditions, ctype)
    if cond is None:
        if status == FALSE:
            # A condition that never held is not worth listing.
            return False
        conditions.append(Condition(type=ctype.value, status=status, reason=reason, message=message,
                                    lastUpdateTime=now, lastTransitionTime=now))
        return True
    changed = cond.status != status
    if changed or cond.reason != reason or cond.message != message:
        cond.status, cond.reason, cond.message, cond.last_update_time = status, reason, message, now
        if changed:
            cond.last_transition_time = now
    return changed


def state(conditions: list[Condition]) -> str:
    for ctype in _STATE_ORDER:
        if is_true(conditions, ctype):
            return ctype.value
    return ConditionType.CREATED.value


def finished(conditions: list[Condition]) -> bool:
    return is_true(conditions, ConditionType.SUCCEEDED) or is_true(conditions, ConditionType.FAILED)
