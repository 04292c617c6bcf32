"""A job that says why it waits: each cause, from the real scheduler, kubelet stand-in, API server, gang scheduler."""

from __future__ import annotations

import pytest

from ..helpers import wait_for
from .msjobs import msjob
from .test_gang import gang_job

pytestmark = pytest.mark.cluster


def waiting_for(jobs, name: str, reason: str, pods: int | None = None) -> dict:
    """The job's status.waiting once its reason is ``reason`` (for ``pods`` pods of a type, if given: the
    scheduler looks at a gang's pods one after the other)."""
    def check():
        waiting = (jobs.get(name).get("status") or {}).get("waiting") or {}
        counts = [entry.get("pods") for entry in (waiting.get("replicaTypes") or {}).values()]
        return waiting if waiting.get("reason") == reason and (pods is None or pods in counts) else None
    return wait_for(check, timeout=60, message=f"{name} waiting for {reason}",
                    describe=lambda: jobs.get(name).get("status"))


def test_unschedulable_pods_name_the_schedulers_reason(jobs, cluster):
    body = msjob("toobig", workers=2)
    body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": "64"}}
    jobs.create(body)
    waiting = waiting_for(jobs, "toobig", "Unschedulable", pods=2)
    worker = waiting["replicaTypes"]["Worker"]
    assert worker["pods"] == 2 and "Insufficient nvidia.com/gpu" in worker["message"]
    assert "Scheduler" not in waiting["replicaTypes"]  # the scheduler pod runs
    condition = jobs.condition("toobig", "Waiting")
    assert condition["status"] == "True" and condition["reason"] == "Unschedulable"
    assert "Worker: 2 of 2 pods" in condition["message"]
    jobs.wait_event("toobig", "Unschedulable", "Warning")
    row = cluster.kubectl("-n", jobs.ns, "get", "msj", "toobig", "--no-headers").stdout.split()
    assert row[4] == "Unschedulable", row  # the WAITING column


def test_image_pull_errors_are_named_and_clear_once_the_pod_runs(jobs):
    jobs.create(msjob("nopull", workers=1, worker_annotations={"kwok.msjob.test/pending": "true"}))
    waiting = waiting_for(jobs, "nopull", "ImagePullBackOff")
    assert "nopull-worker-0 ImagePullBackOff" in waiting["replicaTypes"]["Worker"]["message"]
    jobs.annotate_pod("nopull-worker-0", {"kwok.msjob.test/pending": "false"})
    jobs.wait_condition("nopull", "Running")
    wait_for(lambda: jobs.condition("nopull", "Waiting")["status"] == "False"
             and "waiting" not in jobs.get("nopull")["status"], timeout=30, message="the cause cleared")


def test_a_gang_that_is_not_admitted_names_the_podgroup(jobs, pool):
    pool(1)  # 8 NPUs; the gang needs 16
    jobs.create(gang_job("nogang", pool.name, workers=2))
    waiting = waiting_for(jobs, "nogang", "GangNotScheduled")
    assert "PodGroup nogang" in waiting["message"]
    assert waiting["replicaTypes"]["Worker"]["reason"] == "GangNotScheduled"
