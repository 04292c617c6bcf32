"""Level-based reconcile: from the MSJob and the children that exist now, decide what to do.

``reconcile`` is pure: it reads the job, the observed pods and Services and the time, and returns a
``Plan`` (objects to create, pods to delete, Events, and the one status to write).  Everything the
operator must remember between passes lives in the job's status or in the pods' labels, so a
restarted operator resumes exactly where the last one stopped.

Gang restarts and resumes bump ``status.attempt``; pods carry the attempt they were created for, so
pods of an older attempt are stale and get deleted, and the new gang is created as the old one goes
(each name is reused once its old pod is gone; see ``_finish_pass`` for the order).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
from typing import Optional

from pydantic import ValidationError

from .. import naming
from ..api.models import DEFAULT_BACKOFF_LIMIT, FailureAction, MSJobSpec
from ..builders import ranktable
from ..builders.env import launch_mode, needs_scheduler_service, replica_count
from ..builders.podgroup import build_podgroup, gang_enabled, join_gang
from ..builders.pods import build_pod
from ..builders.services import build_services
from msjob_runtime.progress import parse_time  # noqa: F401  (also used by the controller)
from ..settings import DEFAULT, Settings
from . import conditions as cond
from . import health
from .observed import PodView, view_pod
from .policy import Decision, decide, severity

# A pod still terminating this long after its deletion deadline is force-deleted (dead node).
FORCE_DELETE_AFTER = dt.timedelta(seconds=30)
HANDLED_FAILURES_KEPT = 32
MESSAGE_LIMIT = 2048
OUTPUT_IN_MESSAGE = 1024  # characters of a failed member's last output quoted in conditions


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
    status: dict
    create_services: list[dict] = dataclasses.field(default_factory=list)
    create_pods: list[dict] = dataclasses.field(default_factory=list)
    delete_pods: list[PodDeletion] = dataclasses.field(default_factory=list)
    create_podgroups: list[dict] = dataclasses.field(default_factory=list)
    apply_configmaps: list[dict] = dataclasses.field(default_factory=list)
    # Other namespaced objects to create if missing (the progress reporter's RBAC).
    create_objects: list[dict] = dataclasses.field(default_factory=list)
    delete_podgroups: list[str] = dataclasses.field(default_factory=list)
    events: list[JobEvent] = dataclasses.field(default_factory=list)
    # For metrics: "created", "running", "succeeded", "failed:<reason>", "restarted:<reason>", ...
    transitions: list[str] = dataclasses.field(default_factory=list)
    delete_job: bool = False
    requeue_after: Optional[float] = None
    # Pods wait for the scheduler Service's ClusterIP or for their PodGroup: apply
    # create_services and create_podgroups, then reconcile again.
    waiting_for_prerequisites: bool = False

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def fmt_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_failure(pod: PodView) -> str:
    what = f"{pod.replica_type or 'member'} {pod.index} (pod {pod.name})"
    if pod.deleting and not pod.finished:
        return f"{what} was deleted while the job was running"
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


def failure_record(decision: Decision, now: str) -> dict:
    pod = decision.pod
    record = {
        "pod": pod.name, "replicaType": pod.replica_type, "index": pod.index, "container": pod.container,
        "exitCode": pod.exit_code, "reason": pod.reason or ("Deleted" if pod.deleting else None),
        "message": _truncate(pod.message.strip()) if pod.message else None, "node": pod.node,
        "time": pod.finished_at or now, "action": f"{decision.action} ({decision.rule})",
    }
    return {k: v for k, v in record.items() if v is not None}


class _Pass:
    """State of one reconcile pass: the status being built and the plan being filled."""

    def __init__(self, job: dict, spec: MSJobSpec, now: dt.datetime, settings: Settings = DEFAULT,
                 podgroups: tuple = (), pods: tuple = ()):
        self.job = job
        self.spec = spec
        self.now = now
        self.settings = settings
        self.podgroups = list(podgroups)
        # The observed pods as the API server sent them (annotations the views leave out).
        self.raw_pods = {pod["metadata"]["name"]: pod for pod in pods}
        self.now_text = fmt_time(now)
        self.name = job["metadata"]["name"]
        # A deep copy: the job dict belongs to the operator's cache and must stay as observed.
        self.status: dict = copy.deepcopy(job.get("status") or {})
        self.status["conditions"] = self.status.get("conditions") or []
        # Jobs written before `attempt` existed used restartCount as their attempt.
        self.status.setdefault("attempt", self.status.get("restartCount") or 0)
        self.plan = Plan(status=self.status)

    # -- conditions and events ------------------------------------------------------------
    @property
    def conditions(self) -> list[dict]:
        return self.status["conditions"]

    def condition(self, ctype: str, status: str, reason: str, message: str) -> bool:
        return cond.set_condition(self.conditions, ctype, status, reason, message, self.now_text)

    def event(self, etype: str, reason: str, message: str) -> None:
        self.plan.events.append(JobEvent(etype, reason, _truncate(message, 1024)))

    # -- terminal transitions ----------------------------------------------------------------
    def finish(self, succeeded: bool, reason: str, message: str) -> None:
        ctype = "Succeeded" if succeeded else "Failed"
        if self.condition(ctype, cond.TRUE, reason, _truncate(message)):
            self.event("Normal" if succeeded else "Warning", reason, message)
            self.plan.transitions.append("succeeded" if succeeded else f"failed:{reason}")
        self.condition("Running", cond.FALSE, reason, message)
        self.condition("Restarting", cond.FALSE, reason, message)
        self.status.setdefault("completionTime", self.now_text)

    # -- restarts -----------------------------------------------------------------------------
    @property
    def backoff_limit(self) -> int:
        run = self.spec.run_policy
        return run.backoff_limit if run and run.backoff_limit is not None else DEFAULT_BACKOFF_LIMIT

    def budget_left(self) -> bool:
        return (self.status.get("backoffCount") or 0) < self.backoff_limit

    def count_restart(self) -> None:
        self.status["backoffCount"] = (self.status.get("backoffCount") or 0) + 1

    def restart_gang(self, reason: str, message: str, counted: bool) -> bool:
        """Begin a new attempt; returns False (and fails the job) when the budget is spent."""
        if counted and not self.budget_left():
            self.finish(False, "BackoffLimitExceeded",
                        f"{message}; the restart budget (runPolicy.backoffLimit={self.backoff_limit}) is used up")
            return False
        if counted:
            self.count_restart()
        self.status["restartCount"] = (self.status.get("restartCount") or 0) + 1
        self.new_attempt()
        self.condition("Restarting", cond.TRUE, reason, _truncate(f"restarting all pods: {message}"))
        self.condition("Running", cond.FALSE, reason, "the gang is restarting")
        self.event("Warning", reason, f"restarting all pods (attempt {self.status['attempt']}): {message}")
        self.plan.transitions.append(f"restarted:{reason}")
        return True

    @property
    def attempt(self) -> int:
        return self.status["attempt"]

    def new_attempt(self) -> None:
        """Pods of earlier attempts become stale: they are deleted before the next gang is created."""
        self.status["attempt"] = self.attempt + 1
        self.status["attemptStartTime"] = self.now_text

    def remember_handled(self, uid: str) -> None:
        handled = list(self.status.get("handledFailures") or [])
        if uid not in handled:
            handled.append(uid)
        self.status["handledFailures"] = handled[-HANDLED_FAILURES_KEPT:]


def _expected_keys(spec: MSJobSpec) -> list[tuple[str, int]]:
    return [(rtype, index) for rtype, replica in spec.ms_replica_specs.items()
            for index in range(replica.replicas if replica.replicas is not None else 1)]


def _classify(views: list[PodView], attempt: int, expected: set) -> tuple[dict, list[PodView]]:
    """Pods of the current attempt by (type, index), and stale pods (older attempts, extra indexes)."""
    current = {v.key: v for v in views if v.attempt == attempt and v.key in expected}
    stale = [v for v in views if v.attempt != attempt or v.key not in expected]
    return current, stale


def _deletions(pods: list[PodView], now: dt.datetime) -> list[PodDeletion]:
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


def _release_gang(p: _Pass) -> None:
    """A finished or suspended job must not hold a gang reservation in its queue."""
    p.plan.delete_podgroups.extend(pg["metadata"]["name"] for pg in p.podgroups
                                   if not pg["metadata"].get("deletionTimestamp"))


def _clean_pods(p: _Pass, pods: list[PodView]) -> None:
    _release_gang(p)
    policy = (p.spec.run_policy.clean_pod_policy if p.spec.run_policy else None) or "Running"
    if policy == "None":
        return
    doomed = [pod for pod in pods if policy == "All" or pod.active or (pod.deleting and not pod.finished)]
    p.plan.delete_pods.extend(_deletions(doomed, p.now))
    if any(pod.deleting for pod in doomed):
        p.plan.requeue(FORCE_DELETE_AFTER.total_seconds())


def _summarize(p: _Pass, spec: MSJobSpec, current: dict[tuple[str, int], PodView]) -> None:
    replica_statuses = {}
    for rtype, _ in spec.ms_replica_specs.items():
        mine = [pod for key, pod in current.items() if key[0] == rtype]
        old = (p.status.get("replicaStatuses") or {}).get(rtype) or {}
        entry = {
            "active": sum(pod.active for pod in mine),
            "ready": sum(pod.running and pod.ready for pod in mine),
            "succeeded": sum(pod.succeeded for pod in mine),
            # A member that ends after its deletion was asked for (cleanup after the job ended, a
            # suspension, a gang restart) was stopped, not failed: SIGTERM's exit code is no fault.
            "failed": sum(pod.failed and not pod.deleting for pod in mine),
            "selector": naming.selector_string(naming.replica_labels(p.name, rtype)),
        }
        if old.get("restarts"):
            entry["restarts"] = old["restarts"]
        replica_statuses[rtype] = entry
    p.status["replicaStatuses"] = replica_statuses
    workers = replica_statuses.get("Worker", {})
    p.status["workers"] = f"{workers.get('ready', 0)}/{replica_count(spec, 'Worker')}"
    _gang_status(p)
    p.status["state"] = cond.state(p.conditions)
    p.status["observedGeneration"] = p.job["metadata"].get("generation")
    p.status.setdefault("restartCount", 0)


def _gang_status(p: _Pass) -> None:
    """Show the gang scheduler's view (e.g. waiting for resources in a queue) in the job's status."""
    if not p.podgroups:
        return
    group = p.podgroups[0]
    gstatus = group.get("status") or {}
    message = ""
    for condition in gstatus.get("conditions") or []:
        if condition.get("type") == "Unschedulable" and condition.get("status") == "True":
            message = f"{condition.get('reason') or 'Unschedulable'}: {condition.get('message') or ''}".strip()
    entry = {"name": group["metadata"]["name"], "phase": gstatus.get("phase") or "Pending"}
    if message and entry["phase"] != "Running":
        entry["message"] = _truncate(message, 1024)
    previous = p.status.get("podGroup") or {}
    if (previous.get("phase"), previous.get("message")) != (entry["phase"], entry.get("message")):
        queue = (group.get("spec") or {}).get("queue")
        where = f" in queue {queue}" if queue else ""
        text = f"PodGroup {entry['name']} is {entry['phase']}{where}"
        if entry.get("message"):
            text += f": {entry['message']}"
        p.event("Warning" if entry.get("message") else "Normal", f"Gang{entry['phase']}", text)
    p.status["podGroup"] = entry


def reconcile(job: dict, pods: list[dict], services: list[dict], now: dt.datetime,
              settings: Settings = DEFAULT, podgroups: list[dict] | tuple = ()) -> Plan:
    try:
        spec = MSJobSpec.model_validate(job.get("spec") or {})
    except ValidationError as exc:
        # The CRD rejects this at admission; an object stored before a stricter CRD can still get here.
        p = _Pass(job, MSJobSpec.model_construct(), now)
        p.finish(False, "InvalidSpec", f"the MSJob spec is invalid: {exc.errors()[0]['msg']}")
        p.status["state"] = cond.state(p.conditions)
        return p.plan

    p = _Pass(job, spec, now, settings, tuple(podgroups), tuple(pods))
    views = [view_pod(pod) for pod in pods]
    expected = _expected_keys(spec)
    current, stale = _classify(views, p.attempt, set(expected))

    # 1. Finished jobs: clean up per cleanPodPolicy, then delete the job when its TTL has passed.
    if cond.finished(p.conditions):
        _clean_pods(p, views)
        ttl = p.spec.run_policy.ttl_seconds_after_finished if p.spec.run_policy else None
        completed = parse_time(p.status.get("completionTime"))
        if ttl is not None and completed is not None:
            remaining = (completed + dt.timedelta(seconds=ttl) - now).total_seconds()
            if remaining <= 0:
                p.plan.delete_job = True
            else:
                p.plan.requeue(remaining)
        _summarize(p, spec, current)
        return p.plan

    # 1b. Over the operator's cap (--max-replicas-per-job): fail before any pod exists.
    total = sum(replica_count(spec, rtype) for rtype, _ in spec.ms_replica_specs.items())
    if total > settings.max_pods_per_job:
        p.finish(False, "TooManyReplicas",
                 f"the job asks for {total} pods (msReplicaSpecs), more than this operator allows per job "
                 f"({settings.max_pods_per_job}, --max-replicas-per-job)")
        _clean_pods(p, views)
        _summarize(p, spec, current)
        return p.plan

    # 2. Suspended: hold no pods, keep the job.
    run = spec.run_policy
    if run and run.suspend:
        p.plan.delete_pods.extend(_deletions(views, now))
        if p.condition("Suspended", cond.TRUE, "MSJobSuspended", "the job is suspended; its pods are deleted"):
            p.event("Normal", "MSJobSuspended", "job suspended: deleting its pods")
            p.plan.transitions.append("suspended")
        p.condition("Running", cond.FALSE, "MSJobSuspended", "the job is suspended")
        p.condition("Restarting", cond.FALSE, "MSJobSuspended", "the job is suspended")
        # As for batch Jobs, the active deadline counts from the (next) resume.
        p.status.pop("startTime", None)
        _release_gang(p)
        _summarize(p, spec, current)
        return p.plan
    if cond.is_true(p.conditions, "Suspended"):
        p.condition("Suspended", cond.FALSE, "MSJobResumed", "the job was resumed")
        p.event("Normal", "MSJobResumed", "job resumed: recreating its pods")
        p.plan.transitions.append("resumed")
        # Pods of the suspended attempt may still be terminating: a new attempt makes them stale.
        p.new_attempt()
        current, stale = _classify(views, p.attempt, set(expected))

    # 3. Start: the first pass that will create pods.
    if not p.status.get("startTime"):
        p.status["startTime"] = p.now_text
        p.status.setdefault("attemptStartTime", p.now_text)
    if p.condition("Created", cond.TRUE, "MSJobCreated", f"MSJob {p.name} is created"):
        p.event("Normal", "MSJobCreated", f"MSJob {p.name} is created")
        p.plan.transitions.append("created")

    # 4. Active deadline.
    deadline = run.active_deadline_seconds if run else None
    if deadline:
        started = parse_time(p.status["startTime"])
        remaining = (started + dt.timedelta(seconds=deadline) - now).total_seconds()
        if remaining <= 0:
            p.finish(False, "DeadlineExceeded", f"the job was active longer than runPolicy.activeDeadlineSeconds={deadline}")
            _clean_pods(p, views)
            _summarize(p, spec, current)
            return p.plan
        p.plan.requeue(remaining)

    workers = replica_count(spec, "Worker")
    # 5. Resized (e.g. `kubectl scale msjob`): MindSpore's world size is fixed, so restart the gang.
    world = p.status.get("worldSize")
    if world is not None and world != workers and current:
        p.restart_gang("Resized", f"Worker replicas changed from {world} to {workers}", counted=False)
        p.status["worldSize"] = workers
        return _finish_pass(p, spec, views, services, {}, stale + list(current.values()))
    p.status["worldSize"] = workers

    # 6. Success.
    success_policy = spec.success_policy or ""
    worker_pods = [current.get(("Worker", i)) for i in range(workers)]
    if success_policy == "AllWorkers":
        done = all(pod is not None and pod.succeeded for pod in worker_pods)
        how = "all workers succeeded"
    else:
        done = bool(worker_pods) and worker_pods[0] is not None and worker_pods[0].succeeded
        how = "worker 0 succeeded"
    if done:
        p.finish(True, "MSJobSucceeded", f"MSJob {p.name} succeeded: {how}")
        _clean_pods(p, views)
        _summarize(p, spec, current)
        return p.plan

    # 6b. Lost members: a member of a gang that was all running is gone, and the operator never saw it
    # fail or terminate (force-deleted, or removed while the operator was down). A new pod alone would
    # join a MindSpore cluster that has broken up: restart the gang; not counted, as no fault is known.
    lost = [key for key in expected if key not in current] if cond.is_true(p.conditions, "Running") else []
    if spec.mindspore and spec.mindspore.enable_recovery:
        # With MS_ENABLE_RECOVERY a new scheduler alone is a real recovery: it is just recreated.
        lost = [key for key in lost if key[0] != "Scheduler"]
    if lost:
        pod_names = [naming.pod_name(p.name, *key) for key in lost]
        p.status["lastFailure"] = {"pod": pod_names[0], "replicaType": lost[0][0], "index": lost[0][1],
                                   "reason": "Lost", "time": p.now_text,
                                   "action": f"{FailureAction.RESTART_JOB_IGNORE_BUDGET.value} (member lost)"}
        more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
        message = f"pod {', '.join(pod_names[:3])}{more} vanished without being seen to fail or terminate"
        if p.restart_gang("MemberLost", message, counted=False):
            return _finish_pass(p, spec, views, services, {}, views)

    # 7. Failures: failed members, and members deleted by someone else while the job runs.
    handled = set(p.status.get("handledFailures") or [])
    for v in current.values():
        # A member whose replacement was decided but whose deletion did not happen (operator died).
        if v.uid in handled and v.failed and not v.deleting and decide(spec, v).action == FailureAction.RESTART_REPLICA.value:
            p.plan.delete_pods.append(PodDeletion(v.name, v.uid))
    troubled = [v for v in current.values()
                if v.uid not in handled and (v.failed or (v.deleting and not v.finished))]
    troubled.sort(key=lambda v: (v.finished_at or v.deletion_timestamp or "", v.name))
    decisions = [decide(spec, v) for v in troubled]
    if decisions:
        first = decisions[0]  # the earliest failure is the likely cause; report it
        strongest = max(decisions, key=lambda d: severity(d.action))
        p.status["lastFailure"] = failure_record(first, p.now_text)
        message = describe_failure(first.pod)
        action = strongest.action
        if action == FailureAction.FAIL_JOB.value:
            p.finish(False, "MemberFailed", f"{message} ({strongest.rule})")
        elif action in (FailureAction.RESTART_JOB.value, FailureAction.RESTART_JOB_IGNORE_BUDGET.value):
            reason = "MemberDisrupted" if strongest.pod.disruption else ("MemberDeleted" if strongest.pod.deleting and not strongest.pod.finished else "MemberFailed")
            if p.restart_gang(reason, f"{message} ({strongest.rule})", counted=action == FailureAction.RESTART_JOB.value):
                return _finish_pass(p, spec, views, services, {}, views)
        elif action == FailureAction.RESTART_REPLICA.value:
            replaced = [d.pod for d in decisions if d.action == FailureAction.RESTART_REPLICA.value]
            if not p.budget_left():
                p.finish(False, "BackoffLimitExceeded",
                         f"{message}; the restart budget (runPolicy.backoffLimit={p.backoff_limit}) is used up")
            else:
                p.count_restart()
                statuses = p.status.setdefault("replicaStatuses", {})
                for pod in replaced:
                    p.remember_handled(pod.uid)
                    entry = statuses.setdefault(pod.replica_type, {})
                    entry["restarts"] = (entry.get("restarts") or 0) + 1
                    p.event("Warning", "MemberRestarted", f"recreating {describe_failure(pod)} ({strongest.rule})")
                    p.plan.transitions.append("restarted:MemberRestarted")
                p.plan.delete_pods.extend(_deletions([pod for pod in replaced if not pod.deleting], now))
                for pod in replaced:
                    current.pop(pod.key, None)
        else:  # Ignore
            for d in decisions:
                p.remember_handled(d.pod.uid)
                p.event("Warning", "MemberFailureIgnored", f"{describe_failure(d.pod)} ({d.rule})")
        if cond.finished(p.conditions):
            _clean_pods(p, views)
            _summarize(p, spec, current)
            return p.plan

    # 8. Stalls: no training step for too long (spec.health).
    if health.enabled(spec):
        stalled, message = health.update(p, spec, p.raw_pods)
        if stalled:
            action = (spec.health.stall_action or "RestartJob")
            if p.condition("Stalled", cond.TRUE, "NoProgress", message):
                p.plan.transitions.append("stalled")
            if action == "FailJob":
                p.finish(False, "Stalled", message)
            elif p.restart_gang("Stalled", message, counted=True):
                return _finish_pass(p, spec, views, services, {}, views)
            if cond.finished(p.conditions):
                _clean_pods(p, views)
                _summarize(p, spec, current)
                return p.plan

    # 9. Startup deadline: every pod of the attempt must get running in time.
    policy = spec.failure_policy
    startup = policy.startup_deadline_seconds if policy else None
    not_started = [key for key in expected if key not in current or not (current[key].running or current[key].finished)]
    if startup and not_started:
        began = parse_time(p.status.get("attemptStartTime")) or now
        remaining = (began + dt.timedelta(seconds=startup) - now).total_seconds()
        if remaining <= 0:
            details = []
            for key in not_started[:5]:
                pod = current.get(key)
                if pod is None:
                    details.append(f"{naming.pod_name(p.name, *key)} not created")
                else:
                    why = pod.waiting_reason or pod.phase
                    if pod.waiting_message:
                        why += f": {pod.waiting_message}"
                    details.append(f"{pod.name} {why}")
            more = f" and {len(not_started) - 5} more" if len(not_started) > 5 else ""
            message = (f"{len(not_started)} of {len(expected)} pods not running after "
                       f"failurePolicy.startupDeadlineSeconds={startup}: {'; '.join(details)}{more}")
            action = (policy.startup_deadline_action or "FailJob")
            if action == "RestartJob":
                if p.restart_gang("StartupDeadlineExceeded", message, counted=True):
                    return _finish_pass(p, spec, views, services, {}, views)
            else:
                p.finish(False, "StartupDeadlineExceeded", message)
            _clean_pods(p, views)
            _summarize(p, spec, current)
            return p.plan
        p.plan.requeue(remaining)

    return _finish_pass(p, spec, views, services, current, stale)


def _finish_pass(p: _Pass, spec: MSJobSpec, views: list[PodView], services: list[dict],
                 current: dict[tuple[str, int], PodView], stale: list[PodView]) -> Plan:
    """Delete what is stale, create what is missing, and summarize the status."""
    now = p.now
    if stale:
        p.plan.delete_pods.extend(_deletions(stale, now))
        if any(pod.deleting for pod in stale):
            p.plan.requeue(FORCE_DELETE_AFTER.total_seconds())
        if _overlaps_restarts(spec) and not any(pod.replica_type == "Scheduler" for pod in stale):
            # A big gang drains for seconds: its successors are created as their names come free,
            # but never across schedulers: members only once the old scheduler is gone (none can
            # reach it), the new scheduler only once every old member is gone (none can reach it).
            _create_missing(p, spec, views, services, current, hold_scheduler=True)
    else:
        _create_missing(p, spec, views, services, current)
    _rank_table(p, spec, current)

    expected = _expected_keys(spec)
    all_running = bool(current) and all(
        key in current and (current[key].running or current[key].succeeded) for key in expected)
    if all_running:
        if p.condition("Running", cond.TRUE, "MSJobRunning", f"all {len(expected)} pods are running"):
            p.event("Normal", "MSJobRunning", f"all {len(expected)} pods are running")
            p.plan.transitions.append("running")
        if cond.is_true(p.conditions, "Restarting"):
            p.condition("Restarting", cond.FALSE, "MSJobRestarted", "the restarted gang is running")
    elif not cond.is_true(p.conditions, "Restarting"):
        p.condition("Running", cond.FALSE, "PodsNotRunning",
                    f"{sum(1 for k in expected if k in current and current[k].running)} of {len(expected)} pods are running")
    _summarize(p, spec, current)
    return p.plan


def _rank_table(p: _Pass, spec: MSJobSpec, current: dict[tuple[str, int], PodView]) -> None:
    """Keep the job's hccl.json in step with the devices the device plugin gave its Worker pods."""
    if launch_mode(spec) != "RankTable":
        return
    workers = [p.raw_pods[pod.name] for key, pod in sorted(current.items()) if key[0] == "Worker"]
    try:
        table = ranktable.build_rank_table(workers, expected_pods=replica_count(spec, "Worker"))
    except ranktable.RankTableError as exc:
        p.event("Warning", "RankTableInvalid", str(exc))
        return
    digest = hashlib.sha256(ranktable.render(table).encode()).hexdigest()[:16]
    previous = p.status.get("rankTable") or {}
    if previous.get("hash") != digest:
        p.plan.apply_configmaps.append(ranktable.configmap(p.job, table))
        if table["status"] == ranktable.STATUS_COMPLETED:
            p.event("Normal", "RankTableCompleted",
                    f"hccl.json completed: {table['server_count']} servers, {ranktable.rank_count(table)} ranks")
    if not previous:
        # The pods mount the ConfigMap: it must exist before them.
        p.plan.waiting_for_prerequisites = True
        p.plan.create_pods.clear()
    p.status["rankTable"] = {"status": table["status"], "servers": int(table["server_count"]),
                             "ranks": ranktable.rank_count(table), "hash": digest}


