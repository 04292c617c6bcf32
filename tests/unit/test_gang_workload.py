"""Kubernetes' Workload API as the gang back-end (--gang-scheduler workload-api): the objects and the pods.

The scheduler's behaviour (all or nothing) is proven on the real kube-scheduler in
tests/integration/test_workload_api.py.
"""

from __future__ import annotations

from msjob_operator.builders.podgroup import podgroup_api
from msjob_operator.config import WORKLOAD_API, Config, GangSettings
from msjob_operator.reconcile.plan import reconcile

from .jobs import NOW, job, owned, pod, services

WORKLOAD_API_CONFIG = Config(gang=GangSettings(scheduler=WORKLOAD_API))


def gang_job(**policy) -> dict:
    return job(workers=2, runPolicy={"schedulingPolicy": policy})


def podgroup(name: str, *conditions: dict, deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "ns", "ownerReferences": owned()}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-22T11:59:00Z"
    return {"apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup", "metadata": meta,
            "status": {"conditions": list(conditions)}}


def unscheduled(member: dict, words: str) -> dict:
    member["spec"] = {}
    member["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                       "message": f"pod group is unschedulable, {words}"}]
    member["status"]["containerStatuses"] = []
    return member


def test_the_api_is_scheduling_k8s_io_v1beta1():
    assert podgroup_api(WORKLOAD_API_CONFIG.gang) == ("scheduling.k8s.io", "v1beta1")


def test_a_gang_gets_a_workload_and_a_podgroup_for_its_attempt_and_pods_join_it():
    plan = reconcile(gang_job(priorityClass="high"), [], services(), NOW, WORKLOAD_API_CONFIG)
    (group,) = plan.create_podgroups
    assert group["apiVersion"] == "scheduling.k8s.io/v1beta1" and group["metadata"]["name"] == "demo-0"
    assert group["spec"] == {"workloadRef": {"workloadName": "demo", "templateName": "gang"},
                             "schedulingPolicy": {"gang": {"minCount": 3}}, "disruptionMode": {"all": {}},
                             "priorityClassName": "high"}
    assert group["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    (workload,) = [o for o in plan.create_objects if o["kind"] == "Workload"]
    assert workload["apiVersion"] == "scheduling.k8s.io/v1beta1" and workload["metadata"]["name"] == "demo"
    assert workload["spec"] == {"podGroupTemplates": [{"name": "gang", "schedulingPolicy": {"gang": {"minCount": 3}}}],
                                "controllerRef": {"apiGroup": "mindspore.gitee.com", "kind": "MSJob", "name": "demo"}}
    assert len(plan.create_pods) == 3
    for created in plan.create_pods:
        assert created["spec"]["schedulingGroup"] == {"podGroupName": "demo-0"}
        assert "schedulerName" not in created["spec"]  # the default scheduler does the gang


def test_min_available_is_the_gang_size():
    (group,) = reconcile(gang_job(minAvailable=2), [], services(), NOW, WORKLOAD_API_CONFIG).create_podgroups
    assert group["spec"]["schedulingPolicy"] == {"gang": {"minCount": 2}}


def test_a_gang_restart_makes_a_new_podgroup_and_deletes_the_old_one():
    j = gang_job()
    j["status"] = {"attempt": 1, "conditions": []}
    old = [pod("demo", "Worker", 0, attempt=0, deleting=True)]
    plan = reconcile(j, old, services(), NOW, WORKLOAD_API_CONFIG, podgroups=[podgroup("demo-0")])
    assert [g["metadata"]["name"] for g in plan.create_podgroups] == ["demo-1"]
    assert plan.delete_podgroups == ["demo-0"]
    current = reconcile(j, old, services(), NOW, WORKLOAD_API_CONFIG,
                        podgroups=[podgroup("demo-0", deleting=True), podgroup("demo-1")])
    assert not current.create_podgroups and not current.delete_podgroups


def test_an_unschedulable_gang_names_the_schedulers_reason():
    words = "minCount (3) cannot be satisfied: 2 scheduled, 0 remaining"
    group = podgroup("demo-0", {"type": "PodGroupInitiallyScheduled", "status": "False", "reason": "Unschedulable",
                                "message": words})
    pending = [unscheduled(pod("demo", rtype, i, phase="Pending", ready=False), words)
               for rtype, i in (("Scheduler", 0), ("Worker", 0), ("Worker", 1))]
    plan = reconcile(gang_job(), pending, services(), NOW, WORKLOAD_API_CONFIG, podgroups=[group])
    assert plan.status["podGroup"] == {"name": "demo-0", "phase": "Unschedulable", "message": f"Unschedulable: {words}"}
    assert plan.status["waiting"]["reason"] == "GangNotScheduled" and words in plan.status["waiting"]["message"]
    assert any(e.reason == "GangUnschedulable" for e in plan.events)
    scheduled = podgroup("demo-0", {"type": "PodGroupInitiallyScheduled", "status": "True", "reason": "Scheduled",
                                    "message": ""})
    plan = reconcile(gang_job(), pending, services(), NOW, WORKLOAD_API_CONFIG, podgroups=[scheduled])
    assert plan.status["podGroup"] == {"name": "demo-0", "phase": "Scheduled"}


def test_finished_jobs_release_their_podgroups():
    j = gang_job()
    j["status"] = {"conditions": [{"type": "Succeeded", "status": "True", "reason": "MSJobSucceeded"}]}
    plan = reconcile(j, [], services(), NOW, WORKLOAD_API_CONFIG, podgroups=[podgroup("demo-0")])
    assert plan.delete_podgroups == ["demo-0"]
