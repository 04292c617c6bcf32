"""The reconcile under hostile use: membership by ownership, budgets, backoff, refusals, stable addresses."""

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msjob_operator.api import models, naming
from msjob_operator.controller.kube import merge_patch
from msjob_operator.reconcile import backoff
from msjob_operator.reconcile.plan import reconcile
from msjob_operator.reconcile.waiting import Refusal

from .jobs import NOW, gang, job, pod, services
from .test_plan import conds, names, running_status


def deleted_by_hand(p: dict, seconds_before_now: int = 5, grace: int = 30) -> dict:
    deadline = NOW - dt.timedelta(seconds=seconds_before_now) + dt.timedelta(seconds=grace)
    p["metadata"]["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    p["metadata"]["deletionGracePeriodSeconds"] = grace
    return p


# -- membership by ownership ------------------------------------------------------------------------

def test_pods_the_job_does_not_own_are_not_members():
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, owner=False)  # an orphan of an earlier job of the same name
    plan = reconcile(job(), pods, services(), NOW)
    assert not plan.create_pods and not plan.delete_pods  # never adopted, never touched
    assert plan.status["replicaStatuses"]["Worker"]["active"] == 1
    waiting = plan.status["waiting"]
    assert waiting["reason"] == "PodNameTaken" and "demo-worker-1" in waiting["message"]
    assert "owner: none" in waiting["message"]
    assert conds(plan)["Waiting"]["status"] == "True" and "Running" not in conds(plan)
    assert any(e.reason == "PodNameTaken" and e.type == "Warning" for e in plan.events)


def test_a_foreign_pod_that_fails_changes_nothing():
    impostor = pod("demo", "Worker", 5, phase="Failed", exit_code=1, owner=False)
    plan = reconcile(job(status=running_status()), gang() + [impostor], services(), NOW)
    assert plan.status["restartCount"] == 0 and not plan.delete_pods


def test_a_squatter_found_by_alreadyexists_holds_its_name():
    squatter = {"kind": "Pod", "metadata": {"name": "demo-worker-1", "namespace": "ns", "uid": "x",
                                            "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": "rs-uid",
                                                                 "controller": True}]}}
    plan = reconcile(job(), gang()[:2], services(), NOW, holders=[squatter])
    assert "demo-worker-1" not in names(plan.create_pods)
    assert "owner: ReplicaSet/rs" in plan.status["waiting"]["message"]


# -- budgets as documented ----------------------------------------------------------------------------

def test_a_member_deleted_by_hand_restarts_uncounted_whatever_its_exit_code():
    pods = gang()
    # Deleted at 11:58:30, and ended by that (at 11:59:00, jobs.pod's finish time).
    pods[2] = deleted_by_hand(pod("demo", "Worker", 1, phase="Failed", exit_code=143), seconds_before_now=90)
    plan = reconcile(job(status=running_status(), runPolicy={"backoffLimit": 0}), pods, services(), NOW)
    assert plan.status["restartCount"] == 1 and not plan.status.get("backoffCount")
    assert conds(plan)["Restarting"]["reason"] == "MemberDeleted"
    assert plan.status["lastFailure"]["reason"] == "Deleted" and "exitCode" not in plan.status["lastFailure"]
    # Still running when seen being deleted: the same.
    pods[2] = deleted_by_hand(pod("demo", "Worker", 1))
    assert not reconcile(job(status=running_status(), runPolicy={"backoffLimit": 0}), pods, services(), NOW) \
        .status.get("backoffCount")


def test_a_member_that_failed_before_it_was_deleted_failed():
    pods = gang()
    # Failed at 11:59:00 (jobs.pod), deleted by hand at 11:59:55: the failure counts.
    pods[2] = deleted_by_hand(pod("demo", "Worker", 1, phase="Failed", exit_code=3))
    plan = reconcile(job(status=running_status(), runPolicy={"backoffLimit": 0}), pods, services(), NOW)
    assert conds(plan)["Failed"]["reason"] == "BackoffLimitExceeded"


