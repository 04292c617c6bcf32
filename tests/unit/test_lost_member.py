"""A member of a running gang that vanished unseen (force-deleted, or gone while the operator was down)."""

from msjob_operator.reconcile.plan import reconcile

from .jobs import NOW, job, pod, services
from .test_plan import running_status


def test_member_lost_from_a_running_gang_restarts_it_uncounted():
    survivors = [pod("demo", "Scheduler", 0), pod("demo", "Worker", 0)]
    plan = reconcile(job(status=running_status()), survivors, services(), NOW)
    assert plan.status["attempt"] == 1 and plan.status["restartCount"] == 1 and not plan.status.get("backoffCount")
    assert sorted(d.name for d in plan.delete_pods) == ["demo-scheduler-0", "demo-worker-0"]
    assert not plan.create_pods  # the new gang comes once the old one is gone
    restarting = next(c for c in plan.status["conditions"] if c["type"] == "Restarting")
    assert restarting["reason"] == "MemberLost" and "demo-worker-1" in restarting["message"]
    assert plan.status["lastFailure"]["pod"] == "demo-worker-1" and plan.status["lastFailure"]["reason"] == "Lost"


def test_missing_members_of_a_gang_still_starting_are_just_created():
    status = running_status()
    status["conditions"] = [c for c in status["conditions"] if c["type"] != "Running"]
    plan = reconcile(job(status=status), [pod("demo", "Scheduler", 0)], services(), NOW)
    assert [p["metadata"]["name"] for p in plan.create_pods] == ["demo-worker-0", "demo-worker-1"]
    assert plan.status["attempt"] == 0 and not plan.status.get("restartCount")


def test_lost_member_of_a_budgetless_job_does_not_fail_it():
    survivors = [pod("demo", "Scheduler", 0), pod("demo", "Worker", 1)]
    plan = reconcile(job(status=running_status(), runPolicy={"backoffLimit": 0}), survivors, services(), NOW)
    assert plan.status["state"] != "Failed" and plan.status["attempt"] == 1


def test_lost_scheduler_with_recovery_is_recreated_alone():
    workers = [pod("demo", "Worker", 0), pod("demo", "Worker", 1)]
    plan = reconcile(job(status=running_status(), mindspore={"enableRecovery": True}), workers, services(), NOW)
    assert plan.status["attempt"] == 0 and not plan.status.get("restartCount") and not plan.delete_pods
    assert [p["metadata"]["name"] for p in plan.create_pods] == ["demo-scheduler-0"]
