import datetime as dt
import json

from msjob_operator.reconcile.plan import reconcile

from .jobs import NOW, condition, gang, is_true, job, services
from .test_plan import running_status


def health_job(status=None, **health):
    return job(status=status, health={"reportProgress": True, **health})


def report(p: dict, step: int, heartbeat: str) -> dict:
    p["metadata"]["annotations"] = {"mindspore.gitee.com/progress": json.dumps(
        {"step": step, "epoch": 1, "loss": 0.5, "stepTimeMs": 120.0, "stepsPerSecond": 8.0,
         "heartbeat": heartbeat, "reportedAt": heartbeat})}
    return p


def test_reporter_rbac_comes_first_then_worker_zero_gets_the_sidecar():
    plan = reconcile(health_job(), [], services(), NOW)
    assert [o["kind"] for o in plan.create_objects] == ["ServiceAccount", "Role", "RoleBinding"]
    role = plan.create_objects[1]
    assert role["rules"][0]["resourceNames"] == ["demo-worker-0"] and set(role["rules"][0]["verbs"]) == {"get", "patch"}
    # In the same plan as the pods, applied before them.
    pods = {p["metadata"]["name"]: p for p in plan.create_pods}
    worker0, worker1 = pods["demo-worker-0"], pods["demo-worker-1"]
    assert [c["name"] for c in worker0["spec"]["initContainers"]] == ["msjob-reporter"]
    assert worker0["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    assert worker0["spec"]["serviceAccountName"] == "demo-reporter"
    env = {e["name"]: e.get("value") for e in worker0["spec"]["containers"][0]["env"]}
    assert "steptime:true" in env["PERF_DUMP_CONFIG"] and env["PERF_DUMP_PATH"].startswith("/var/run/msjob")
    assert "initContainers" not in worker1["spec"]


def test_users_service_account_is_kept_and_bound():
    j = health_job()
    j["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["serviceAccountName"] = "trainer"
    plan = reconcile(j, [], services(), NOW)
    assert [o["kind"] for o in plan.create_objects] == ["Role", "RoleBinding"]
    assert plan.create_objects[1]["subjects"][0]["name"] == "trainer"


def test_progress_reaches_the_status():
    pods = gang()
    report(pods[1], 120, "2026-11-22T11:59:58Z")
    plan = reconcile(health_job(status=running_status(progress={"pod": "demo-worker-0"})), pods, services(), NOW)
    progress = plan.status["progress"]
    assert progress["step"] == 120 and progress["pod"] == "demo-worker-0" and progress["stepsPerSecond"] == 8.0


def test_the_last_report_reaches_the_status_in_the_pass_that_sees_worker_0_succeed():
    # The reporter's last report (at its SIGTERM) and the pod's Succeeded phase often arrive together.
    pods = gang()
    pods[1]["status"]["phase"] = "Succeeded"
    report(pods[1], 120, "2026-11-22T11:59:58Z")
    status = running_status(progress={"pod": "demo-worker-0", "step": 118, "heartbeat": "2026-11-22T11:59:57Z"})
    plan = reconcile(health_job(status=status), pods, services(), NOW)
    assert is_true(plan.status["conditions"], "Succeeded")
    assert plan.status["progress"]["step"] == 120 and plan.status["progress"]["heartbeat"] == "2026-11-22T11:59:58Z"
    # Once finished, the status keeps the final report even when the pod reports again or is gone.
    after = reconcile(health_job(status=plan.status), [report(pods[1], 7, "2026-11-22T12:00:00Z")], services(), NOW)
    assert after.status["progress"]["step"] == 120


def test_no_step_for_too_long_marks_stalled_and_restarts_the_gang():
    status = running_status(progress={"pod": "demo-worker-0"})
    status["conditions"][1]["lastTransitionTime"] = "2026-11-22T11:50:00Z"
    pods = gang()
    report(pods[1], 40, "2026-11-22T11:55:00Z")  # five minutes ago
    fresh = reconcile(health_job(status=status, stallTimeoutSeconds=600), pods, services(), NOW)
    assert not is_true(fresh.status["conditions"], "Stalled") and fresh.requeue_after <= 300
    plan = reconcile(health_job(status=status, stallTimeoutSeconds=120), pods, services(), NOW)
    stalled = condition(plan.status["conditions"], "Stalled")
    assert stalled["status"] == "True" and "no training step" in stalled["message"]
    assert plan.status["restartCount"] == 1 and plan.status["backoffCount"] == 1
    assert "stalled" in plan.transitions and len(plan.delete_pods) == 3


def test_stall_can_fail_the_job():
    status = running_status(progress={"pod": "demo-worker-0"})
    pods = gang()
    report(pods[1], 40, "2026-11-22T11:55:00Z")
    plan = reconcile(health_job(status=status, stallTimeoutSeconds=60, stallAction="FailJob"), pods, services(), NOW)
    assert condition(plan.status["conditions"], "Failed")["reason"] == "Stalled"


def test_a_slow_start_is_not_a_stall():
    status = running_status(progress={"pod": "demo-worker-0"})
    status["conditions"][1]["lastTransitionTime"] = "2026-11-22T11:58:00Z"  # running for two minutes, no step yet
    plan = reconcile(health_job(status=status, stallTimeoutSeconds=300), gang(), services(), NOW)
    assert not is_true(plan.status["conditions"], "Stalled") and plan.status.get("restartCount") == 0
    later = NOW + dt.timedelta(minutes=5)
    plan = reconcile(health_job(status=status, stallTimeoutSeconds=300), gang(), services(), later)
    assert is_true(plan.status["conditions"], "Stalled")
