import datetime as dt

from msjob_operator.api import naming
from msjob_operator.reconcile.plan import reconcile

from .jobs import NOW, finished, gang, is_true, job, pod, services


def names(objs):
    return sorted(o["metadata"]["name"] for o in objs)


def conds(plan):
    return {c["type"]: c for c in plan.status["conditions"]}


def running_status(**extra):
    status = {"restartCount": 0, "startTime": "2026-11-22T11:50:00Z", "attemptStartTime": "2026-11-22T11:50:00Z",
              "worldSize": 2, "conditions": [
                  {"type": "Created", "status": "True", "reason": "MSJobCreated", "message": "x"},
                  {"type": "Running", "status": "True", "reason": "MSJobRunning", "message": "x"}]}
    status.update(extra)
    return status


def test_new_job_creates_services_first_then_all_pods():
    plan = reconcile(job(), [], [], NOW)
    assert names(plan.create_services) == ["demo", "demo-scheduler"]
    # The members' env needs the scheduler Service's ClusterIP: their pass comes right after, and
    # records the job's start with its pods (this first pass writes no status and posts no Event).
    assert not plan.create_pods and plan.continues
    assert plan.status == {} and not plan.events and not plan.transitions

    plan = reconcile(job(), [], services(), NOW)
    assert names(plan.create_pods) == ["demo-scheduler-0", "demo-worker-0", "demo-worker-1"]
    assert not plan.create_services and not plan.continues
    assert plan.status["state"] == "Created" and plan.status["workers"] == "0/2"
    assert conds(plan)["Created"]["status"] == "True" and plan.status["startTime"]
    assert "created" in plan.transitions and [e.reason for e in plan.events] == ["MSJobCreated"]


def test_a_job_with_a_status_that_waits_for_its_scheduler_service_records_its_pass():
    # A job that has run (its Services deleted by hand, say): the pass that creates them again writes what it
    # decided, as every pass does; only a new job's first pass leaves it to the next.
    started = reconcile(job(), [], services(), NOW).status
    plan = reconcile(job(status=started), [], [], NOW)
    assert plan.continues and plan.status["startTime"] == started["startTime"]
    assert conds(plan)["Created"]["status"] == "True"


def test_only_missing_pods_are_created():
    pods = [pod("demo", "Scheduler", 0), pod("demo", "Worker", 0)]
    plan = reconcile(job(), pods, services(), NOW)
    assert names(plan.create_pods) == ["demo-worker-1"]


def test_all_running_sets_running_condition_and_counts():
    plan = reconcile(job(), gang(), services(), NOW)
    assert not plan.create_pods and not plan.delete_pods
    assert conds(plan)["Running"]["status"] == "True"
    assert plan.status["state"] == "Running"
    assert plan.status["workers"] == "2/2"
    worker = plan.status["replicaStatuses"]["Worker"]
    assert worker["active"] == 2 and worker["ready"] == 2
    assert worker["selector"] == (f"{naming.JOB_NAME_LABEL}=demo,{naming.OPERATOR_NAME_LABEL}=msjob-operator,"
                                  f"{naming.REPLICA_TYPE_LABEL}=worker")


def test_worker_zero_success_finishes_the_job_and_cleans_running_pods():
    pods = gang()
    pods[1] = pod("demo", "Worker", 0, phase="Succeeded", exit_code=0)
    plan = reconcile(job(status=running_status()), pods, services(), NOW)
    assert conds(plan)["Succeeded"]["status"] == "True"
    assert plan.status["state"] == "Succeeded"
    assert plan.status["completionTime"]
    # cleanPodPolicy Running (default): the scheduler and worker 1 are still running.
    assert sorted(d.name for d in plan.delete_pods) == ["demo-scheduler-0", "demo-worker-1"]


def test_members_stopped_by_the_cleanup_are_not_counted_as_failed():
    """After success the cleanup SIGTERMs the members still running; they end Failed (exit 143)
    while being deleted. That is the operator stopping them, not a failure of theirs."""
    succeeded = job(status=running_status(conditions=[
        {"type": "Created", "status": "True", "reason": "MSJobCreated", "message": "x"},
        {"type": "Succeeded", "status": "True", "reason": "MSJobSucceeded", "message": "x"}]))
    pods = [pod("demo", "Scheduler", 0, phase="Failed", exit_code=143, deleting=True),
            pod("demo", "Worker", 0, phase="Succeeded", exit_code=0),
            pod("demo", "Worker", 1, phase="Failed", exit_code=143, deleting=True)]
    statuses = reconcile(succeeded, pods, services(), NOW).status["replicaStatuses"]
    assert statuses["Scheduler"]["failed"] == 0 and statuses["Worker"]["failed"] == 0
    assert statuses["Worker"]["succeeded"] == 1
    # A member that failed on its own is counted.
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=1)
    assert reconcile(succeeded, pods, services(), NOW).status["replicaStatuses"]["Worker"]["failed"] == 1