def test_a_preempted_or_evicted_member_names_the_disruption():
    pods = gang()
    pods[2] = deleted_by_hand(pod("demo", "Worker", 1, disruption=True))
    plan = reconcile(job(status=running_status(), runPolicy={"backoffLimit": 0}), pods, services(), NOW)
    assert plan.status["lastFailure"]["reason"] == "EvictionByEvictionAPI" and not plan.status.get("backoffCount")


# -- backoff ---------------------------------------------------------------------------------------------

def test_backoff_doubles_from_the_second_restart_in_a_row():
    assert [backoff.delay(n) for n in range(1, 8)] == [0, 10, 20, 40, 80, 160, 320]
    assert backoff.delay(100) == backoff.MAX_SECONDS


def test_the_second_restart_in_a_row_waits_before_creating_its_gang():
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", reason="Evicted", disruption=True)
    plan = reconcile(job(status=running_status(consecutiveRestarts=1, consecutiveUncountedRestarts=1, restartCount=1,
                                               attempt=0)), pods, services(), NOW)
    assert plan.status["consecutiveRestarts"] == 2 and plan.status["consecutiveUncountedRestarts"] == 2
    assert plan.status["attemptStartTime"] == "2026-11-22T12:00:10Z"
    assert "starts in 10 s" in conds(plan)["Restarting"]["message"]
    # The old gang gone before the backoff ends: nothing is created yet, and the job says why.
    later = reconcile(job(status=plan.status), [], services(), NOW + dt.timedelta(seconds=3))
    assert not later.create_pods and 6 < later.requeue_after <= 7.1
    assert later.status["waiting"]["reason"] == "RestartBackoff"
    after = reconcile(job(status=plan.status), [], services(), NOW + dt.timedelta(seconds=10))
    assert len(after.create_pods) == 3


def test_uncounted_restarts_in_a_row_are_bounded():
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", reason="Evicted", disruption=True)
    status = running_status(consecutiveRestarts=2, consecutiveUncountedRestarts=2, restartCount=2)
    plan = reconcile(job(status=status, failurePolicy={"uncountedRestartLimit": 2}), pods, services(), NOW)
    failed = conds(plan)["Failed"]
    assert failed["reason"] == "UncountedRestartLimitExceeded" and "uncountedRestartLimit=2" in failed["message"]
    assert plan.status["restartCount"] == 2


def test_a_healthy_gang_ends_the_streak():
    status = running_status(consecutiveRestarts=3, consecutiveUncountedRestarts=1)
    status["conditions"][1]["lastTransitionTime"] = "2026-11-22T11:55:00Z"  # running for 5 minutes
    plan = reconcile(job(status=status), gang(), services(), NOW)
    assert plan.status["consecutiveRestarts"] == 3 and plan.requeue_after is not None
    status["conditions"][1]["lastTransitionTime"] = "2026-11-22T11:49:00Z"  # 11 minutes
    plan = reconcile(job(status=status), gang(), services(), NOW)
    assert "consecutiveRestarts" not in plan.status and "consecutiveUncountedRestarts" not in plan.status


def test_a_resize_starts_no_streak():
    plan = reconcile(job(status=running_status(worldSize=1)), gang(), services(), NOW)
    assert plan.status["restartCount"] == 1 and "consecutiveRestarts" not in plan.status


# -- refusals ---------------------------------------------------------------------------------------------

def quota(name: str) -> Refusal:
    return Refusal("Pod", name, 403, "Forbidden", f'pods "{name}" is forbidden: exceeded quota: three')


