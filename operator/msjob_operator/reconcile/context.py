"""The state of one reconcile pass: the plan being filled and the typed context the phases share.

Everything here is pure: the pass reads the job and what exists now, and fills a ``Plan`` that the
controller applies in order (one status write, then creates and deletes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping, Optional, Sequence

from msjob_runtime.agent_protocol import member_lease_name, rfc3339
from msjob_runtime.progress import parse_time

from ..api.enums import CleanPodPolicy, ConditionType, RestartStrategy
from ..api.limits import DEFAULT_BACKOFF_LIMIT, DEFAULT_UNCOUNTED_RESTART_LIMIT
from ..api.models import MSJobSpec
from ..api.status import Condition, MSJobStatus, RestartRecord
from ..builders.workload import WorkloadWrite
from ..config import DEFAULT, Config
from . import backoff
from . import conditions as cond
from .observed import PodView, controller_owner, view_pod
from .queueing import KueueObserved
from .waiting import Refusal

# A pod still terminating this long after its deletion deadline is force-deleted (dead node).
FORCE_DELETE_AFTER = dt.timedelta(seconds=30)
HANDLED_FAILURES_KEPT = 32
MESSAGE_LIMIT = 2048
OUTPUT_IN_MESSAGE = 1024  # characters of a failed member's last output quoted in conditions
# A requeue is a reminder to look again, never a promise to sleep for years: deadlines are re-read.
MAX_REQUEUE_SECONDS = 3600.0


@dataclasses.dataclass(frozen=True)
class PodDeletion:
    name: str
    uid: str
    grace_seconds: Optional[int] = None  # None: the pod's own grace period


@dataclasses.dataclass(frozen=True)
class JobEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclasses.dataclass
class Plan:
    status: dict[str, Any]
    create_services: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    create_pods: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    delete_pods: list[PodDeletion] = dataclasses.field(default_factory=list)
    create_podgroups: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    apply_configmaps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Namespaced objects written whole (merge patch, created when missing): the in-place agents' Role.
    apply_objects: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Other namespaced objects to create if missing (the progress reporter's RBAC, the in-place members' Leases).
    create_objects: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    delete_podgroups: list[str] = dataclasses.field(default_factory=list)
    # Kueue (phases/queue.py): the job's Workload to create, and writes to the one it has; before the pods.
    create_workloads: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    workload_writes: list[WorkloadWrite] = dataclasses.field(default_factory=list)
    events: list[JobEvent] = dataclasses.field(default_factory=list)
    # For metrics: "created", "running", "succeeded", "failed:<reason>", "restarted:<reason>", ...
    transitions: list[str] = dataclasses.field(default_factory=list)
    delete_job: bool = False
    requeue_after: Optional[float] = None
    # The pass's next step needs what this plan creates (the scheduler Service's ClusterIP, which the
    # members' env carries): the next pass follows as soon as this one is applied, before other jobs'.
    continues: bool = False

    def requeue(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), MAX_REQUEUE_SECONDS)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def fmt_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ms_time(moment: dt.datetime) -> str:
    """RFC 3339 UTC to the millisecond: the times of a restart's phases."""
    return rfc3339(moment) or ""


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclasses.dataclass(frozen=True)
class Observed:
    """What exists now, as the controller's caches and the API server's answers show it."""

    pods: Sequence[dict[str, Any]] = ()
    services: Sequence[dict[str, Any]] = ()
    podgroups: Sequence[dict[str, Any]] = ()
    # Creates the API server refused, by (kind, name): quota, admission, invalid objects.
    refusals: Mapping[tuple[str, str], Refusal] = dataclasses.field(default_factory=dict)
    # Objects found under a child's name that the job does not own (AlreadyExists on create).
    holders: Sequence[dict[str, Any]] = ()
    kueue: KueueObserved = KueueObserved()  # Kueue's objects (operator flag --kueue)
    configmaps: Sequence[dict[str, Any]] = ()  # the job's own ConfigMaps (the in-place gang's)
    leases: Sequence[dict[str, Any]] = ()  # the job's own Leases (its in-place agents' reports)