def test_all_workers_success_policy_waits_for_every_worker():
    pods = gang()
    pods[1] = pod("demo", "Worker", 0, phase="Succeeded", exit_code=0)
    j = job(status=running_status(), successPolicy="AllWorkers")
    assert not finished(reconcile(j, pods, services(), NOW).status["conditions"])
    pods[2] = pod("demo", "Worker", 1, phase="Succeeded", exit_code=0)
    assert is_true(reconcile(j, pods, services(), NOW).status["conditions"], "Succeeded")


def test_member_failure_restarts_the_whole_gang_and_counts():
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=137, reason="Error", message="killed")
    plan = reconcile(job(status=running_status()), pods, services(), NOW)
    assert plan.status["restartCount"] == 1 and plan.status["backoffCount"] == 1
    assert plan.status["attempt"] == 1
    assert conds(plan)["Restarting"]["status"] == "True"
    assert conds(plan)["Running"]["status"] == "False"
    assert sorted(d.name for d in plan.delete_pods) == ["demo-scheduler-0", "demo-worker-0", "demo-worker-1"]
    assert not plan.create_pods  # the new gang waits until the old one is gone
    failure = plan.status["lastFailure"]
    assert failure["pod"] == "demo-worker-1" and failure["exitCode"] == 137 and failure["node"] == "node-1"
    assert any(e.reason == "MemberFailed" for e in plan.events)


def test_new_gang_is_created_once_stale_pods_are_gone():
    status = running_status(restartCount=1, backoffCount=1)
    # As a gang restart leaves it: Running is False until the new gang runs.
    status["conditions"][1] = {"type": "Running", "status": "False", "reason": "MemberFailed", "message": "x"}
    # The old scheduler still terminating: nothing is created (a new member could reach it).
    stale = [pod("demo", "Scheduler", 0, attempt=0, deleting=True), pod("demo", "Worker", 0, attempt=0, deleting=True)]
    assert not reconcile(job(status=status), stale, services(), NOW).create_pods
    # The old scheduler gone: members whose names are free are created as the old gang drains;
    # the new scheduler waits for every old member to be gone (none may reach it).
    plan = reconcile(job(status=status), stale[1:], services(), NOW)
    assert names(plan.create_pods) == ["demo-worker-1"]
    assert plan.create_pods[0]["metadata"]["labels"][naming.ATTEMPT_LABEL] == "1"
    assert [d.name for d in plan.delete_pods] == []  # worker 0 is already being deleted
    plan = reconcile(job(status=status), [], services(), NOW)
    assert names(plan.create_pods) == ["demo-scheduler-0", "demo-worker-0", "demo-worker-1"]
    assert all(p["metadata"]["labels"][naming.ATTEMPT_LABEL] == "1" for p in plan.create_pods)


def test_without_a_scheduler_member_the_old_gang_goes_whole_before_the_new_one():
    """Under msrun the scheduler lives in worker 0, and a rank table covers the whole gang: no overlap."""
    for mindspore in ({"launchMode": "Msrun"}, {"launchMode": "RankTable"}):
        status = running_status(restartCount=1, backoffCount=1, attempt=1)
        status["conditions"][1] = {"type": "Running", "status": "False", "reason": "MemberFailed", "message": "x"}
        j = job(status=status, scheduler=False, mindspore=mindspore)
        stale = [pod("demo", "Worker", 0, attempt=0, deleting=True)]
        assert not reconcile(j, stale, services(), NOW).create_pods, mindspore
        if mindspore["launchMode"] == "Msrun":  # (a rank-table job first writes its table: test_launch_modes)
            assert names(reconcile(j, [], services(), NOW).create_pods) == ["demo-worker-0", "demo-worker-1"]


def test_restarting_clears_once_the_new_gang_runs():
    status = running_status(restartCount=1, backoffCount=1)
    status["conditions"].append({"type": "Restarting", "status": "True", "reason": "MemberFailed", "message": "x"})
    plan = reconcile(job(status=status), gang(attempt=1), services(), NOW)
    assert conds(plan)["Restarting"]["status"] == "False"
    assert conds(plan)["Running"]["status"] == "True"


