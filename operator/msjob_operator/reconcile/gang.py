"""The job's gang objects for the pass: which PodGroup the current attempt's pods join, and what to
create or delete for it. Volcano and coscheduling keep one PodGroup per job; the Workload API gets one
per gang attempt (builders.gang_workload says why)."""

from __future__ import annotations

from typing import Any, Optional

from ..builders import gang_workload
from ..builders.podgroup import build_podgroup, min_member
from ..config import WORKLOAD_API
from .context import PassContext


def current_podgroup(p: PassContext) -> Optional[dict[str, Any]]:
    if p.config.gang.scheduler != WORKLOAD_API:
        return p.podgroups[0] if p.podgroups else None
    name = gang_workload.podgroup_name(p.name, p.attempt)
    return next((g for g in p.podgroups if g["metadata"]["name"] == name), None)


def plan_podgroup(p: PassContext) -> None:
    """Create the PodGroup the current attempt's pods join if it is missing (a prerequisite: applied
    before the pods); with the Workload API, delete those of earlier attempts."""
    if p.config.gang.scheduler != WORKLOAD_API:
        if not p.podgroups:
            p.plan.create_podgroups.append(build_podgroup(p.job, p.spec, p.config.gang))
        return
    if current_podgroup(p) is None:
        size = min_member(p.spec)
        p.plan.create_objects.append(gang_workload.build_workload(p.job, size))  # AlreadyExists is fine
        p.plan.create_podgroups.append(gang_workload.build_podgroup(p.job, p.spec, size, p.attempt))
    current = gang_workload.podgroup_name(p.name, p.attempt)
    p.plan.delete_podgroups.extend(g["metadata"]["name"] for g in p.podgroups
                                   if g["metadata"]["name"] != current and not g["metadata"].get("deletionTimestamp"))


def podgroup_state(p: PassContext, group: dict[str, Any]) -> tuple[str, str]:
    """(phase, why the gang is not scheduled) of the job's PodGroup, for status.podGroup."""
    if p.config.gang.scheduler == WORKLOAD_API:
        return gang_workload.podgroup_state(group)
    status = group.get("status") or {}
    message = ""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Unschedulable" and condition.get("status") == "True":
            message = f"{condition.get('reason') or 'Unschedulable'}: {condition.get('message') or ''}".strip()
    return status.get("phase") or "Pending", message