def test_a_refused_pod_is_named_in_the_status_and_at_the_startup_deadline():
    refusals = {("Pod", "demo-worker-1"): quota("demo-worker-1")}
    j = job(failurePolicy={"startupDeadlineSeconds": 60},
            status=running_status(attemptStartTime="2026-11-22T11:59:30Z", conditions=[]))
    plan = reconcile(j, gang()[:2], services(), NOW, refusals=refusals)
    assert plan.status["waiting"]["reason"] == "PodCreateRefused"
    assert plan.status["waiting"]["replicaTypes"]["Worker"]["message"].endswith("exceeded quota: three")
    assert names(plan.create_pods) == ["demo-worker-1"] and plan.requeue_after <= 5  # tried again
    late = reconcile(job(failurePolicy={"startupDeadlineSeconds": 60}, status=plan.status), gang()[:2], services(),
                     NOW + dt.timedelta(seconds=60), refusals=refusals)
    failed = conds(late)["Failed"]
    assert failed["reason"] == "StartupDeadlineExceeded" and "exceeded quota" in failed["message"]
    assert sorted(d.name for d in late.delete_pods) == ["demo-scheduler-0", "demo-worker-0"]  # no partial gang left
    assert "waiting" not in late.status and conds(late)["Waiting"]["status"] == "False"