def _overlaps_restarts(spec: MSJobSpec) -> bool:
    """Whether a new gang may be created while the old one drains: only where the MindSpore scheduler
    is a member of its own (Dynamic mode with a Scheduler replica). Under msrun it lives in worker 0,
    and rank-table jobs get one table for the whole gang: there the old gang goes first, whole."""
    return launch_mode(spec) == "Dynamic" and replica_count(spec, "Scheduler") > 0


def _create_missing(p: _Pass, spec: MSJobSpec, views: list[PodView], services: list[dict],
                    current: dict[tuple[str, int], PodView], hold_scheduler: bool = False) -> None:
    existing_services = {svc["metadata"]["name"]: svc for svc in services}
    for svc in build_services(p.job, spec):
        if svc["metadata"]["name"] not in existing_services:
            p.plan.create_services.append(svc)
    gang = gang_enabled(spec, p.settings)
    if gang and not p.podgroups:
        p.plan.create_podgroups.append(build_podgroup(p.job, spec, p.settings.gang))
    reporting = health.enabled(spec)
    if reporting and "progress" not in p.status:
        # The reporter's ServiceAccount and Role come before the pod that uses them.
        p.plan.create_objects.extend(health.prerequisites(p.job, spec))
        p.status["progress"] = {"pod": health.reporter_pod(p.name)}
        p.plan.waiting_for_prerequisites = True
        return
    missing = [key for key in _expected_keys(spec) if key not in current]
    if not missing:
        return
    if gang and not p.podgroups:
        # Pods created before their PodGroup would be scheduled one by one.
        p.plan.waiting_for_prerequisites = True
        return
    # A pod of the same name may still be going away (a replaced member): wait for it.
    taken = {v.name for v in views}
    scheduler_ip = None
    if needs_scheduler_service(spec):
        svc = existing_services.get(naming.scheduler_service_name(p.name))
        scheduler_ip = (svc or {}).get("spec", {}).get("clusterIP")
        if not scheduler_ip or scheduler_ip == "None":
            p.plan.waiting_for_prerequisites = True
            return
    attempt = p.attempt
    replicas = dict(spec.ms_replica_specs.items())
    for rtype, index in missing:
        if hold_scheduler and rtype == "Scheduler":
            continue  # created in the pass that finds the old gang gone
        if naming.pod_name(p.name, rtype, index) in taken:
            # Its predecessor is still going away; look again even if its deletion event is missed.
            p.plan.requeue(5.0)
            continue
        pod = build_pod(p.job, spec, rtype, replicas[rtype], index, attempt=attempt, scheduler_ip=scheduler_ip)
        if gang:
            join_gang(pod, spec, rtype, p.settings.gang)
        if reporting and (rtype, index) == ("Worker", 0):
            health.add_reporter(pod, spec, p.settings.reporter_image)
        p.plan.create_pods.append(pod)
