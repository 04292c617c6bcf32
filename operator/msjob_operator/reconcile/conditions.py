"""Kubeflow-style job conditions: one entry per type, transition time kept while the status holds."""

from __future__ import annotations

from typing import Optional

TRUE, FALSE = "True", "False"

# The state shown by `kubectl get msj` is the most significant true condition.
_STATE_ORDER = ["Failed", "Succeeded", "Suspended", "Restarting", "Running", "Created"]


def get(conditions: list[dict], ctype: str) -> Optional[dict]:
    for cond in conditions:
        if cond.get("type") == ctype:
            return cond
    return None


def is_true(conditions: list[dict], ctype: str) -> bool:
    cond = get(conditions, ctype)
    return bool(cond) and cond.get("status") == TRUE


def set_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str, now: str) -> bool:
    """Set a condition in place; returns True when its status changed (a transition)."""
    cond = get(conditions, ctype)
    if cond is None:
        if status == FALSE:
            # A condition that never held is not worth listing.
            return False
        conditions.append({
            "type": ctype, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now,
        })
        return True
    changed = cond.get("status") != status
    if changed or cond.get("reason") != reason or cond.get("message") != message:
        cond.update(status=status, reason=reason, message=message, lastUpdateTime=now)
        if changed:
            cond["lastTransitionTime"] = now
    return changed


def state(conditions: list[dict]) -> str:
    for ctype in _STATE_ORDER:
        if is_true(conditions, ctype):
            return ctype
    return "Created"


def finished(conditions: list[dict]) -> bool:
    return is_true(conditions, "Succeeded") or is_true(conditions, "Failed")