def test_unschedulable_and_image_pull_causes_per_replica_type():
    pods = [pod("demo", "Scheduler", 0, phase="Pending", waiting="ImagePullBackOff"),
            pod("demo", "Worker", 0, phase="Pending", ready=False),
            pod("demo", "Worker", 1, phase="Pending", ready=False)]
    for p in pods[1:]:
        p["spec"] = {}
        p["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                      "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]
    plan = reconcile(job(), pods, services(), NOW)
    waiting = plan.status["waiting"]
    assert waiting["replicaTypes"]["Scheduler"]["reason"] == "ImagePullBackOff"
    assert waiting["replicaTypes"]["Worker"] == {
        "reason": "Unschedulable", "pods": 2,
        "message": "2 of 2 pods: pod demo-worker-0 cannot be scheduled: "
                   "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}
    assert waiting["reason"] == "ImagePullBackOff" and waiting["since"] == "2026-11-22T12:00:00Z"
    assert waiting["message"].startswith("Scheduler: pod demo-scheduler-0 ImagePullBackOff")
    # The same causes in the next pass: no new Events, the same `since`.
    again = reconcile(job(status=plan.status), pods, services(), NOW + dt.timedelta(seconds=30))
    assert not [e for e in again.events if e.reason in ("ImagePullBackOff", "Unschedulable")]
    assert again.status["waiting"]["since"] == "2026-11-22T12:00:00Z"


# -- the scheduler's address ------------------------------------------------------------------------------

def test_members_carry_the_scheduler_address_they_dial():
    plan = reconcile(job(), [], services(cluster_ip="10.0.0.42"), NOW)
    by_name = {p["metadata"]["name"]: p for p in plan.create_pods}
    assert by_name["demo-worker-0"]["metadata"]["annotations"][naming.SCHEDULER_ADDRESS_ANNOTATION] == "10.0.0.42"
    assert naming.SCHEDULER_ADDRESS_ANNOTATION not in by_name["demo-scheduler-0"]["metadata"]["annotations"]
    assert plan.status["schedulerAddress"] == "10.0.0.42"


def test_a_deleted_scheduler_service_is_recreated_at_the_same_address():
    status = running_status(schedulerAddress="10.0.0.42")
    plan = reconcile(job(status=status), gang(), services()[:1], NOW)
    [svc] = plan.create_services
    assert svc["metadata"]["name"] == "demo-scheduler" and svc["spec"]["clusterIP"] == "10.0.0.42"
    assert not plan.delete_pods and plan.status["restartCount"] == 0
    # The address refused (taken by another Service): asked for again for a while (a Service just deleted
    # releases its address a moment later), then a Service at any address, and the members follow it.
    refusal = Refusal("Service", "demo-scheduler", 422, "Invalid",
                      "spec.clusterIPs: Invalid value: provided IP is already allocated", since="2026-11-22T11:59:50Z")
    plan = reconcile(job(status=status), gang(), services()[:1], NOW, refusals={("Service", "demo-scheduler"): refusal})
    assert plan.create_services[0]["spec"]["clusterIP"] == "10.0.0.42"
    plan = reconcile(job(status=status), gang(), services()[:1], NOW + dt.timedelta(seconds=30),
                     refusals={("Service", "demo-scheduler"): refusal})
    assert "clusterIP" not in plan.create_services[0]["spec"]


def test_members_dialing_an_address_the_service_lost_restart_uncounted():
    pods = gang()
    for p in pods[1:]:
        p["metadata"]["annotations"] = {naming.SCHEDULER_ADDRESS_ANNOTATION: "10.0.0.42"}
    plan = reconcile(job(status=running_status(schedulerAddress="10.0.0.42"), runPolicy={"backoffLimit": 0}),
                     pods, services(cluster_ip="10.0.0.99"), NOW)
    assert conds(plan)["Restarting"]["reason"] == "SchedulerAddressChanged"
    assert plan.status["schedulerAddress"] == "10.0.0.99" and not plan.status.get("backoffCount")


# -- members that lost their labels -----------------------------------------------------------------------

def test_a_member_without_its_labels_is_stale_and_holds_the_new_scheduler():
    status = running_status(restartCount=1, attempt=1)
    status["conditions"][1] = {"type": "Running", "status": "False", "reason": "MemberLost", "message": "x"}
    stripped = pod("demo", "Scheduler", 0, attempt=0)
    stripped["metadata"]["labels"] = {"app": "demo"}  # every label of ours taken off
    plan = reconcile(job(status=status), [stripped], services(), NOW)
    assert [d.name for d in plan.delete_pods] == ["demo-scheduler-0"]
    assert not plan.create_pods  # it may be the old scheduler: no member of the new gang may reach it


# -- exact status writes ----------------------------------------------------------------------------------

def test_merge_patch_removes_what_the_new_status_drops():
    old = {"startTime": "t0", "lastFailure": {"pod": "w0", "exitCode": 3, "reason": "Error"}, "conditions": [1, 2]}
    new = {"lastFailure": {"pod": "w0", "reason": "Deleted"}, "conditions": [1]}
    assert merge_patch(old, new) == {"startTime": None, "lastFailure": {"exitCode": None, "reason": "Deleted"},
                                     "conditions": [1]}
    assert merge_patch(new, new) == {}


# -- every admitted value is safe -------------------------------------------------------------------------

admitted_seconds = st.one_of(st.none(), st.integers(1, models.MAX_SECONDS), st.sampled_from([1, models.MAX_SECONDS]))


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(active=admitted_seconds, startup=admitted_seconds, ttl=st.one_of(st.none(), st.integers(0, models.MAX_SECONDS)),
       backoff_limit=st.one_of(st.none(), st.integers(0, models.MAX_COUNT)),
       uncounted=st.one_of(st.none(), st.integers(0, 10000)),
       stall=st.one_of(st.none(), st.integers(10, models.MAX_SECONDS)),
       finished=st.booleans(), failed_member=st.booleans(), elapsed=st.integers(0, 10 ** 9))
def test_every_admitted_duration_and_count_reconciles(active, startup, ttl, backoff_limit, uncounted, stall, finished,
                                                      failed_member, elapsed):
    run = {k: v for k, v in {"activeDeadlineSeconds": active, "ttlSecondsAfterFinished": ttl,
                             "backoffLimit": backoff_limit}.items() if v is not None}
    failure = {k: v for k, v in {"startupDeadlineSeconds": startup, "uncountedRestartLimit": uncounted}.items()
               if v is not None}
    health = {"reportProgress": True, "stallTimeoutSeconds": stall} if stall else {}
    status = running_status()
    if finished:
        status["conditions"].append({"type": "Succeeded", "status": "True", "reason": "MSJobSucceeded", "message": "x"})
        status["completionTime"] = "2026-11-22T11:59:00Z"
    pods = gang()
    if failed_member:
        pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=1)
    j = job(status=status, runPolicy=run, failurePolicy=failure, **({"health": health} if health else {}))
    plan = reconcile(j, pods, services(), NOW + dt.timedelta(seconds=elapsed))
    assert plan.status["state"] in ("Created", "Running", "Restarting", "Succeeded", "Failed")
    assert plan.requeue_after is None or 0 <= plan.requeue_after <= 3600
