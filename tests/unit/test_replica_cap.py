"""The operator-side cap on pods per job (--max-replicas-per-job)."""

from msjob_operator.config import Config
from msjob_operator.reconcile.plan import reconcile

from .jobs import NOW, job, pod, services


def test_job_over_the_cap_fails_and_creates_nothing():
    plan = reconcile(job(workers=4, ps=1), [], services(), NOW, Config(max_pods_per_job=5))
    failed = next(c for c in plan.status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "TooManyReplicas"
    assert "6 pods" in failed["message"] and "(5, --max-replicas-per-job)" in failed["message"]
    assert not plan.create_pods and not plan.create_services and plan.status["state"] == "Failed"


def test_job_at_the_cap_runs():
    plan = reconcile(job(workers=4), [], services(), NOW, Config(max_pods_per_job=5))
    assert len(plan.create_pods) == 5 and plan.status["state"] != "Failed"


def test_job_scaled_over_the_cap_fails_and_stops_its_pods():
    running = [pod("demo", "Scheduler", 0), pod("demo", "Worker", 0), pod("demo", "Worker", 1)]
    plan = reconcile(job(workers=9), running, services(), NOW, Config(max_pods_per_job=5))
    assert plan.status["state"] == "Failed"
    assert sorted(d.name for d in plan.delete_pods) == ["demo-scheduler-0", "demo-worker-0", "demo-worker-1"]