def test_budget_exhausted_fails_with_the_member_named():
    pods = gang()
    pods[1] = pod("demo", "Worker", 0, phase="Failed", exit_code=1, message="Traceback: boom")
    j = job(status=running_status(backoffCount=2, restartCount=2), runPolicy={"backoffLimit": 2})
    for p in pods:
        p["metadata"]["labels"][naming.ATTEMPT_LABEL] = "2"
    plan = reconcile(j, pods, services(), NOW)
    failed = conds(plan)["Failed"]
    assert failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    assert "demo-worker-0" in failed["message"] and "exit code 1" in failed["message"] and "boom" in failed["message"]
    # cleanPodPolicy Running: the members still running are stopped; the failed one is kept for its logs.
    assert sorted(d.name for d in plan.delete_pods) == ["demo-scheduler-0", "demo-worker-1"]


def test_restart_policy_never_fails_at_once():
    j = job(status=running_status())
    j["spec"]["msReplicaSpecs"]["Worker"]["restartPolicy"] = "Never"
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=2)
    plan = reconcile(j, pods, services(), NOW)
    assert conds(plan)["Failed"]["reason"] == "MemberFailed"
    assert plan.status.get("restartCount") == 0


def test_exit_code_policy():
    j = job(status=running_status())
    j["spec"]["msReplicaSpecs"]["Worker"]["restartPolicy"] = "ExitCode"
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=3)
    assert is_true(reconcile(j, pods, services(), NOW).status["conditions"], "Failed")
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=139)
    assert reconcile(j, pods, services(), NOW).status["restartCount"] == 1


def test_disruption_restarts_without_counting():
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", reason="Evicted", disruption=True)
    plan = reconcile(job(status=running_status()), pods, services(), NOW)
    assert plan.status["restartCount"] == 1 and not plan.status.get("backoffCount")
    assert conds(plan)["Restarting"]["reason"] == "MemberDisrupted"


def test_failure_policy_rules_match_in_order():
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}, "name": "bad-data"},
             {"action": "RestartJobIgnoreBudget", "replicaTypes": ["Worker"]}]
    j = job(status=running_status(), failurePolicy={"rules": rules})
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=42)
    plan = reconcile(j, pods, services(), NOW)
    assert conds(plan)["Failed"]["status"] == "True" and "bad-data" in conds(plan)["Failed"]["message"]
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=7)
    plan = reconcile(j, pods, services(), NOW)
    assert plan.status["restartCount"] == 1 and not plan.status.get("backoffCount")


def test_scheduler_recovery_recreates_only_the_scheduler():
    j = job(status=running_status(), mindspore={"enableRecovery": True})
    pods = gang()
    pods[0] = pod("demo", "Scheduler", 0, phase="Failed", exit_code=137, uid="sched-uid")
    plan = reconcile(j, pods, services(), NOW)
    assert [d.name for d in plan.delete_pods] == ["demo-scheduler-0"]
    # RESTARTS (restartCount) counts every restart, the scheduler's alone too; attempt stays.
    assert plan.status["restartCount"] == 1 and plan.status["backoffCount"] == 1 and plan.status["attempt"] == 0
    assert plan.status["replicaStatuses"]["Scheduler"]["restarts"] == 1
    assert "sched-uid" in plan.status["handledFailures"]
    # Next pass: the failure is not counted again; once the pod is gone it is recreated.
    j2 = job(status=plan.status, mindspore={"enableRecovery": True})
    again = reconcile(j2, pods, services(), NOW)
    assert again.status["backoffCount"] == 1
    gone = reconcile(j2, pods[1:], services(), NOW)
    assert names(gone.create_pods) == ["demo-scheduler-0"]


def test_ignore_needs_dynamic_workers():
    rules = [{"action": "Ignore", "replicaTypes": ["Worker"]}]
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=1)
    plan = reconcile(job(status=running_status(), failurePolicy={"rules": rules}), pods, services(), NOW)
    assert plan.status["restartCount"] == 1  # the rule does not apply: default gang restart
    plan = reconcile(job(status=running_status(), failurePolicy={"rules": rules}, enableDynamicWorker=True),
                     pods, services(), NOW)
    assert plan.status["restartCount"] == 0 and not finished(plan.status["conditions"])


def test_member_deleted_by_hand_restarts_the_gang():
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Running", deleting=True)
    plan = reconcile(job(status=running_status()), pods, services(), NOW)
    assert plan.status["restartCount"] == 1
    assert conds(plan)["Restarting"]["reason"] == "MemberDeleted"


