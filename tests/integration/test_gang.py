"""Gang scheduling through Volcano PodGroups, with the real Volcano scheduler on fake NPU nodes."""

import json
import uuid

import pytest
from kubernetes.client import CustomObjectsApi, SchedulingV1Api
from kubernetes.client.exceptions import ApiException

from msjob_localcluster.cluster import POOL_LABEL

from ..helpers import wait_for
from .msjobs import msjob

pytestmark = pytest.mark.cluster

NPU = "huawei.com/Ascend910"


def gang_job(name: str, pool_name: str, workers: int, npus: int = 8, **run_policy) -> dict:
    body = msjob(name, workers=workers, runPolicy={"schedulingPolicy": {}, **run_policy})
    for rtype, replica in body["spec"]["msReplicaSpecs"].items():
        spec = replica["template"]["spec"]
        spec["nodeSelector"] = {POOL_LABEL: pool_name}
        spec["tolerations"] = spec.get("tolerations", []) + [
            {"key": POOL_LABEL, "value": pool_name, "effect": "NoSchedule"}]
        if rtype == "Worker":
            spec["containers"][0]["resources"] = {"limits": {NPU: npus}}
    return body


def bound(jobs, name: str) -> list[str]:
    return [p.metadata.name for p in jobs.pods(name, include_terminating=False) if p.spec.node_name]


def test_gang_that_does_not_fit_binds_nothing_until_nodes_are_added(jobs, pool):
    pool(2)  # 16 NPUs; the job needs 24
    jobs.create(gang_job("big", pool.name, workers=3))
    group = wait_for(lambda: (jobs.get("big").get("status") or {}).get("podGroup", {}).get("message"), timeout=60,
                     message="the gang scheduler's reason in status.podGroup",
                     describe=lambda: jobs.get("big").get("status"))
    assert "unschedulable" in group.lower() or "NotEnoughResources" in group
    pods = jobs.pods("big")
    assert len(pods) == 4 and not bound(jobs, "big")  # no partial gang
    assert pods[0].spec.scheduler_name == "volcano"
    assert pods[0].metadata.annotations["scheduling.k8s.io/group-name"] == "big"
    jobs.wait_event("big", "Gang")

    pool(1)  # now 24 NPUs
    jobs.wait_pods("big", 4, timeout=90)
    jobs.wait_condition("big", "Running")
    wait_for(lambda: jobs.get("big")["status"]["podGroup"]["phase"] == "Running", timeout=30,
             message="status.podGroup follows the PodGroup", describe=lambda: jobs.get("big")["status"]["podGroup"])


def test_two_jobs_that_cannot_both_fit_run_one_after_the_other(jobs, pool):
    pool(2)  # room for one 2 x 8 NPU gang at a time
    worker_done = {"kwok.msjob.test/exit-code": "0", "kwok.msjob.test/run-seconds": "6"}
    first, second = gang_job("first", pool.name, workers=2), gang_job("second", pool.name, workers=2)
    for body in (first, second):
        body["spec"]["msReplicaSpecs"]["Worker"]["template"]["metadata"]["annotations"] = dict(worker_done)
    jobs.create(first)
    jobs.create(second)

    def whole_or_nothing():
        counts = {name: len(bound(jobs, name)) for name in ("first", "second")}
        assert all(c in (0, 3) or jobs.condition(n, "Succeeded") for n, c in counts.items()), counts
        return counts

    wait_for(lambda: 3 in whole_or_nothing().values(), timeout=90, message="one gang is bound")
    wait_for(lambda: jobs.condition("first", "Succeeded") and jobs.condition("second", "Succeeded"), timeout=180,
             message="both jobs succeed, one after the other", describe=whole_or_nothing)
    # The first job's PodGroup was released when it finished, so the second could run.
    custom = CustomObjectsApi(jobs.custom.api_client)
    # The second's goes in the pass after its success is written: wait for it, then none is left.
    wait_for(lambda: custom.list_namespaced_custom_object("scheduling.volcano.sh", "v1beta1", jobs.ns,
                                                          "podgroups")["items"] == [],
             timeout=30, message="both jobs' PodGroups released once they finished")


