"""Why the pods of the current attempt are not running: one cause per replica type, and for the job.

A job stuck in Created with nothing in its status is what users of every training operator report
("stuck in Created"): the reason is only in each pod's PodScheduled condition, a container's waiting
state, the API server's answer to a create, or the gang scheduler's PodGroup. This module reads all
of them and names the cause in ``status.waiting`` and the ``Waiting`` condition.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Optional

from ..api import naming
from ..api.enums import REPLICA_TYPES
from .observed import PodView

# Causes, most telling first: when several hold, the first is the job's reason.
CREATE_REFUSED = "PodCreateRefused"
NAME_TAKEN = "PodNameTaken"
SERVICE_NAME_TAKEN = "ServiceNameTaken"
SERVICE_REFUSED = "ServiceCreateRefused"
RESTART_BACKOFF = "RestartBackoff"
GANG_NOT_SCHEDULED = "GangNotScheduled"
UNSCHEDULABLE = "Unschedulable"
_CONTAINER_REASONS = ("CreateContainerConfigError", "CreateContainerError", "ImagePullBackOff", "ErrImagePull",
                      "InvalidImageName", "ErrImageNeverPull", "RunContainerError", "CrashLoopBackOff")
_ORDER = [CREATE_REFUSED, SERVICE_REFUSED, NAME_TAKEN, SERVICE_NAME_TAKEN, *_CONTAINER_REASONS, GANG_NOT_SCHEDULED,
          UNSCHEDULABLE, RESTART_BACKOFF]
MESSAGE_LIMIT = 1024


@dataclasses.dataclass(frozen=True)
class Refusal:
    """The API server refused to create one of the job's children (quota, admission, invalid object)."""

    kind: str  # Pod, Service, ...
    name: str
    code: int
    reason: str  # the API server's reason, e.g. Forbidden, Invalid
    message: str
    since: str = ""  # RFC 3339: when the API server first refused this object (of a run of refusals)


@dataclasses.dataclass(frozen=True)
class Cause:
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class JobBlockers:
    """What holds up the creation of every missing pod, whatever its name."""

    service: Optional[Cause] = None  # the scheduler Service (its ClusterIP is in the members' env)
    backoff: Optional[Cause] = None  # a restart's backoff before the next gang
    gang: Optional[Cause] = None  # the PodGroup is not scheduled yet


def _rank(reason: str) -> int:
    return _ORDER.index(reason) if reason in _ORDER else len(_ORDER)


def pod_cause(name: str, pod: Optional[PodView], *, refusal: Optional[Refusal], holder: Optional[PodView],
              job: JobBlockers) -> Optional[Cause]:
    """The cause that holds up one expected member, or None when nothing is known to (it is on its way)."""
    if pod is None:
        if holder is not None:
            return Cause(NAME_TAKEN,
                         f"pod {name} exists and is not owned by this MSJob (owner: {holder.owner or 'none'}); "
                                     "delete it or give the job another name")
        if refusal is not None:
            return Cause(CREATE_REFUSED, f"the API server refused pod {name}: {refusal.message}")
        return job.service or job.backoff or job.gang
    if pod.running or pod.finished or pod.deleting:
        return None
    if pod.waiting_reason in _CONTAINER_REASONS:
        detail = f": {pod.waiting_message}" if pod.waiting_message else ""
        return Cause(pod.waiting_reason, f"pod {pod.name} {pod.waiting_reason}{detail}")
    if pod.waiting_reason and pod.node is None:  # PodScheduled is False
        if job.gang is not None:
            return job.gang
        detail = pod.waiting_message or pod.waiting_reason
        return Cause(UNSCHEDULABLE, f"pod {pod.name} cannot be scheduled: {detail}")
    return None


def summarize(causes: Mapping[str, list[Cause]], total: Mapping[str, int]) -> Optional[dict[str, Any]]:
    """``status.waiting`` from each replica type's causes (None when nothing holds the job up)."""
    by_type: dict[str, dict[str, Any]] = {}
    for rtype in REPLICA_TYPES:
        found = causes.get(rtype) or []
        if not found:
            continue
        first = min(found, key=lambda c: _rank(c.reason))
        pods = sum(1 for c in found if c.reason == first.reason)
        message = first.message if pods == 1 else f"{pods} of {total.get(rtype, pods)} pods: {first.message}"
        by_type[rtype] = {"reason": first.reason, "message": _truncate(message), "pods": pods}
    if not by_type:
        return None
    lead = min(by_type.values(), key=lambda entry: _rank(entry["reason"]))
    message = "; ".join(f"{rtype}: {entry['message']}" for rtype, entry in by_type.items())
    return {"reason": lead["reason"], "message": _truncate(message), "replicaTypes": by_type}


def causes_by_type(names: Iterable[tuple[str, int]], job_name: str, current: Mapping[tuple[str, int], PodView],
                   refusals: Mapping[tuple[str, str], Refusal], holders: Mapping[str, PodView],
                   job: JobBlockers) -> dict[str, list[Cause]]:
    out: dict[str, list[Cause]] = {}
    for rtype, index in names:
        name = naming.pod_name(job_name, rtype, index)
        cause = pod_cause(name, current.get((rtype, index)), refusal=refusals.get(("Pod", name)),
                          holder=holders.get(name), job=job)
        if cause is not None:
            out.setdefault(rtype, []).append(cause)
    return out


def _truncate(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."
