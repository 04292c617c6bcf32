"""A compact, read-only view of an observed pod: what the reconcile logic needs to know."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Optional

from msjob_runtime.agent_protocol import EXITED, RUNNING, read_agent_report, read_member_report

from ..api import naming
from ..builders.containers import MAIN_CONTAINER

_DISRUPTION_REASONS = {"Evicted", "Preempting", "Preempted", "Shutdown", "NodeShutdown", "Terminated",
                       "DeletionByTaintManager"}


@dataclasses.dataclass(frozen=True, slots=True)
class AgentReport:
    """The in-place restart agent's report on its member's Lease (restartStrategy InPlace;
    docs/in-place-restart.md)."""

    epoch: int
    state: str  # Waiting, Running, Exited, Stopped
    exit_code: Optional[int] = None
    output: str = ""
    started_at: Optional[str] = None
    finished_at: Optional[str] = None

    @property
    def failed(self) -> bool:
        """The process of ``epoch`` ended by itself with a non-zero code: the agent awaits a decision."""
        return self.state == EXITED and self.exit_code not in (None, 0)

    @property
    def running(self) -> bool:
        return self.state == RUNNING


def _agent_report(pod: dict[str, Any], lease: Optional[dict[str, Any]]) -> Optional[AgentReport]:
    """From the member's Lease when its holder is this pod; else from the pod's own annotation, where
    agents of before the Lease (pods created by an earlier operator) report."""
    raw = read_member_report(lease, str((pod.get("metadata") or {}).get("uid") or "")) or read_agent_report(pod)
    if raw is None:
        return None
    return AgentReport(epoch=raw["epoch"], state=raw["state"], exit_code=raw["exitCode"], output=raw["output"] or "",
                       started_at=raw["startedAt"], finished_at=raw["finishedAt"])


@dataclasses.dataclass(frozen=True, slots=True)
class PodView:
    name: str
    uid: str
    replica_type: Optional[str]  # "Scheduler", "PS", "Worker" or None if unknown
    index: Optional[int]
    attempt: Optional[int]
    phase: str
    deleting: bool
    ready: bool
    node: Optional[str]
    # Failure details (phase Failed, or terminated container).
    container: Optional[str] = None
    exit_code: Optional[int] = None
    reason: Optional[str] = None
    message: Optional[str] = None
    finished_at: Optional[str] = None
    disruption: bool = False
    disruption_reason: Optional[str] = None  # EvictionByEvictionAPI, PreemptionByScheduler, DeletionByPodGC, Evicted...
    # Why a pod is not running yet (Unschedulable, ImagePullBackOff, ...).
    waiting_reason: Optional[str] = None
    waiting_message: Optional[str] = None
    deletion_timestamp: Optional[str] = None
    # When the deletion was asked for: deletionTimestamp less the grace period.
    deletion_requested_at: Optional[str] = None
    # The controller ownerReference: only pods whose owner is the job are its members.
    owner_uid: Optional[str] = None
    owner: Optional[str] = None  # "Kind/name" of that owner, for messages
    # The scheduler address the member was given (MS_SCHED_HOST), from its annotation.
    scheduler_address: Optional[str] = None
    # restartStrategy InPlace: the agent's latest report (on the member's Lease).
    agent: Optional[AgentReport] = None

    @property
    def key(self) -> tuple[str, int] | None:
        if self.replica_type is None or self.index is None:
            return None
        return (self.replica_type, self.index)

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.deleting

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"

    @property
    def failed(self) -> bool:
        return self.phase == "Failed"

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def active(self) -> bool:
        # restartStrategy InPlace: a member whose process failed only waits for the operator's word (its
        # pod then ends with the process's code), so cleanPodPolicy Running keeps it, as a failed pod.
        failed_process = self.agent is not None and self.agent.failed
        return self.phase in ("Pending", "Running", "Unknown", "") and not self.deleting and not failed_process

    @property
    def stopped_by_deletion(self) -> bool:
        """Deleted while it ran (by hand, the eviction API, a preemption, a node's loss): whatever exit code
        the kill left is no failure of its own. A member that had already failed when it was deleted failed."""
        if not self.deleting:
            return False
        if not self.finished:
            return True
        ended, asked = _time(self.finished_at), _time(self.deletion_requested_at)
        return ended is None or asked is None or ended >= asked

    @property
    def disrupted(self) -> bool:
        """Evicted, preempted, lost with its node or deleted while it ran: not the job's fault."""
        return self.disruption or self.stopped_by_deletion


def _time(value: Optional[str]) -> Optional[dt.datetime]:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _deletion_requested_at(meta: dict[str, Any]) -> Optional[str]:
    deadline = _time(meta.get("deletionTimestamp"))
    if deadline is None:
        return None
    grace = meta.get("deletionGracePeriodSeconds") or 0
    return (deadline - dt.timedelta(seconds=int(grace))).strftime("%Y-%m-%dT%H:%M:%SZ")


def controller_owner(meta: dict[str, Any]) -> Optional[dict[str, Any]]:
    refs: list[dict[str, Any]] = meta.get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


_TYPES_BY_LABEL = {"scheduler": "Scheduler", "ps": "PS", "worker": "Worker"}


def _int(value: object) -> Optional[int]:
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _pick_container_status(statuses: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    for status in statuses:
        if status.get("name") == MAIN_CONTAINER:
            return status
    # Otherwise the first container that failed, else the first.
    for status in statuses:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode"):
            return status
    return statuses[0] if statuses else None


# Views by (uid, resourceVersion) of the pod and of its member's Lease: a pass over a big gang re-reads
# hundreds of pods that have not changed since the last pass (a draining gang of 513 pods spent most
# of its passes here). A given resourceVersion of an object never changes, so a view of it never goes
# stale; the memo is simply dropped when full.
_VIEWS: dict[tuple[str, str, str], PodView] = {}
_VIEWS_MAX = 16384


def view_pod(pod: dict[str, Any], lease: Optional[dict[str, Any]] = None) -> PodView:
    """The view of ``pod``, with its agent's report from ``lease`` (its member's Lease, if it has one)."""
    meta = pod.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    lease_version = "" if lease is None else (lease.get("metadata") or {}).get("resourceVersion")
    if not (uid and version) or lease_version is None:
        return _view(pod, lease)
    key = (str(uid), str(version), str(lease_version))
    view = _VIEWS.get(key)
    if view is None:
        if len(_VIEWS) >= _VIEWS_MAX:
            _VIEWS.clear()
        view = _VIEWS[key] = _view(pod, lease)
    return view


def _view(pod: dict[str, Any], lease: Optional[dict[str, Any]] = None) -> PodView:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    owner = controller_owner(meta)
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    statuses = status.get("containerStatuses") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    target = next((c for c in conditions if c.get("type") == "DisruptionTarget" and c.get("status") == "True"), None)
    disruption_reason = (target or {}).get("reason") or ("DisruptionTarget" if target else None)
    if status.get("reason") in _DISRUPTION_REASONS:
        disruption_reason = disruption_reason or status["reason"]
    disruption = disruption_reason is not None

    container = exit_code = reason = message = finished_at = None
    waiting_reason = waiting_message = None
    chosen = _pick_container_status(statuses)
    if chosen is not None:
        state = chosen.get("state") or {}
        terminated = state.get("terminated")
        if terminated:
            container = chosen.get("name")
            exit_code = terminated.get("exitCode")
            reason = terminated.get("reason")
            message = terminated.get("message")
            finished_at = terminated.get("finishedAt")
        elif state.get("waiting"):
            waiting_reason = state["waiting"].get("reason")
            waiting_message = state["waiting"].get("message")
    if status.get("phase") == "Failed" and status.get("reason"):
        # Pod-level reasons (Evicted, DeadlineExceeded, ...) say more than the container's.
        reason = status["reason"]
        message = status.get("message") or message
    if waiting_reason is None:
        for init in status.get("initContainerStatuses") or []:
            stuck = (init.get("state") or {}).get("waiting") or {}
            if stuck.get("reason") and stuck["reason"] != "PodInitializing":
                waiting_reason, waiting_message = stuck["reason"], stuck.get("message")
                break
    if waiting_reason is None and status.get("phase", "Pending") == "Pending":
        for cond in conditions:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                waiting_reason = cond.get("reason") or "Unschedulable"
                waiting_message = cond.get("message")

    return PodView(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        replica_type=_TYPES_BY_LABEL.get(labels.get(naming.REPLICA_TYPE_LABEL, "")),
        index=_int(labels.get(naming.REPLICA_INDEX_LABEL)),
        attempt=_int(labels.get(naming.ATTEMPT_LABEL)),
        phase=status.get("phase") or "Pending",
        deleting=bool(meta.get("deletionTimestamp")),
        ready=ready,
        node=(pod.get("spec") or {}).get("nodeName"),
        container=container,
        exit_code=exit_code,
        reason=reason,
        message=message,
        finished_at=finished_at,
        disruption=disruption,
        disruption_reason=disruption_reason,
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        deletion_timestamp=meta.get("deletionTimestamp"),
        deletion_requested_at=_deletion_requested_at(meta),
        owner_uid=(owner or {}).get("uid"),
        owner=f"{owner.get('kind')}/{owner.get('name')}" if owner else None,
        scheduler_address=(meta.get("annotations") or {}).get(naming.SCHEDULER_ADDRESS_ANNOTATION),
        agent=_agent_report(pod, lease),
    )