def _owned(obj: dict[str, Any], uid: Optional[str]) -> bool:
    return bool(uid) and (controller_owner(obj.get("metadata") or {}) or {}).get("uid") == uid


class PassContext:
    """State of one reconcile pass: what exists (members by ownership only), the status being
    built and the plan being filled."""

    def __init__(self, job: dict[str, Any], spec: MSJobSpec, now: dt.datetime, config: Config = DEFAULT,
                 observed: Observed = Observed()):
        self.job = job
        self.spec = spec
        self.now = now
        self.config = config
        uid = job["metadata"].get("uid")
        self.podgroups = [g for g in observed.podgroups if _owned(g, uid)]
        self.refusals: Mapping[tuple[str, str], Refusal] = observed.refusals
        self.kueue = observed.kueue.owned_by(uid)  # only Workloads the job controls
        # A pod is a member only if the job is its controller: an orphan of an earlier job of the same
        # name or a pod made by hand under a member's name is someone else's, never adopted or touched.
        pods = [*observed.pods, *(h for h in observed.holders if h.get("kind", "Pod") == "Pod")]
        self.leases = {lease["metadata"]["name"]: lease for lease in observed.leases if _owned(lease, uid)}
        views = [view_pod(pod, self.leases.get(member_lease_name(pod["metadata"]["name"]))) for pod in pods]
        self.members: list[PodView] = [v for v in views if v.owner_uid == uid]
        self.holders: dict[str, PodView] = {v.name: v for v in views if v.owner_uid != uid}
        # The observed members as the API server sent them (annotations the views leave out).
        self.raw_pods = {pod["metadata"]["name"]: pod for pod in observed.pods if _owned(pod, uid)}
        services = [*observed.services, *(h for h in observed.holders if h.get("kind") == "Service")]
        self.services = {s["metadata"]["name"]: s for s in services if _owned(s, uid)}
        self.foreign_services = {s["metadata"]["name"]: s for s in services if not _owned(s, uid)}
        self.configmaps = {c["metadata"]["name"]: c for c in observed.configmaps if _owned(c, uid)}
        self.now_text = fmt_time(now)
        self.name = job["metadata"]["name"]
        # A parsed copy: the job dict belongs to the operator's cache and must stay as observed.
        self.status = MSJobStatus.read(job.get("status"))
        self.status.conditions = self.status.conditions or []
        if self.status.attempt is None:
            # Jobs written before `attempt` existed used restartCount as their attempt.
            self.status.attempt = self.status.restart_count or 0
        self.plan = Plan(status={})

    def done(self) -> Plan:
        """The plan, with the status to write.

        A new job's first pass can only create the Services whose ClusterIP its pods need; the pass
        that follows at once creates the pods. That first pass records nothing (no status, no Event):
        the next one records it all with the pods, in one write instead of two (nothing is lost if the
        operator stops in between: the Services are found again, and the next pass starts the job)."""
        if self.plan.continues and not self.job.get("status"):
            self.plan.status = {}
            self.plan.events.clear()
            self.plan.transitions.clear()
            return self.plan
        self.plan.status = self.status.dump()
        return self.plan

    # -- conditions and events ------------------------------------------------------------
    @property
    def conditions(self) -> list[Condition]:
        assert self.status.conditions is not None
        return self.status.conditions

    def condition(self, ctype: ConditionType, status: str, reason: str, message: str) -> bool:
        return cond.set_condition(self.conditions, ctype, status, reason, message, self.now_text)

    def event(self, etype: str, reason: str, message: str) -> None:
        self.plan.events.append(JobEvent(etype, reason, truncate(message, 1024)))

    # -- terminal transitions ----------------------------------------------------------------
    def finish(self, succeeded: bool, reason: str, message: str) -> None:
        ctype = ConditionType.SUCCEEDED if succeeded else ConditionType.FAILED
        if self.condition(ctype, cond.TRUE, reason, truncate(message)):
            self.event("Normal" if succeeded else "Warning", reason, message)
            self.plan.transitions.append("succeeded" if succeeded else f"failed:{reason}")
        self.condition(ConditionType.RUNNING, cond.FALSE, reason, message)
        self.condition(ConditionType.RESTARTING, cond.FALSE, reason, message)
        self.stop_waiting(reason, "the job has finished")
        self.status.completion_time = self.status.completion_time or self.now_text

    def passed(self, since: Optional[str], seconds: float) -> bool:
        """Whether ``seconds`` have passed since the time ``since`` (now when unset); if not, look again then."""
        remaining = backoff.remaining(parse_time(since) or self.now, seconds, self.now)
        if remaining > 0:
            self.plan.requeue(remaining)
        return remaining <= 0

    def stop_waiting(self, reason: str, message: str) -> None:
        self.status.waiting = None
        self.condition(ConditionType.WAITING, cond.FALSE, reason, message)

    # -- restarts -----------------------------------------------------------------------------
    @property
    def backoff_limit(self) -> int:
        run = self.spec.run_policy
        return run.backoff_limit if run and run.backoff_limit is not None else DEFAULT_BACKOFF_LIMIT

    def budget_left(self) -> bool:
        return (self.status.backoff_count or 0) < self.backoff_limit

    def count_restart(self) -> None:
        self.status.backoff_count = (self.status.backoff_count or 0) + 1

    def count_any_restart(self) -> None:
        """RESTARTS (restartCount) counts every restart: gang restarts and members recreated alone."""
        self.status.restart_count = (self.status.restart_count or 0) + 1

    @property
    def uncounted_restart_limit(self) -> int:
        policy = self.spec.failure_policy
        limit = policy.uncounted_restart_limit if policy else None
        return DEFAULT_UNCOUNTED_RESTART_LIMIT if limit is None else limit

    def restart_gang(self, reason: str, message: str, counted: bool, streak: bool = True) -> bool:
        """Begin a new attempt; returns False (and fails the job) when a budget is spent.

        ``streak``: the restart follows a fault (not a resize), so it adds to the restarts in a row
        that set the backoff before the next gang."""
        delay = self.account_restart(message, counted, streak)
        if delay is None:
            return False
        self.new_attempt(delay)
        self.status.last_restart = RestartRecord(strategy=RestartStrategy.RECREATE.value, reason=reason,
                                                 attempt=self.attempt, failureDetected=ms_time(self.now))
        self.announce_restart(reason, message, delay, doing="restarting all pods", new="gang",
                              step=f"attempt {self.attempt}", running="the gang is restarting")
        return True

    def announce_restart(self, reason: str, message: str, delay: float, *, doing: str, new: str, step: str,
                         running: str) -> None:
        """The conditions, Event and transition of a gang restart (by either strategy) just begun."""
        in_a_row = self.status.consecutive_restarts
        when = f"; the new {new} starts in {delay:.0f} s (restart {in_a_row} in a row)" if delay else ""
        self.condition(ConditionType.RESTARTING, cond.TRUE, reason, truncate(f"{doing}: {message}{when}"))
        self.condition(ConditionType.RUNNING, cond.FALSE, reason, running)
        self.event("Warning", reason, f"{doing} ({step}{when}): {message}")
        self.plan.transitions.append(f"restarted:{reason}")

    def account_restart(self, message: str, counted: bool, streak: bool = True) -> Optional[float]:
        """Count a gang restart (by either strategy): the seconds its new gang waits (the backoff), or None
        when a budget is spent (the job is failed then)."""
        if counted and not self.budget_left():
            self.finish(False, "BackoffLimitExceeded",
                        f"{message}; the restart budget (runPolicy.backoffLimit={self.backoff_limit}) is used up")
            return None
        uncounted = (self.status.consecutive_uncounted_restarts or 0) + (0 if counted or not streak else 1)
        if uncounted > self.uncounted_restart_limit:
            self.finish(False, "UncountedRestartLimitExceeded",
                        f"{message}; {uncounted - 1} restarts not counted against backoffLimit came in a row "
                        "without the "
                        f"gang running for {backoff.HEALTHY_SECONDS:.0f} s in between "
                        f"(failurePolicy.uncountedRestartLimit={self.uncounted_restart_limit})")
            return None
        if counted:
            self.count_restart()
        delay = 0.0
        if streak:
            consecutive = (self.status.consecutive_restarts or 0) + 1
            self.status.consecutive_restarts = consecutive
            if uncounted:
                self.status.consecutive_uncounted_restarts = uncounted
            delay = backoff.delay(consecutive)
        self.count_any_restart()
        return delay

    @property
    def attempt(self) -> int:
        return self.status.attempt or 0

    def new_attempt(self, delay: float = 0.0) -> None:
        """Pods of earlier attempts become stale: they are deleted before the next gang is created,
        from ``attemptStartTime`` on (``delay`` seconds from now: a restart's backoff)."""
        self.status.attempt = self.attempt + 1
        self.status.attempt_start_time = fmt_time(backoff.after(self.now, delay))

    def remember_handled(self, uid: str) -> None:
        handled = list(self.status.handled_failures or [])
        if uid not in handled:
            handled.append(uid)
        self.status.handled_failures = handled[-HANDLED_FAILURES_KEPT:]


