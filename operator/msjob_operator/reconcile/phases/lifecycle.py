"""The job's lifecycle: finished (and its TTL), over the operator's cap, suspended and resumed,
started, past its active deadline, resized, succeeded.

Each phase returns True when it decided the pass (the plan is complete), False to go on.
"""

from __future__ import annotations

from msjob_runtime.progress import parse_time

from ...api.enums import ConditionType, ReplicaType
from ...builders.env import replica_count
from .. import backoff
from .. import conditions as cond
from ..context import Gang, PassContext, classify, clean_pods, deletions, release_gang
from .converge import restart
from .summary import summarize


def end_finished(p: PassContext, gang: Gang) -> bool:
    """The job has just finished or had finished: clean up per cleanPodPolicy."""
    clean_pods(p, gang.members)
    summarize(p, gang)
    return True


def finished(p: PassContext, gang: Gang) -> bool:
    """Finished jobs: clean up per cleanPodPolicy, then delete the job when its TTL has passed."""
    if not cond.finished(p.conditions):
        return False
    ttl = p.spec.run_policy.ttl_seconds_after_finished if p.spec.run_policy else None
    completed = parse_time(p.status.completion_time)
    if ttl is not None and completed is not None:
        remaining = backoff.remaining(completed, ttl, p.now)
        if remaining <= 0:
            p.plan.delete_job = True
        else:
            p.plan.requeue(remaining)
    return end_finished(p, gang)


def over_the_cap(p: PassContext, gang: Gang) -> bool:
    """Over the operator's cap (--max-replicas-per-job): fail before any pod exists."""
    total = sum(replica_count(p.spec, rtype) for rtype, _ in p.spec.ms_replica_specs.items())
    if total <= p.config.max_pods_per_job:
        return False
    p.finish(False, "TooManyReplicas",
             f"the job asks for {total} pods (msReplicaSpecs), more than this operator allows per job "
             f"({p.config.max_pods_per_job}, --max-replicas-per-job)")
    return end_finished(p, gang)


def suspended(p: PassContext, gang: Gang) -> bool:
    """Suspended: hold no pods, keep the job. Resumed: a new attempt, not counted as a restart."""
    run = p.spec.run_policy
    if run and run.suspend:
        p.plan.delete_pods.extend(deletions(gang.members, p.now))
        if p.condition(ConditionType.SUSPENDED, cond.TRUE, "MSJobSuspended",
                       "the job is suspended; its pods are deleted"):
            p.event("Normal", "MSJobSuspended", "job suspended: deleting its pods")
            p.plan.transitions.append("suspended")
        p.condition(ConditionType.RUNNING, cond.FALSE, "MSJobSuspended", "the job is suspended")
        p.condition(ConditionType.RESTARTING, cond.FALSE, "MSJobSuspended", "the job is suspended")
        p.stop_waiting("MSJobSuspended", "the job is suspended")
        # As for batch Jobs, the active deadline counts from the (next) resume.
        p.status.start_time = None
        release_gang(p)
        summarize(p, gang)
        return True
    if cond.is_true(p.conditions, ConditionType.SUSPENDED):
        p.condition(ConditionType.SUSPENDED, cond.FALSE, "MSJobResumed", "the job was resumed")
        p.event("Normal", "MSJobResumed", "job resumed: recreating its pods")
        p.plan.transitions.append("resumed")
        # Pods of the suspended attempt may still be terminating: a new attempt makes them stale.
        p.new_attempt()
        gang.current, gang.stale = classify(p.members, p.attempt, set(gang.expected))
    return False


def started(p: PassContext, gang: Gang) -> bool:
    """The first pass that will create pods (again, after a resume)."""
    if not p.status.start_time:
        p.status.start_time = p.now_text
        p.status.attempt_start_time = p.status.attempt_start_time or p.now_text
    if p.condition(ConditionType.CREATED, cond.TRUE, "MSJobCreated", f"MSJob {p.name} is created"):
        p.event("Normal", "MSJobCreated", f"MSJob {p.name} is created")
        p.plan.transitions.append("created")
    return False


def active_deadline(p: PassContext, gang: Gang) -> bool:
    run = p.spec.run_policy
    deadline = run.active_deadline_seconds if run else None
    if not deadline or not p.passed(p.status.start_time, deadline):
        return False
    p.finish(False, "DeadlineExceeded", f"the job was active longer than runPolicy.activeDeadlineSeconds={deadline}")
    return end_finished(p, gang)


def resized(p: PassContext, gang: Gang) -> bool:
    """Resized (e.g. `kubectl scale msjob`): MindSpore's world size is fixed, so restart the gang."""
    workers = replica_count(p.spec, ReplicaType.WORKER.value)
    world = p.status.world_size
    p.status.world_size = workers
    if world is None or world == workers or not gang.current:
        return False
    p.restart_gang("Resized", f"Worker replicas changed from {world} to {workers}", counted=False, streak=False)
    restart(p, gang)
    return True


def succeeded(p: PassContext, gang: Gang) -> bool:
    workers = replica_count(p.spec, ReplicaType.WORKER.value)
    worker_pods = [gang.current.get((ReplicaType.WORKER.value, i)) for i in range(workers)]
    if (p.spec.success_policy or "") == "AllWorkers":
        done = all(pod is not None and pod.succeeded for pod in worker_pods)
        how = "all workers succeeded"
    else:
        done = bool(worker_pods) and worker_pods[0] is not None and worker_pods[0].succeeded
        how = "worker 0 succeeded"
    if not done:
        return False
    p.finish(True, "MSJobSucceeded", f"MSJob {p.name} succeeded: {how}")
    return end_finished(p, gang)
