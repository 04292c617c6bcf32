"""Converge: delete what is stale, create what is missing, say whether the gang runs.

Creation order during a gang restart: a big gang drains for seconds, so its successors are created
as their names come free, but never across schedulers (members only once the old scheduler is gone,
the new scheduler only once every old member is gone). Under msrun the scheduler lives in worker 0
and a rank table covers the whole gang: there the old gang goes first, whole.
"""

from __future__ import annotations

import hashlib
from typing import Optional

from msjob_runtime.progress import parse_time

from ...api import naming
from ...api.enums import ConditionType, LaunchMode, ReplicaType
from ...api.status import RankTableStatus
from ...builders import ranktable
from ...builders.env import launch_mode, needs_scheduler_service, replica_count
from ...builders.podgroup import gang_enabled, join_gang
from ...builders.pods import build_pod
from ...builders.services import build_services
from .. import backoff, health, inplace, waiting
from .. import conditions as cond
from ..context import FORCE_DELETE_AFTER, Gang, PassContext, deletions
from ..gang import plan_podgroup
from ..observed import PodView
from . import queue
from .summary import summarize

# A member whose predecessor is still going away is looked at again this often, even if the
# predecessor's deletion event is missed.
PREDECESSOR_RECHECK_SECONDS = 5.0
PIN_GRACE_SECONDS = 30.0


def converge(p: PassContext, gang: Gang) -> None:
    """Delete what is stale, create what is missing, and summarize the status."""
    stale = gang.stale
    blockers = waiting.JobBlockers()
    if stale:
        p.plan.delete_pods.extend(deletions(stale, p.now))
        if any(pod.deleting for pod in stale):
            p.plan.requeue(FORCE_DELETE_AFTER.total_seconds())
        if _overlaps_restarts(p) and not any(_may_be_scheduler(p, pod) for pod in stale):
            blockers = create_missing(p, gang, hold_scheduler=True)
    else:
        blockers = create_missing(p, gang)
    _rank_table(p, gang.current)
    _running_condition(p, gang)
    summarize(p, gang, blockers)


def restart(p: PassContext, gang: Gang) -> None:
    """The pass after a gang restart was decided: every member is stale now."""
    converge(p, Gang(gang.expected, {}, gang.members))


def _may_be_scheduler(p: PassContext, pod: PodView) -> bool:
    # A member whose labels were taken off may be the old scheduler: assume it is.
    scheduler = ReplicaType.SCHEDULER.value
    return pod.replica_type == scheduler or (pod.replica_type is None and pod.name == naming.pod_name(p.name,
                                                                                                      scheduler, 0))


def _running_condition(p: PassContext, gang: Gang) -> None:
    expected, current = gang.expected, gang.current
    all_running = bool(current) and all(
        key in current and (current[key].running or current[key].succeeded) for key in expected) \
        and inplace.processes_running(p, gang)
    if all_running:
        if p.condition(ConditionType.RUNNING, cond.TRUE, "MSJobRunning", f"all {len(expected)} pods are running"):
            p.event("Normal", "MSJobRunning", f"all {len(expected)} pods are running")
            p.plan.transitions.append("running")
        if cond.is_true(p.conditions, ConditionType.RESTARTING):
            p.condition(ConditionType.RESTARTING, cond.FALSE, "MSJobRestarted", "the restarted gang is running")
        _end_restart_streak(p)
    elif not cond.is_true(p.conditions, ConditionType.RESTARTING):
        p.condition(ConditionType.RUNNING, cond.FALSE, "PodsNotRunning",
                    f"{sum(1 for k in expected if k in current and current[k].running)} of {len(expected)} "
                    "pods are running")


def _end_restart_streak(p: PassContext) -> None:
    """A gang that has run for HEALTHY_SECONDS ends the streak of restarts that sets the backoff."""
    if not (p.status.consecutive_restarts or p.status.consecutive_uncounted_restarts):
        return
    running = cond.get(p.conditions, ConditionType.RUNNING)
    since = parse_time(running.last_transition_time if running else None) or p.now
    left = backoff.remaining(since, backoff.HEALTHY_SECONDS, p.now)
    if left <= 0:
        p.status.consecutive_restarts = None
        p.status.consecutive_uncounted_restarts = None
    else:
        p.plan.requeue(left)


def _rank_table(p: PassContext, current: dict[tuple[str, int], PodView]) -> None:
    """Keep the job's hccl.json in step with the devices the device plugin gave its Worker pods."""
    spec = p.spec
    if launch_mode(spec) != LaunchMode.RANK_TABLE.value:
        return
    workers = [p.raw_pods[pod.name] for key, pod in sorted(current.items()) if key[0] == ReplicaType.WORKER.value]
    try:
        table = ranktable.build_rank_table(workers, expected_pods=replica_count(spec, ReplicaType.WORKER.value))
    except ranktable.RankTableError as exc:
        p.event("Warning", "RankTableInvalid", str(exc))
        return
    digest = hashlib.sha256(ranktable.render(table).encode()).hexdigest()[:16]
    previous = p.status.rank_table
    if previous is None or previous.hash != digest:
        # Applied before the pods that mount it (the plan's prerequisites go first).
        p.plan.apply_configmaps.append(ranktable.configmap(p.job, table))
        if table["status"] == ranktable.STATUS_COMPLETED:
            p.event("Normal", "RankTableCompleted",
                    f"hccl.json completed: {table['server_count']} servers, {ranktable.rank_count(table)} ranks")
    p.status.rank_table = RankTableStatus(status=table["status"], servers=int(table["server_count"]),
                                          ranks=ranktable.rank_count(table), hash=digest)