@dataclasses.dataclass
class Gang:
    """The job's members sorted by state: those of the current attempt by (type, index), and stale ones
    (older attempts, indexes beyond the replicas, members whose labels were taken off)."""

    expected: list[tuple[str, int]]
    current: dict[tuple[str, int], PodView]
    stale: list[PodView]

    @classmethod
    def of(cls, p: "PassContext") -> "Gang":
        expected = expected_keys(p.spec)
        current, stale = classify(p.members, p.attempt, set(expected))
        return cls(expected, current, stale)

    @property
    def members(self) -> list[PodView]:
        return [*self.current.values(), *self.stale]

    def not_started(self) -> list[tuple[str, int]]:
        return [key for key in self.expected
                if key not in self.current or not (self.current[key].running or self.current[key].finished)]


def expected_keys(spec: MSJobSpec) -> list[tuple[str, int]]:
    return [(rtype, index) for rtype, replica in spec.ms_replica_specs.items()
            for index in range(replica.replicas if replica.replicas is not None else 1)]


def classify(views: list[PodView], attempt: int,
             expected: set[tuple[str, int]]) -> tuple[dict[tuple[str, int], PodView], list[PodView]]:
    """Pods of the current attempt by (type, index), and stale pods (older attempts, extra indexes)."""
    current = {v.key: v for v in views if v.attempt == attempt and v.key is not None and v.key in expected}
    stale = [v for v in views if v.attempt != attempt or v.key not in expected]
    return current, stale