def test_queue_and_priority_reach_the_podgroup_and_pods(jobs, pool, kube):
    custom = CustomObjectsApi(kube)
    queue = f"q{uuid.uuid4().hex[:6]}"
    custom.create_cluster_custom_object("scheduling.volcano.sh", "v1beta1", "queues", {
        "apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue", "metadata": {"name": queue},
        "spec": {"weight": 1, "reclaimable": True}})
    # No Volcano controller-manager here: open the queue as it would.
    wait_for(lambda: custom.patch_cluster_custom_object_status("scheduling.volcano.sh", "v1beta1", "queues", queue,
                                                               {"status": {"state": "Open"}}),
             timeout=30, message="queue opened")
    priority = f"p{uuid.uuid4().hex[:6]}"
    SchedulingV1Api(kube).create_priority_class({"metadata": {"name": priority}, "value": 1000})
    try:
        pool(1)
        jobs.create(gang_job("queued", pool.name, workers=1,
                             schedulingPolicy={"queue": queue, "priorityClass": priority}))
        jobs.wait_pods("queued", 2, timeout=90)
        group = custom.get_namespaced_custom_object("scheduling.volcano.sh", "v1beta1", jobs.ns, "podgroups", "queued")
        assert group["spec"]["queue"] == queue and group["spec"]["priorityClassName"] == priority
        assert group["spec"]["minMember"] == 2 and group["spec"]["minResources"][NPU] == "8"
        assert all(p.spec.priority_class_name == priority for p in jobs.pods("queued"))
        wait_for(lambda: jobs.get("queued")["status"]["podGroup"]["phase"] == "Running", timeout=30,
                 message="status.podGroup Running")
    finally:
        SchedulingV1Api(kube).delete_priority_class(priority)
        custom.delete_cluster_custom_object("scheduling.volcano.sh", "v1beta1", "queues", queue)


def test_higher_priority_gang_goes_first(jobs, pool, kube):
    scheduling = SchedulingV1Api(kube)
    names = {"low": f"low{uuid.uuid4().hex[:5]}", "high": f"high{uuid.uuid4().hex[:5]}"}
    scheduling.create_priority_class({"metadata": {"name": names["low"]}, "value": 10})
    scheduling.create_priority_class({"metadata": {"name": names["high"]}, "value": 100000})
    try:
        # Both wait for nodes that do not exist yet; then room appears for one of them.
        jobs.create(gang_job("lowjob", pool.name, workers=2, schedulingPolicy={"priorityClass": names["low"]}))
        jobs.create(gang_job("highjob", pool.name, workers=2, schedulingPolicy={"priorityClass": names["high"]}))
        wait_for(lambda: len(jobs.pods("lowjob")) == 3 and len(jobs.pods("highjob")) == 3, timeout=60,
                 message="both gangs pending")
        pool(2)
        jobs.wait_pods("highjob", 3, timeout=90)
        assert not bound(jobs, "lowjob")
    finally:
        for name in names.values():
            scheduling.delete_priority_class(name)


def test_scheduling_policy_changes_only_while_suspended(jobs, pool):
    body = gang_job("frozen", pool.name, workers=1, schedulingPolicy={"queue": "default"})
    jobs.create(body)
    with pytest.raises(ApiException) as info:
        jobs.patch("frozen", {"spec": {"runPolicy": {"schedulingPolicy": {"queue": "other"}}}})
    assert info.value.status == 422
    assert "schedulingPolicy can change only while the job is suspended" in json.loads(info.value.body)["message"]
    jobs.patch("frozen", {"spec": {"runPolicy": {"suspend": True, "schedulingPolicy": {"queue": "other"}}}})
    assert jobs.get("frozen")["spec"]["runPolicy"]["schedulingPolicy"]["queue"] == "other"
