"""MSJobs queued by the real Kueue (v0.17 manager on the local cluster): quota, admission, preemption.

The operator runs with --kueue (and the chart's RBAC for it: see ``gang_operator``). A job labelled
kueue.x-k8s.io/queue-name gets a Kueue Workload; Kueue admits it against a ClusterQueue of 16
huawei.com/Ascend910; the operator creates its pods only then, with the admitted flavor's node labels and
tolerations, which are what lets them onto the test's tainted nodes.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes.client import CustomObjectsApi

from msjob_localcluster.cluster import POOL_LABEL
from msjob_operator.api import naming
from msjob_operator.builders import workload as wl

from ..helpers import wait_for
from .msjobs import EXIT, msjob

pytestmark = pytest.mark.cluster

KUEUE, VERSION = "kueue.x-k8s.io", "v1beta2"
NPU = "huawei.com/Ascend910"


@dataclasses.dataclass
class Queues:
    flavor: str
    cluster_queue: str
    local_queue: str
    low: str  # WorkloadPriorityClasses
    high: str


@pytest.fixture
def kueue_api(gang_kube):
    return CustomObjectsApi(gang_kube)


@pytest.fixture
def queues(kueue_api, gang_namespace, gang_pool):
    """A ResourceFlavor for the test's pool (its node label and a toleration of the pool's taint), a
    ClusterQueue with 16 NPUs that preempts lower priorities, a LocalQueue, two WorkloadPriorityClasses."""
    suffix = uuid.uuid4().hex[:6]
    q = Queues(f"npu-{suffix}", f"cq-{suffix}", "jobs", f"low-{suffix}", f"high-{suffix}")
    toleration = {"key": POOL_LABEL, "operator": "Equal", "value": gang_pool.name, "effect": "NoSchedule"}
    cluster_objects = [
        ("resourceflavors", "ResourceFlavor", {"metadata": {"name": q.flavor}, "spec": {
            "nodeLabels": {POOL_LABEL: gang_pool.name}, "tolerations": [toleration]}}),
        ("clusterqueues", "ClusterQueue", {"metadata": {"name": q.cluster_queue}, "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gang_namespace}},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{"coveredResources": [NPU], "flavors": [
                {"name": q.flavor, "resources": [{"name": NPU, "nominalQuota": "16"}]}]}]}}),
        ("workloadpriorityclasses", "WorkloadPriorityClass", {"metadata": {"name": q.low}, "value": 100}),
        ("workloadpriorityclasses", "WorkloadPriorityClass", {"metadata": {"name": q.high}, "value": 1000}),
    ]
    for plural, kind, body in cluster_objects:
        kueue_api.create_cluster_custom_object(KUEUE, VERSION, plural, {"apiVersion": f"{KUEUE}/{VERSION}",
                                                                         "kind": kind, **body})
    kueue_api.create_namespaced_custom_object(KUEUE, VERSION, gang_namespace, "localqueues", {
        "apiVersion": f"{KUEUE}/{VERSION}", "kind": "LocalQueue", "metadata": {"name": q.local_queue},
        "spec": {"clusterQueue": q.cluster_queue}})
    wait_for(lambda: _true(kueue_api.get_namespaced_custom_object(
        KUEUE, VERSION, gang_namespace, "localqueues", q.local_queue), "Active"), message="LocalQueue Active")
    yield q
    for plural, _, body in reversed(cluster_objects):
        kueue_api.delete_cluster_custom_object(KUEUE, VERSION, plural, body["metadata"]["name"])


def _true(obj: dict, ctype: str, reason: str | None = None) -> bool:
    found = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)
    return bool(found) and found["status"] == "True" and (reason is None or found.get("reason") == reason)


def queued(name: str, q: Queues, workers: int = 1, priority: str | None = None, label: bool = True, **spec) -> dict:
    """A job of ``workers`` x 8 NPUs (and a scheduler) in the LocalQueue; no node selector of its own: the
    flavor's is what puts its workers on the pool's nodes."""
    body = msjob(name, workers=workers, **spec)
    body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {NPU: 8}}
    if label:
        body["metadata"]["labels"] = {wl.QUEUE_NAME_LABEL: q.local_queue}
        if priority:
            body["metadata"]["labels"][wl.PRIORITY_CLASS_LABEL] = priority
    return body


def workloads(kueue_api, namespace: str, job: str) -> list[dict]:
    return kueue_api.list_namespaced_custom_object(KUEUE, VERSION, namespace, "workloads",
                                                   label_selector=f"{naming.JOB_NAME_LABEL}={job}")["items"]


def workload_of(kueue_api, jobs, job: str) -> dict:
    (found,) = workloads(kueue_api, jobs.ns, job)
    return found


def waiting(jobs, name: str, reason: str, saying: str = "") -> dict:
    """status.waiting once its reason is ``reason`` and its message has ``saying`` (Kueue writes its
    own words to the Workload a moment after the Workload shows as pending)."""
    return wait_for(lambda: (w := (jobs.get(name).get("status") or {}).get("waiting") or {}).get("reason") == reason
                    and saying in (w.get("message") or "") and w, timeout=60,
                    message=f"{name} waiting with reason {reason}" + (f" saying {saying!r}" if saying else ""),
                    describe=lambda: jobs.get(name).get("status"))


def finish(jobs, name: str) -> None:
    jobs.annotate_pod(f"{name}-worker-0", {EXIT: "0"})
    jobs.wait_condition(name, "Succeeded", timeout=90)


def test_quota_admits_two_queues_the_third_and_a_finished_job_lets_it_in(gang_jobs, kueue_api, queues, gang_pool):
    jobs, q = gang_jobs, queues
    gang_pool(3)  # room for three jobs: it is the quota that holds the third back
    for name in ("first", "second"):
        jobs.create(queued(name, q))
    for name in ("first", "second"):
        jobs.wait_pods(name, 2, timeout=90)
        jobs.wait_condition(name, "Running")
    jobs.create(queued("third", q))
    held = waiting(jobs, "third", "QueuedForQuota", saying="insufficient unused quota")
    assert f"waiting for quota in ClusterQueue {q.cluster_queue}" in held["message"]
    assert "insufficient unused quota" in held["message"] and NPU in held["message"]  # Kueue's own words
    status = jobs.get("third")["status"]
    assert status["state"] == "Suspended" and status["kueue"]["state"] == "Queued"
    assert jobs.condition("third", "Suspended")["reason"] == "QueuedForQuota"
    assert jobs.pods("third") == []  # no pod while queued
    jobs.wait_event("third", "QueuedForQuota")

    # The admitted jobs' pods carry their flavor's node label and toleration (their template has neither).
    worker = next(p for p in jobs.pods("first") if "worker" in p.metadata.name)
    assert worker.spec.node_selector[POOL_LABEL] == gang_pool.name
    assert any(t.key == POOL_LABEL and t.value == gang_pool.name for t in worker.spec.tolerations)
    assert jobs.get("first")["status"]["kueue"] == {
        "workload": wl.workload_name(jobs.get("first")), "localQueue": q.local_queue, "clusterQueue": q.cluster_queue,
        "state": "Admitted", "reason": "Admitted", "message": f"admitted by ClusterQueue {q.cluster_queue}"}
    admitted = jobs.wait_event("first", "Admitted")
    assert admitted.message == f"admitted by ClusterQueue {q.cluster_queue}"
    first_workload = workload_of(kueue_api, jobs, "first")
    assert first_workload["metadata"]["ownerReferences"][0]["name"] == "first"
    assert {s["name"]: s["count"] for s in first_workload["spec"]["podSets"]} == {"scheduler": 1, "worker": 1}

    # A job without the queue label is Kueue's business in no way: it runs at once, with no Workload.
    free = queued("free", q, label=False)
    spec = free["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]
    spec["nodeSelector"] = {POOL_LABEL: gang_pool.name}
    spec["tolerations"] = [{"key": POOL_LABEL, "value": gang_pool.name, "effect": "NoSchedule"}]
    jobs.create(free)
    jobs.wait_condition("free", "Running", timeout=90)
    assert workloads(kueue_api, jobs.ns, "free") == [] and "kueue" not in jobs.get("free")["status"]
    assert jobs.pods("third") == []

    finish(jobs, "first")
    wait_for(lambda: _true(workload_of(kueue_api, jobs, "first"), "Finished", "Succeeded"), timeout=60,
             message="the finished job's Workload Finished", describe=lambda: workload_of(kueue_api, jobs, "first"))
    jobs.wait_pods("third", 2, timeout=90)
    jobs.wait_condition("third", "Running")
    assert jobs.condition("third", "Suspended")["status"] == "False"
    assert jobs.get("third")["status"]["kueue"]["state"] == "Admitted"


def test_a_higher_priority_job_preempts_a_lower_one_which_resumes_later_without_using_its_budget(
        gang_jobs, kueue_api, queues, gang_pool):
    jobs, q = gang_jobs, queues
    gang_pool(2)
    lows = ("low-a", "low-b")
    for name in lows:
        jobs.create(queued(name, q, priority=q.low, runPolicy={"backoffLimit": 0}))
        jobs.wait_condition(name, "Running", timeout=90)
    jobs.create(queued("urgent", q, priority=q.high))
    victim = wait_for(lambda: next((n for n in lows if (jobs.condition(n, "Suspended") or {}).get("reason")
                                    == "KueueEvicted"), None), timeout=60, message="a low-priority job evicted",
                      describe=lambda: {n: jobs.get(n)["status"].get("conditions") for n in lows})
    survivor = next(n for n in lows if n != victim)
    evicted = jobs.condition(victim, "Suspended")
    assert "Preempted" in evicted["message"]
    jobs.wait_event(victim, "KueueEvicted", "Warning")
    # Its pods go, the quota goes back, the urgent job runs; the victim waits in the queue again.
    jobs.wait_pods("urgent", 2, timeout=90)
    jobs.wait_condition("urgent", "Running")
    waiting(jobs, victim, "QueuedForQuota")
    assert jobs.pods(victim) == []
    status = jobs.get(victim)["status"]
    assert not (status.get("backoffCount") or 0) and jobs.condition(victim, "Failed") is None
    assert _true(workload_of(kueue_api, jobs, victim), "Requeued", "Preempted")
    assert jobs.condition(survivor, "Running")["status"] == "True"

    finish(jobs, "urgent")
    jobs.wait_pods(victim, 2, timeout=90, attempt=1)  # admitted again: a new attempt, as after a resume
    jobs.wait_condition(victim, "Running")
    finish(jobs, victim)
    status = jobs.get(victim)["status"]
    assert not (status.get("backoffCount") or 0) and status["attempt"] == 1  # backoffLimit 0, and it succeeded
    finish(jobs, survivor)


def test_a_job_the_user_suspends_gives_its_quota_to_the_queue_and_resumes_in_its_turn(gang_jobs, kueue_api, queues,
                                                                                       gang_pool):
    jobs, q = gang_jobs, queues
    gang_pool(2)
    for name in ("paused", "steady"):
        jobs.create(queued(name, q))
        jobs.wait_condition(name, "Running", timeout=90)
    jobs.create(queued("waiter", q))
    waiting(jobs, "waiter", "QueuedForQuota")
    jobs.patch("paused", {"spec": {"runPolicy": {"suspend": True}}})  # the user's suspension wins over the admission
    jobs.wait_condition("waiter", "Running", timeout=90)  # the paused job's quota went to the queue
    assert jobs.condition("paused", "Suspended")["reason"] == "MSJobSuspended"
    assert jobs.pods("paused", include_terminating=False) == []
    assert workload_of(kueue_api, jobs, "paused")["spec"]["active"] is False
    jobs.patch("paused", {"spec": {"runPolicy": {"suspend": False}}})
    waiting(jobs, "paused", "QueuedForQuota")  # back in the queue, behind nobody: the quota is taken
    wait_for(lambda: workload_of(kueue_api, jobs, "paused")["spec"].get("active") is not False, timeout=30,
             message="the Workload activated again")  # written after the job's status, in the same pass
    finish(jobs, "waiter")
    jobs.wait_pods("paused", 2, timeout=90, attempt=1)
    jobs.wait_condition("paused", "Running")


def test_deleting_a_queued_job_leaves_no_workload(gang_jobs, kueue_api, queues, gang_pool):
    jobs, q = gang_jobs, queues
    jobs.create(queued("toobig", q, workers=3))  # 24 NPUs: more than the ClusterQueue ever has
    waiting(jobs, "toobig", "QueuedForQuota")
    assert len(workloads(kueue_api, jobs.ns, "toobig")) == 1
    jobs.delete("toobig")
    wait_for(lambda: workloads(kueue_api, jobs.ns, "toobig") == [], timeout=60,
             message="the Workload garbage-collected with its job")


def test_the_operator_killed_while_a_job_waits_makes_no_second_workload(gang_jobs, kueue_api, queues, gang_pool,
                                                                        running_gang_operator):
    jobs, q, operator = gang_jobs, queues, running_gang_operator
    gang_pool(3)
    for name in ("one", "two"):
        jobs.create(queued(name, q))
    for name in ("one", "two"):
        jobs.wait_condition(name, "Running", timeout=90)
    jobs.create(queued("later", q))
    operator.kill()  # maybe before the Workload was created, maybe while it was being created
    operator.start()
    waiting(jobs, "later", "QueuedForQuota")
    operator.kill()  # and with the job waiting for admission
    finish_while_down = "one"
    jobs.annotate_pod(f"{finish_while_down}-worker-0", {EXIT: "0"})
    operator.start()
    jobs.wait_condition(finish_while_down, "Succeeded", timeout=90)
    jobs.wait_pods("later", 2, timeout=90)
    jobs.wait_condition("later", "Running")
    (only,) = workloads(kueue_api, jobs.ns, "later")
    assert only["metadata"]["name"] == wl.workload_name(jobs.get("later"))
    assert _true(only, "Admitted")


def test_the_kueue_example_is_accepted_by_kueue_and_the_operator(kueue_api, gang_namespace, gang_jobs):
    """examples/kueue-queued.yaml: the admin's objects pass Kueue's own schema and webhooks, the job
    the MSJob CRD (server-side dry runs, nothing kept)."""
    path = Path(__file__).parents[2] / "examples" / "kueue-queued.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert [d["kind"] for d in docs] == ["ResourceFlavor", "ClusterQueue", "LocalQueue", "MSJob"]
    flavor = kueue_api.create_cluster_custom_object(KUEUE, VERSION, "resourceflavors", docs[0], dry_run="All")
    assert flavor["spec"]["nodeLabels"] == docs[0]["spec"]["nodeLabels"]
    queue = kueue_api.create_cluster_custom_object(KUEUE, VERSION, "clusterqueues", docs[1], dry_run="All")
    quotas = {r["name"]: str(r["nominalQuota"]) for g in queue["spec"]["resourceGroups"] for f in g["flavors"]
              for r in f["resources"]}
    assert quotas == {"cpu": "64", "memory": "256Gi", NPU: "16"}
    kept = kueue_api.create_namespaced_custom_object(KUEUE, VERSION, gang_namespace, "localqueues", docs[2],
                                                     dry_run="All")
    assert kept["spec"]["clusterQueue"] == "npu-cluster-queue"
    job = gang_jobs.custom.create_namespaced_custom_object("mindspore.gitee.com", "v1", gang_namespace, "msjobs",
                                                           docs[3], dry_run="All")
    assert job["metadata"]["labels"][wl.QUEUE_NAME_LABEL] == docs[2]["metadata"]["name"]