def deletions(pods: list[PodView], now: dt.datetime) -> list[PodDeletion]:
    """Delete pods not yet deleting; force-delete those stuck terminating (e.g. on a lost node)."""
    out = []
    for pod in pods:
        if not pod.deleting:
            out.append(PodDeletion(pod.name, pod.uid))
        else:
            deadline = parse_time(pod.deletion_timestamp)
            if deadline and now - deadline > FORCE_DELETE_AFTER:
                out.append(PodDeletion(pod.name, pod.uid, grace_seconds=0))
    return out


def release_gang(p: PassContext) -> None:
    """A finished or suspended job must not hold a gang reservation in its queue."""
    p.plan.delete_podgroups.extend(pg["metadata"]["name"] for pg in p.podgroups
                                   if not pg["metadata"].get("deletionTimestamp"))


def clean_pods(p: PassContext, pods: list[PodView]) -> None:
    release_gang(p)
    policy = (p.spec.run_policy.clean_pod_policy if p.spec.run_policy else None) or CleanPodPolicy.RUNNING.value
    if policy == CleanPodPolicy.NONE.value:
        return
    doomed = [pod for pod in pods
              if policy == CleanPodPolicy.ALL.value or pod.active or (pod.deleting and not pod.finished)]
    p.plan.delete_pods.extend(deletions(doomed, p.now))
    if any(pod.deleting for pod in doomed):
        p.plan.requeue(FORCE_DELETE_AFTER.total_seconds())


