"""Gang scheduling through Kubernetes' own Workload API (--gang-scheduler workload-api): kube-scheduler's
GangScheduling plugin (feature gate GenericWorkload) on fake NPU nodes; the same checks as the Volcano
tests in test_gang.py."""

from __future__ import annotations

import json

import pytest

from msjob_localcluster.cluster import POOL_LABEL

from ..helpers import wait_for
from .msjobs import EXIT, msjob

pytestmark = pytest.mark.cluster

NPU = "huawei.com/Ascend910"


def gang_job(name: str, pool_name: str, workers: int, **run_policy) -> dict:
    body = msjob(name, workers=workers, runPolicy={"schedulingPolicy": {}, **run_policy})
    for rtype, replica in body["spec"]["msReplicaSpecs"].items():
        spec = replica["template"]["spec"]
        spec["nodeSelector"] = {POOL_LABEL: pool_name}
        spec["tolerations"] = [{"key": POOL_LABEL, "value": pool_name, "effect": "NoSchedule"}]
        if rtype == "Worker":
            spec["containers"][0]["resources"] = {"limits": {NPU: 8}}
    return body


def bound(jobs, name: str) -> list[str]:
    return [p.metadata.name for p in jobs.pods(name, include_terminating=False) if p.spec.node_name]


def groups_of(cluster, namespace: str, job: str) -> set[str]:
    """The PodGroups the job's live pods name (read raw: the Python client predates spec.schedulingGroup)."""
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", f"training.kubeflow.org/job-name={job}",
                                      "-o", "json").stdout)["items"]
    return {p["spec"].get("schedulingGroup", {}).get("podGroupName") for p in pods
            if not p["metadata"].get("deletionTimestamp")}


def podgroup(cluster, namespace: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "-n", namespace, "podgroups.scheduling.k8s.io", name, "-o", "json").stdout)


def test_a_complete_gang_binds_through_its_podgroup_and_a_restart_makes_a_new_one(gang_jobs, gang_pool, gang_cluster):
    jobs = gang_jobs
    gang_pool(2)

    # kube-scheduler binds a permitted gang with one write per pod, so a look between those writes may
    # see part of it: that no member binds before the whole gang fits is what the cannot-fit test below
    # proves; here, that the gang binds whole through its PodGroup.
    jobs.create(gang_job("whole", gang_pool.name, workers=2))
    wait_for(lambda: len(bound(jobs, "whole")) == 3, timeout=90, message="the gang bound",
             describe=lambda: jobs.get("whole").get("status"))
    jobs.wait_condition("whole", "Running")
    pods = jobs.pods("whole")
    assert groups_of(gang_cluster, jobs.ns, "whole") == {"whole-0"}
    assert {p.spec.scheduler_name for p in pods} == {"default-scheduler"}  # kube-scheduler does the gang itself
    group = podgroup(gang_cluster, jobs.ns, "whole-0")
    assert group["spec"]["schedulingPolicy"] == {"gang": {"minCount": 3}}
    assert group["spec"]["workloadRef"] == {"workloadName": "whole", "templateName": "gang"}
    assert group["metadata"]["ownerReferences"][0]["name"] == "whole"
    wait_for(lambda: jobs.get("whole")["status"].get("podGroup", {}).get("phase") == "Scheduled", timeout=30,
             message="status.podGroup shows the scheduled gang", describe=lambda: jobs.get("whole")["status"])
    workload = json.loads(gang_cluster.kubectl("get", "-n", jobs.ns, "workloads.scheduling.k8s.io", "whole",
                                               "-o", "json").stdout)
    assert workload["spec"]["controllerRef"] == {"apiGroup": "mindspore.gitee.com", "kind": "MSJob", "name": "whole"}

    # A gang restart: new pods in a new PodGroup (the old one's bound pods would count towards the new gang).
    jobs.annotate_pod("whole-worker-1", {EXIT: "137"})
    jobs.wait_pods("whole", 3, attempt=1, timeout=90)
    assert groups_of(gang_cluster, jobs.ns, "whole") == {"whole-1"}
    wait_for(lambda: gang_cluster.kubectl("get", "-n", jobs.ns, "podgroups.scheduling.k8s.io", "whole-0",
                                          check=False).returncode != 0, timeout=60,
             message="the old attempt's PodGroup deleted once its pods are gone")


def test_a_gang_that_cannot_fit_binds_none_until_nodes_are_added(gang_jobs, gang_pool):
    jobs = gang_jobs
    gang_pool(2)  # 16 NPUs; the job needs 24
    jobs.create(gang_job("big", gang_pool.name, workers=3))
    message = wait_for(lambda: (jobs.get("big").get("status") or {}).get("podGroup", {}).get("message"), timeout=90,
                       message="the scheduler's reason in status.podGroup",
                       describe=lambda: jobs.get("big").get("status"))
    assert "minCount (4) cannot be satisfied" in message
    assert jobs.get("big")["status"]["podGroup"]["phase"] == "Unschedulable"
    pods = jobs.pods("big")
    assert len(pods) == 4 and not bound(jobs, "big")  # no partial gang
    waiting = jobs.get("big")["status"]["waiting"]
    assert waiting["reason"] == "GangNotScheduled" and "big-0" in waiting["message"]
    jobs.wait_event("big", "GangUnschedulable")

    gang_pool(1)  # now 24 NPUs
    jobs.wait_pods("big", 4, timeout=120)
    jobs.wait_condition("big", "Running")
    assert len(bound(jobs, "big")) == 4
