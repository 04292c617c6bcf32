"""The Kueue integration's pure parts: the Workload the reconcile writes, and how a job follows it.

The real Kueue (quota, admission, preemption) is in tests/integration/test_kueue.py; here the Workload's
status is written by hand, as Kueue writes it (shapes verified in tests/cluster/test_kueue_platform.py).
"""

from __future__ import annotations

import copy

from msjob_operator.builders import workload as wl
from msjob_operator.config import Config
from msjob_operator.reconcile.plan import reconcile
from msjob_operator.reconcile.queueing import KueueObserved

from .jobs import NOW, condition, gang, is_true, job, owned, pod, services

NPU = "huawei.com/Ascend910"
KUEUE = Config(kueue=True)
FLAVOR = {"metadata": {"name": "npu"}, "spec": {"nodeLabels": {"pool": "npu"}, "tolerations": [
    {"key": "npu", "operator": "Exists", "effect": "NoSchedule"}]}}
LOCAL_QUEUE = {"metadata": {"name": "jobs", "namespace": "ns"}, "spec": {"clusterQueue": "cq"}}


def queued_job(queue: str = "jobs", priority: str | None = None, **spec) -> dict:
    j = job(workers=2, **spec)
    j["metadata"]["labels"] = {wl.QUEUE_NAME_LABEL: queue}
    if priority:
        j["metadata"]["labels"][wl.PRIORITY_CLASS_LABEL] = priority
    worker = j["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    worker["resources"] = {"limits": {NPU: 8}, "requests": {"cpu": "4"}}
    return j


def observed(*workloads: dict, **extra) -> KueueObserved:
    return KueueObserved(workloads=list(workloads), flavors={"npu": FLAVOR}, local_queues={"jobs": LOCAL_QUEUE},
                         **extra)


def plan_of(j: dict, pods=(), kueue: KueueObserved | None = None, config: Config = KUEUE, **kwargs):
    return reconcile(j, list(pods), services(), NOW, config, kueue=kueue or observed(), **kwargs)


def created(j: dict) -> dict:
    """The Workload the first pass creates, as the API server would return it."""
    (body,) = plan_of(j).create_workloads
    body = copy.deepcopy(body)
    body["metadata"].update(uid="wl-uid", resourceVersion="7")
    return body


def with_conditions(workload: dict, *conditions: tuple[str, str, str, str], admission: bool = False) -> dict:
    workload = copy.deepcopy(workload)
    workload["status"] = {"conditions": [{"type": t, "status": s, "reason": r, "message": m}
                                         for t, s, r, m in conditions]}
    if admission:
        workload["status"]["admission"] = {"clusterQueue": "cq", "podSetAssignments": [
            {"name": name, "count": 1, "flavors": {"cpu": "npu", NPU: "npu"}} for name in ("scheduler", "worker")]}
    return workload


def admitted(workload: dict) -> dict:
    return with_conditions(workload, ("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
                           ("Admitted", "True", "Admitted", "The workload is admitted"), admission=True)


def evicted(workload: dict, reason: str = "Preempted") -> dict:
    return with_conditions(workload, ("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
                           ("Admitted", "True", "Admitted", "The workload is admitted"),
                           ("Evicted", "True", reason, "Preempted to accommodate a workload (UID: u)"),
                           admission=True)


def status_after(plan, j: dict) -> dict:
    return {**j, "status": plan.status}


def test_without_the_flag_a_labelled_job_is_not_queued():
    plan = reconcile(queued_job(), [], services(), NOW)
    assert not plan.create_workloads and len(plan.create_pods) == 3


def test_a_labelled_job_gets_its_workload_and_no_pod():
    j = queued_job()
    plan = plan_of(j)
    assert not plan.create_pods
    (workload,) = plan.create_workloads
    assert workload["apiVersion"] == "kueue.x-k8s.io/v1beta2" and workload["kind"] == "Workload"
    name = workload["metadata"]["name"]
    assert name == wl.workload_name(j) and name.startswith("msjob-demo-")
    assert workload["metadata"]["ownerReferences"] == [{**owned()[0], "blockOwnerDeletion": True}]
    assert workload["metadata"]["labels"][wl.JOB_UID_LABEL] == "job-uid"
    spec = workload["spec"]
    assert spec["queueName"] == "jobs" and "active" not in spec and "priorityClassRef" not in spec
    sets = {s["name"]: s for s in spec["podSets"]}
    assert {name: s["count"] for name, s in sets.items()} == {"scheduler": 1, "worker": 2}
    (container,) = sets["worker"]["template"]["spec"]["containers"]
    assert container["resources"] == {"limits": {NPU: 8}, "requests": {"cpu": "4"}}
    assert "env" not in container  # only what Kueue reads
    conditions = plan.status["conditions"]
    assert condition(conditions, "Suspended")["reason"] == "QueuedForQuota" and plan.status["state"] == "Suspended"
    assert plan.status["waiting"]["reason"] == "QueuedForQuota"
    assert plan.status["kueue"]["workload"] == workload["metadata"]["name"]


def test_the_name_is_the_same_on_every_pass_and_differs_for_another_incarnation():
    j = queued_job()
    again = copy.deepcopy(j)
    other = copy.deepcopy(j)
    other["metadata"]["uid"] = "another-uid"
    assert wl.workload_name(j) == wl.workload_name(again) != wl.workload_name(other)


def test_priority_from_the_workload_priority_class_label():
    j = queued_job(priority="high")
    plan = plan_of(j, kueue=observed(priority_classes={"high": {"metadata": {"name": "high"}, "value": 1000}}))
    (workload,) = plan.create_workloads
    assert workload["spec"]["priorityClassRef"] == {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass",
                                                    "name": "high"}
    assert workload["spec"]["priority"] == 1000
    missing = plan_of(j)
    assert not missing.create_workloads and not missing.create_pods
    assert missing.status["waiting"]["reason"] == "WorkloadPriorityClassNotFound" and missing.requeue_after


def test_a_pending_workload_holds_the_job_with_kueues_words_naming_the_cluster_queue():
    j = queued_job()
    words = "couldn't assign flavors to pod set worker: insufficient unused quota for huawei.com/Ascend910"
    pending = with_conditions(created(j), ("QuotaReserved", "False", "Pending", words))
    plan = plan_of(j, kueue=observed(pending))
    assert not plan.create_pods and not plan.create_workloads
    assert plan.status["waiting"]["message"] == f"waiting for quota in ClusterQueue cq: {words}"
    assert condition(plan.status["conditions"], "Suspended")["message"] == plan.status["waiting"]["message"]
    assert plan.status["kueue"] == {"workload": pending["metadata"]["name"], "localQueue": "jobs", "clusterQueue": "cq",
                                    "state": "Queued", "reason": "Pending",
                                    "message": f"waiting for quota in ClusterQueue cq: {words}"}
    inadmissible = with_conditions(created(j), ("QuotaReserved", "False", "Inadmissible",
                                                "LocalQueue jobs doesn't exist"))
    assert plan_of(j, kueue=observed(inadmissible)).status["waiting"]["reason"] == "QueueInadmissible"


def test_an_admitted_job_runs_with_its_flavors_node_labels_and_tolerations():
    j = queued_job()
    workload = created(j)
    held = status_after(plan_of(j, kueue=observed(workload)), j)
    plan = plan_of(held, kueue=observed(admitted(workload)))
    assert len(plan.create_pods) == 3
    for created_pod in plan.create_pods:
        assert created_pod["spec"]["nodeSelector"]["pool"] == "npu"
        assert {"key": "npu", "operator": "Exists", "effect": "NoSchedule"} in created_pod["spec"]["tolerations"]
        assert created_pod["metadata"]["labels"]["mindspore.gitee.com/attempt"] == "0"  # the first run: attempt 0
    suspended = condition(plan.status["conditions"], "Suspended")
    assert (suspended["status"], suspended["reason"], suspended["message"]) == ("False", "Admitted",
                                                                                 "admitted by ClusterQueue cq")
    assert any(e.reason == "Admitted" and e.message == "admitted by ClusterQueue cq" for e in plan.events)
    assert plan.status["kueue"]["state"] == "Admitted"


def test_an_unknown_flavor_holds_the_admitted_job():
    j = queued_job()
    plan = plan_of(j, kueue=KueueObserved(workloads=[admitted(created(j))]))
    assert not plan.create_pods and plan.status["waiting"]["reason"] == "ResourceFlavorNotFound"


def test_an_eviction_stops_the_job_uncounted_then_gives_the_quota_back():
    j = queued_job(runPolicy={"backoffLimit": 0})
    workload = created(j)
    held = status_after(plan_of(j, kueue=observed(workload)), j)  # queued first, as on a real cluster
    running = status_after(plan_of(held, gang(), kueue=observed(admitted(workload))), held)
    assert is_true(running["status"]["conditions"], "Created")
    assert condition(running["status"]["conditions"], "Suspended")["status"] == "False"
    plan = plan_of(running, gang(), kueue=observed(evicted(workload)))
    assert {d.name for d in plan.delete_pods} == {"demo-scheduler-0", "demo-worker-0", "demo-worker-1"}
    assert not plan.workload_writes  # the pods are still there: the quota stays reserved
    suspended = condition(plan.status["conditions"], "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("True", "KueueEvicted")
    assert "Preempted" in suspended["message"] and plan.status.get("backoffCount", 0) == 0
    assert any(e.type == "Warning" and e.reason == "KueueEvicted" for e in plan.events)
    assert not any(c["type"] == "Failed" for c in plan.status["conditions"])

    stopping = status_after(plan, running)
    terminating = [pod("demo", rtype, i, deleting=True) for rtype, i in (("Scheduler", 0), ("Worker", 0))]
    assert not plan_of(stopping, terminating, kueue=observed(evicted(workload))).workload_writes
    gone = plan_of(stopping, [], kueue=observed(evicted(workload)))
    (release,) = gone.workload_writes
    assert (release.what, release.name, release.resource_version) == ("patch-status", workload["metadata"]["name"], "7")
    assert release.body["status"]["admission"] is None
    by_type = {c["type"]: c for c in release.body["status"]["conditions"]}
    assert (by_type["QuotaReserved"]["status"], by_type["QuotaReserved"]["reason"]) == ("False", "Pending")
    assert (by_type["Admitted"]["status"], by_type["Admitted"]["reason"]) == ("False", "NoReservation")
    assert (by_type["Requeued"]["status"], by_type["Requeued"]["reason"]) == ("True", "Preempted")
    assert by_type["Evicted"]["status"] == "True"  # Kueue's own condition, kept


def test_admitted_again_after_an_eviction_is_a_new_attempt():
    j = queued_job()
    workload = created(j)
    running = status_after(plan_of(j, gang(), kueue=observed(admitted(workload))), j)
    stopped = status_after(plan_of(running, [], kueue=observed(evicted(workload))), running)
    requeued = with_conditions(workload, ("QuotaReserved", "False", "Pending", "insufficient unused quota"),
                               ("Evicted", "True", "Preempted", "Preempted ..."))
    queued = status_after(plan_of(stopped, [], kueue=observed(requeued)), stopped)
    assert queued["status"]["waiting"]["reason"] == "QueuedForQuota"
    plan = plan_of(queued, [], kueue=observed(admitted(workload)))
    assert plan.status["attempt"] == 1 and len(plan.create_pods) == 3
    assert {p["metadata"]["labels"]["mindspore.gitee.com/attempt"] for p in plan.create_pods} == {"1"}
    assert plan.status.get("backoffCount", 0) == 0


def test_a_finished_job_marks_its_workload_finished():
    j = queued_job()
    workload = admitted(created(j))
    pods = gang()
    pods[1] = pod("demo", "Worker", 0, phase="Succeeded", exit_code=0)
    done = status_after(plan_of(j, pods, kueue=observed(workload)), j)
    assert is_true(done["status"]["conditions"], "Succeeded")
    plan = plan_of(done, pods, kueue=observed(workload))
    (finish,) = plan.workload_writes
    assert finish.what == "apply-status" and finish.body["kind"] == "Workload"
    assert finish.body["metadata"] == {"name": workload["metadata"]["name"]}
    (finished,) = finish.body["status"]["conditions"]
    assert (finished["type"], finished["status"], finished["reason"]) == ("Finished", "True", "Succeeded")
    assert finished["lastTransitionTime"] == "2026-11-22T12:00:00Z"
    marked = with_conditions(workload, ("Finished", "True", "Succeeded", "done"))
    assert not plan_of(done, pods, kueue=observed(marked)).workload_writes


def test_a_suspended_job_deactivates_its_workload_and_a_resumed_one_activates_it():
    j = queued_job(runPolicy={"suspend": True})
    (workload,) = plan_of(j).create_workloads
    assert workload["spec"]["active"] is False
    assert workload["metadata"]["annotations"] == {wl.DEACTIVATED_ANNOTATION: "true"}
    running = queued_job()
    active = admitted(created(running))
    suspend = plan_of(queued_job(runPolicy={"suspend": True}), gang(), kueue=observed(active))
    (write,) = suspend.workload_writes
    assert write.what == "patch" and write.body["spec"] == {"active": False}
    assert len(suspend.delete_pods) == 3  # the user's suspension wins
    # Evicted (Deactivated) and its quota given back, as Kueue and the operator leave it.
    inactive = with_conditions(created(running), ("QuotaReserved", "False", "Pending", "deactivated"),
                               ("Evicted", "True", "Deactivated", "The workload is deactivated"))
    inactive["spec"]["active"] = False
    inactive["metadata"]["annotations"] = {wl.DEACTIVATED_ANNOTATION: "true"}
    resumed = plan_of(running, kueue=observed(inactive))
    (resume,) = resumed.workload_writes
    assert resume.body == {"metadata": {"annotations": {wl.DEACTIVATED_ANNOTATION: None}}, "spec": {"active": True}}
    assert resumed.status["waiting"]["reason"] == "QueuedForQuota"  # in the queue again, not "inactive"
    # Deactivated by someone else (an administrator, Kueue itself): left alone, and the job waits.
    del inactive["metadata"]["annotations"]
    plan = plan_of(running, kueue=observed(with_conditions(inactive)))
    assert not plan.workload_writes and plan.status["waiting"]["reason"] == "QueueWorkloadInactive"
    assert not plan.create_pods


def test_taking_the_label_off_takes_the_job_out_of_kueue():
    j = queued_job()
    workload = created(j)
    del j["metadata"]["labels"][wl.QUEUE_NAME_LABEL]
    plan = plan_of(j, kueue=observed(workload))
    assert [(w.what, w.uid) for w in plan.workload_writes] == [("delete", "wl-uid")]
    assert len(plan.create_pods) == 3


def test_a_resized_job_replaces_its_workload_once_its_pods_are_gone():
    j = queued_job()
    workload = admitted(created(j))
    resized = copy.deepcopy(j)
    resized["spec"]["msReplicaSpecs"]["Worker"]["replicas"] = 3
    plan = plan_of(resized, gang(), kueue=observed(workload))
    assert len(plan.delete_pods) == 3 and not plan.workload_writes
    assert plan.status["waiting"]["reason"] == "QueueWorkloadOutdated"
    (delete,) = plan_of(resized, [], kueue=observed(workload)).workload_writes
    assert delete.what == "delete"
    deleting = copy.deepcopy(workload)
    deleting["metadata"]["deletionTimestamp"] = "2026-11-22T11:59:59Z"
    assert not plan_of(resized, [], kueue=observed(deleting)).create_workloads
    (new,) = plan_of(resized, []).create_workloads
    assert {s["name"]: s["count"] for s in new["spec"]["podSets"]} == {"scheduler": 1, "worker": 3}


def test_a_job_over_the_cap_fails_without_a_workload():
    plan = plan_of(queued_job(), config=Config(kueue=True, max_pods_per_job=2))
    assert not plan.create_workloads and condition(plan.status["conditions"], "Failed")["reason"] == "TooManyReplicas"


def test_without_kueues_api_a_labelled_job_waits():
    plan = plan_of(queued_job(), config=Config(kueue=True, kueue_available=False))
    assert not plan.create_pods and not plan.create_workloads
    assert plan.status["waiting"]["reason"] == "KueueNotServed"


def test_a_refused_workload_shows_in_status():
    from msjob_operator.reconcile.waiting import Refusal
    j = queued_job()
    name = wl.workload_name(j)
    refusal = Refusal("Workload", name, 422, "Invalid", "spec.podSets[0].template: Invalid value")
    plan = plan_of(j, refusals={("Workload", name): refusal})
    waiting = plan.status["waiting"]
    assert waiting["reason"] == "QueueWorkloadRefused" and "Invalid value" in waiting["message"]


def test_pod_set_shapes_compare_quantities_not_spelling():
    def pod_sets(npus, memory):
        resources = {"limits": {NPU: npus}, "requests": {"memory": memory}}
        return [{"name": "worker", "count": 2, "template": {"spec": {"containers": [{"resources": resources}]}}}]
    a, b = pod_sets(8, "1Gi"), pod_sets("8", "1024Mi")
    assert wl.pod_set_shapes(a) == wl.pod_set_shapes(b)
    b[0]["count"] = 3
    assert wl.pod_set_shapes(a) != wl.pod_set_shapes(b)