def _overlaps_restarts(p: PassContext) -> bool:
    """Whether a new gang may be created while the old one drains: only where the MindSpore scheduler
    is a member of its own (Dynamic mode with a Scheduler replica)."""
    return launch_mode(p.spec) == LaunchMode.DYNAMIC.value and replica_count(p.spec, ReplicaType.SCHEDULER.value) > 0


def scheduler_ip(p: PassContext) -> tuple[Optional[str], Optional[waiting.Cause]]:
    """The ClusterIP of the job's own scheduler Service, or why there is none yet."""
    name = naming.scheduler_service_name(p.name)
    if name in p.foreign_services:
        return None, waiting.Cause(waiting.SERVICE_NAME_TAKEN, f"Service {name} exists and is not owned by this MSJob; "
                                                               "delete it or give the job another name")
    ip = ((p.services.get(name) or {}).get("spec") or {}).get("clusterIP")
    if ip and ip != "None":
        return ip, None
    refused = p.refusals.get(("Service", name))
    if refused is not None:
        return None, waiting.Cause(waiting.SERVICE_REFUSED, f"the API server refused Service {name}: {refused.message}")
    return None, None


def _pinned_address(p: PassContext) -> Optional[str]:
    """The address a recreated scheduler Service asks for: the one the members were given, unless the
    API server keeps refusing it (taken by another Service): then any, and the gang restarts with it.
    Refusals are retried for PIN_GRACE_SECONDS first: the address of a Service just deleted can take a
    moment to be released."""
    refused = p.refusals.get(("Service", naming.scheduler_service_name(p.name)))
    since = parse_time(refused.since) if refused is not None else None
    if refused is not None and (since is None or backoff.remaining(since, PIN_GRACE_SECONDS, p.now) <= 0):
        return None
    return p.status.scheduler_address


def create_missing(p: PassContext, gang: Gang, hold_scheduler: bool = False) -> waiting.JobBlockers:
    """Plan the creates of missing children; returns what holds up the missing pods job-wide."""
    spec = p.spec
    taken_names = set(p.services) | set(p.foreign_services)
    for svc in build_services(p.job, spec, scheduler_ip=_pinned_address(p)):
        if svc["metadata"]["name"] not in taken_names:
            p.plan.create_services.append(svc)
    gang_on = gang_enabled(spec, p.config)
    missing = [key for key in gang.expected if key not in gang.current]
    if gang_on:
        # Before any pod of the gang (the plan's prerequisites are applied first): pods created
        # before their PodGroup would be scheduled one by one.
        plan_podgroup(p)
    if not missing:
        return waiting.JobBlockers()
    begins = parse_time(p.status.attempt_start_time)
    if begins is not None and begins > p.now:
        p.plan.requeue((begins - p.now).total_seconds())
        return waiting.JobBlockers(backoff=waiting.Cause(
            waiting.RESTART_BACKOFF, f"the gang of attempt {p.attempt} starts at {p.status.attempt_start_time} "
                                     f"(backoff after {p.status.consecutive_restarts or 1} restarts in a row)"))
    address = None
    if needs_scheduler_service(spec):
        address, blocked = scheduler_ip(p)
        if address is None:
            # The members' env needs the Service's ClusterIP: the next pass creates them, at once
            # once the Service exists (its create is in this plan), later if it was refused.
            if blocked is not None:
                p.plan.requeue(PREDECESSOR_RECHECK_SECONDS)
            else:
                p.plan.continues = True
            return waiting.JobBlockers(service=blocked)
        p.status.scheduler_address = address
    reporting = health.enabled(spec)
    if reporting and (ReplicaType.WORKER.value, 0) in missing and not inplace.active(p):
        # The reporter's ServiceAccount and Role, before the pod that uses them (AlreadyExists is fine).
        # Under InPlace worker 0 runs as the agents' account, whose Role covers the reporter too.
        p.plan.create_objects.extend(health.prerequisites(p.job, spec))
    # A pod of the same name may still be going away (a replaced member), or be someone else's.
    taken = {v.name for v in p.members} | set(p.holders)
    replicas = dict(spec.ms_replica_specs.items())
    for rtype, index in missing:
        if hold_scheduler and rtype == ReplicaType.SCHEDULER.value:
            continue  # created in the pass that finds the old gang gone
        name = naming.pod_name(p.name, rtype, index)
        if name in taken:
            p.plan.requeue(PREDECESSOR_RECHECK_SECONDS)
            continue
        pod = build_pod(p.job, spec, rtype, replicas[rtype], index, attempt=p.attempt, scheduler_ip=address)
        if gang_on:
            join_gang(pod, spec, rtype, p.config.gang)
        queue.apply_admission(p, pod, rtype)  # Kueue's flavors: node selector and tolerations
        if reporting and (rtype, index) == (ReplicaType.WORKER.value, 0):
            health.add_reporter(pod, spec, p.config.reporter_image)
        p.plan.create_pods.append(pod)
    inplace.equip(p, p.plan.create_pods)  # restartStrategy InPlace: the agent, its identity, the gang ConfigMap
    if any(("Pod", naming.pod_name(p.name, *key)) in p.refusals for key in missing):
        p.plan.requeue(PREDECESSOR_RECHECK_SECONDS)
    return waiting.JobBlockers()