def test_startup_deadline_fails_with_pending_reasons():
    status = running_status()
    status["conditions"] = status["conditions"][:1]
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Pending", waiting="ImagePullBackOff")
    j = job(status=status, failurePolicy={"startupDeadlineSeconds": 60})
    early = reconcile(j, pods, services(), dt.datetime(2026, 11, 22, 11, 50, 30, tzinfo=dt.timezone.utc))
    assert not finished(early.status["conditions"]) and 25 < early.requeue_after <= 30
    plan = reconcile(j, pods, services(), NOW)
    failed = conds(plan)["Failed"]
    assert failed["reason"] == "StartupDeadlineExceeded" and "ImagePullBackOff" in failed["message"]


def test_active_deadline():
    plan = reconcile(job(status=running_status(), runPolicy={"activeDeadlineSeconds": 60}), gang(), services(), NOW)
    assert conds(plan)["Failed"]["reason"] == "DeadlineExceeded"
    assert len(plan.delete_pods) == 3


def test_suspend_and_resume():
    j = job(status=running_status(), runPolicy={"suspend": True})
    plan = reconcile(j, gang(), services(), NOW)
    assert len(plan.delete_pods) == 3 and plan.status["state"] == "Suspended"
    assert "startTime" not in plan.status
    resumed = reconcile(job(status=plan.status), [], services(), NOW)
    assert conds(resumed)["Suspended"]["status"] == "False"
    assert len(resumed.create_pods) == 3 and resumed.status["startTime"]


def test_resume_while_suspended_pods_still_terminate_is_not_a_failure():
    j = job(status=running_status(), runPolicy={"suspend": True})
    suspended = reconcile(j, gang(), services(), NOW).status
    terminating = [pod("demo", "Worker", 0, deleting=True), pod("demo", "Worker", 1, deleting=True)]
    resumed = reconcile(job(status=suspended), terminating, services(), NOW)
    assert resumed.status["attempt"] == 1 and resumed.status["restartCount"] == 0
    assert not resumed.status.get("backoffCount") and not is_true(resumed.status["conditions"], "Restarting")
    assert not resumed.create_pods  # the new gang waits for the old pods to go
    gone = reconcile(job(status=resumed.status), [], services(), NOW)
    assert all(p["metadata"]["labels"][naming.ATTEMPT_LABEL] == "1" for p in gone.create_pods)
    assert len(gone.create_pods) == 3


def test_ttl_after_finished():
    status = running_status(completionTime="2026-11-22T11:59:00Z")
    status["conditions"].append({"type": "Succeeded", "status": "True", "reason": "MSJobSucceeded", "message": "x"})
    early = reconcile(job(status=status, runPolicy={"ttlSecondsAfterFinished": 120}), [], services(), NOW)
    assert not early.delete_job and early.requeue_after == 60
    late = reconcile(job(status=status, runPolicy={"ttlSecondsAfterFinished": 30}), [], services(), NOW)
    assert late.delete_job


def test_clean_pod_policy_none_and_all():
    status = running_status(completionTime="2026-11-22T11:59:00Z")
    status["conditions"].append({"type": "Failed", "status": "True", "reason": "MemberFailed", "message": "x"})
    pods = gang()
    pods[1] = pod("demo", "Worker", 0, phase="Failed", exit_code=1)
    assert not reconcile(job(status=status, runPolicy={"cleanPodPolicy": "None"}), pods, services(), NOW).delete_pods
    every_pod = reconcile(job(status=status, runPolicy={"cleanPodPolicy": "All"}), pods, services(), NOW)
    assert len(every_pod.delete_pods) == 3
    assert len(reconcile(job(status=status), pods, services(), NOW).delete_pods) == 2


def test_resize_restarts_the_gang_uncounted():
    j = job(workers=3, status=running_status())
    plan = reconcile(j, gang(workers=2), services(), NOW)
    assert plan.status["restartCount"] == 1 and not plan.status.get("backoffCount")
    assert plan.status["worldSize"] == 3 and plan.status["attempt"] == 1


def test_stuck_terminating_pods_are_force_deleted():
    status = running_status(restartCount=1)
    stuck = pod("demo", "Worker", 0, attempt=0, deleting=True)
    stuck["metadata"]["deletionTimestamp"] = "2026-11-22T11:58:00Z"
    plan = reconcile(job(status=status), [stuck], services(), NOW)
    assert plan.delete_pods[0].grace_seconds == 0


def test_no_status_change_when_nothing_happens():
    first = reconcile(job(status=running_status()), gang(), services(), NOW)
    second = reconcile(job(status=first.status), gang(), services(), NOW + dt.timedelta(seconds=5))
    assert first.status == second.status
    assert not second.events
