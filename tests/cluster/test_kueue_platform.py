"""Kueue's manager on the local cluster (``kueue=True``), driven the way the msjob operator will.

The operator is Kueue's job framework for MSJobs: it writes each job's Workload itself
(pod sets, queue name, priority; controlled by the MSJob), waits for admission, marks
the Workload Finished, and on eviction stops the job and gives the quota back. Here a
ConfigMap stands in for the MSJob, and the test plays the framework's part.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from kubernetes import config
from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from ..helpers import wait_for

pytestmark = pytest.mark.cluster

KUEUE, VERSION = "kueue.x-k8s.io", "v1beta2"
NPU = "huawei.com/Ascend910"
FLAVOR_LABEL = "msjob.test/flavor"
FRAMEWORK = "msjob-operator"  # the field manager the operator would use


@dataclasses.dataclass
class Queue:
    namespace: str
    flavor: str
    cluster_queue: str
    local_queue: str
    low: str  # WorkloadPriorityClass names and values
    high: str
    values: dict


@pytest.fixture(scope="module")
def apis(gang_cluster):
    client = config.new_client_from_config(config_file=str(gang_cluster.kubeconfig))
    yield CustomObjectsApi(client), CoreV1Api(client)
    client.close()


@pytest.fixture
def queue(apis, gang_namespace):
    """A flavor with a node label, a ClusterQueue with 16 NPUs (and CPU/memory: every resource the
    pods request must be covered), a LocalQueue in the namespace and two WorkloadPriorityClasses."""
    custom, _ = apis
    suffix = uuid.uuid4().hex[:6]
    q = Queue(gang_namespace, f"npu-{suffix}", f"cq-{suffix}", "jobs", f"low-{suffix}", f"high-{suffix}", {})
    q.values = {q.low: 100, q.high: 1000}
    cluster_objects = [
        ("resourceflavors", {"metadata": {"name": q.flavor}, "spec": {"nodeLabels": {FLAVOR_LABEL: q.flavor}}}),
        ("clusterqueues", {"metadata": {"name": q.cluster_queue}, "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": q.namespace}},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{"coveredResources": ["cpu", "memory", NPU], "flavors": [{
                "name": q.flavor, "resources": [
                    {"name": "cpu", "nominalQuota": "64"}, {"name": "memory", "nominalQuota": "512Gi"},
                    {"name": NPU, "nominalQuota": "16"}]}]}],
        }}),
        *[("workloadpriorityclasses", {"metadata": {"name": name}, "value": value})
          for name, value in q.values.items()],
    ]
    kinds = {"resourceflavors": "ResourceFlavor", "clusterqueues": "ClusterQueue",
             "workloadpriorityclasses": "WorkloadPriorityClass"}
    for plural, body in cluster_objects:
        custom.create_cluster_custom_object(KUEUE, VERSION, plural, {
            "apiVersion": f"{KUEUE}/{VERSION}", "kind": kinds[plural], **body})
    custom.create_namespaced_custom_object(KUEUE, VERSION, q.namespace, "localqueues", {
        "apiVersion": f"{KUEUE}/{VERSION}", "kind": "LocalQueue", "metadata": {"name": q.local_queue},
        "spec": {"clusterQueue": q.cluster_queue}})
    wait_for(lambda: is_true(custom.get_namespaced_custom_object(
        KUEUE, VERSION, q.namespace, "localqueues", q.local_queue), "Active"), message="LocalQueue Active")
    yield q
    for plural, body in reversed(cluster_objects):  # the ClusterQueue goes once its workloads have
        custom.delete_cluster_custom_object(KUEUE, VERSION, plural, body["metadata"]["name"])


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions") or [] if c["type"] == type_), None)


def is_true(obj: dict, type_: str) -> bool:
    return (condition(obj, type_) or {}).get("status") == "True"


def template(requests: dict) -> dict:
    limits = {k: v for k, v in requests.items() if k == NPU}  # extended resources: limits == requests
    return {"spec": {"restartPolicy": "Never", "containers": [{
        "name": "main", "image": "mindspore/mindspore:2.10", "resources": {"requests": requests, "limits": limits}}]}}


def submit(apis, q: Queue, name: str, priority_class: str | None = None) -> dict:
    """A ConfigMap standing in for the MSJob, and its Workload as the operator writes it:
    one pod set per role, the job as controller owner (and its UID in the label Kueue's
    messages quote), the LocalQueue, the priority."""
    custom, core = apis
    owner = core.create_namespaced_config_map(q.namespace, {"metadata": {"name": f"{name}-job"}})
    spec = {"queueName": q.local_queue, "podSets": [
        {"name": "scheduler", "count": 1, "template": template({"cpu": "1", "memory": "1Gi"})},
        {"name": "worker", "count": 1, "template": template({"cpu": "4", "memory": "16Gi", NPU: "8"})},
    ]}
    if priority_class:
        # The framework resolves the class: the CRD requires `priority` beside `priorityClassRef`.
        spec["priorityClassRef"] = {"group": KUEUE, "kind": "WorkloadPriorityClass", "name": priority_class}
        spec["priority"] = q.values[priority_class]
    return custom.create_namespaced_custom_object(KUEUE, VERSION, q.namespace, "workloads", {
        "apiVersion": f"{KUEUE}/{VERSION}", "kind": "Workload",
        "metadata": {"name": name, "labels": {f"{KUEUE}/job-uid": owner.metadata.uid}, "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid,
            "controller": True, "blockOwnerDeletion": True}]},
        "spec": spec,
    })


def workload(apis, q: Queue, name: str) -> dict:
    return apis[0].get_namespaced_custom_object(KUEUE, VERSION, q.namespace, "workloads", name)


def wait_admitted(apis, q: Queue, name: str, timeout: float = 30) -> dict:
    return wait_for(lambda: (w := workload(apis, q, name)).get("status", {}).get("admission")
                    and is_true(w, "QuotaReserved") and is_true(w, "Admitted") and w,
                    timeout=timeout, message=f"{name} admitted", describe=lambda: workload(apis, q, name).get("status"))


def wait_pending(apis, q: Queue, name: str, words: str) -> dict:
    """QuotaReserved=False/Pending with ``words`` in its message: Kueue has tried and refused."""
    def pending():
        c = condition(workload(apis, q, name), "QuotaReserved")
        return c if c and c["status"] == "False" and c["reason"] == "Pending" and words in c["message"] else None
    return wait_for(pending, message=f"{name} pending ({words})",
                    describe=lambda: workload(apis, q, name).get("status"))


def apply_status(apis, q: Queue, name: str, conditions: list[dict]) -> dict:
    """Server-side apply of the framework's own conditions to the status subresource: the
    entries of the other managers (Kueue's) stay, as conditions are a map keyed by type."""
    return apis[0].api_client.call_api(
        f"/apis/{KUEUE}/{VERSION}/namespaces/{q.namespace}/workloads/{name}/status", "PATCH",
        query_params=[("fieldManager", FRAMEWORK), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body={"apiVersion": f"{KUEUE}/{VERSION}", "kind": "Workload", "metadata": {"name": name},
              "status": {"conditions": conditions}},
        response_type="object", auth_settings=["BearerToken"], _return_http_data_only=True)


def now() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_quota_admits_two_queues_the_third_and_a_finished_one_releases_it(apis, queue):
    q = queue
    submit(apis, q, "first")
    first = wait_admitted(apis, q, "first")
    submit(apis, q, "second")
    wait_admitted(apis, q, "second")

    admission = first["status"]["admission"]
    assert admission["clusterQueue"] == q.cluster_queue
    by_name = {a["name"]: a for a in admission["podSetAssignments"]}
    assert set(by_name) == {"scheduler", "worker"}
    assert by_name["worker"]["count"] == 1
    assert by_name["worker"]["flavors"] == {"cpu": q.flavor, "memory": q.flavor, NPU: q.flavor}
    assert by_name["worker"]["resourceUsage"][NPU] == "8"
    # Assignments name flavors only: the pods' nodeSelector comes from each flavor's nodeLabels.
    flavor = apis[0].get_cluster_custom_object(KUEUE, VERSION, "resourceflavors", q.flavor)
    assert flavor["spec"]["nodeLabels"] == {FLAVOR_LABEL: q.flavor}

    submit(apis, q, "third")
    pending = wait_pending(apis, q, "third", "insufficient unused quota")
    assert NPU in pending["message"]
    assert "admission" not in workload(apis, q, "third").get("status", {})

    # The framework reports the end of the job: Finished=True on the status subresource.
    done = apply_status(apis, q, "first", [{"type": "Finished", "status": "True", "reason": "Succeeded",
                                             "message": "MSJob succeeded", "lastTransitionTime": now()}])
    assert is_true(done, "QuotaReserved")  # Kueue keeps the record; the quota is released all the same
    wait_admitted(apis, q, "third")
    assert is_true(workload(apis, q, "first"), "Finished")


def test_a_higher_priority_workload_preempts_once_the_framework_releases_the_victim(apis, queue):
    q = queue
    for name in ("low-a", "low-b"):
        submit(apis, q, name, q.low)
        wait_admitted(apis, q, name)
    urgent = submit(apis, q, "urgent", q.high)

    def evicted():
        return next((n for n in ("low-a", "low-b") if is_true(workload(apis, q, n), "Evicted")), None)
    victim_name = wait_for(evicted, message="a low-priority workload evicted")
    victim = workload(apis, q, victim_name)
    assert condition(victim, "Evicted")["reason"] == "Preempted"
    assert f"JobUID: {urgent['metadata']['labels'][f'{KUEUE}/job-uid']}" in condition(victim, "Evicted")["message"]
    assert condition(victim, "Preempted")["reason"] == "InClusterQueue"
    # Kueue leaves the quota with the victim until its job has stopped: the preemptor waits.
    waiting = wait_pending(apis, q, "urgent", "preemption")
    victim = workload(apis, q, victim_name)
    assert is_true(victim, "QuotaReserved") and victim["status"].get("admission")
    print("urgent waits:", waiting["message"], "\nvictim:", condition(victim, "Evicted"))

    # The framework's part (after the job's pods are gone): give the quota back and requeue.
    message = condition(victim, "Evicted")["message"]
    victim["status"]["admission"] = None
    replaced = ("QuotaReserved", "Admitted", "Requeued")
    conditions = [c for c in victim["status"]["conditions"] if c["type"] not in replaced]
    victim["status"]["conditions"] = conditions + [
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": message,
         "lastTransitionTime": now()},
        {"type": "Admitted", "status": "False", "reason": "NoReservation", "message": "The workload has no reservation",
         "lastTransitionTime": now()},
        {"type": "Requeued", "status": "True", "reason": "Preempted", "message": message, "lastTransitionTime": now()},
    ]
    apis[0].replace_namespaced_custom_object_status(KUEUE, VERSION, q.namespace, "workloads", victim_name, victim)
    wait_admitted(apis, q, "urgent")
    # The victim is back in the queue, pending for quota like any other.
    wait_pending(apis, q, victim_name, "insufficient unused quota")


def test_deleting_the_owner_deletes_its_workload_unless_kueues_finalizer_holds_it(apis, queue):
    custom, core = apis
    submit(apis, queue, "owned")
    held = submit(apis, queue, "held")
    for name in ("owned", "held"):  # both settled in Kueue's hands before anything is deleted
        wait_admitted(apis, queue, name)
    # Kueue's own frameworks put this finalizer on their Workloads (quota stays held until the
    # job's pods are gone) and take it off themselves; Kueue removes it only from ownerless ones.
    finalizer = f"{KUEUE}/resource-in-use"
    custom.patch_namespaced_custom_object(KUEUE, VERSION, queue.namespace, "workloads", "held",
                                          {"metadata": {"finalizers": [finalizer]}})
    marked = wait_for(lambda: (w := workload(apis, queue, "held"))["metadata"].get("finalizers") == [finalizer] and w,
                      message="the finalizer on the held Workload", describe=lambda: workload(apis, queue, "held"))
    for name in ("owned", "held"):
        core.delete_namespaced_config_map(f"{name}-job", queue.namespace, propagation_policy="Background")

    def read(name: str) -> dict | None:
        try:
            return workload(apis, queue, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
    # The garbage collector knows Kueue's kinds from its start (their CRDs are installed before it).
    wait_for(lambda: read("owned") is None, message="Workload garbage-collected", timeout=60)
    last: dict = {"seen": marked}

    def terminating() -> dict | None:
        w = read("held")
        assert w is not None, f"the held Workload was deleted outright; last seen: {last['seen']}"
        last["seen"] = w
        return w if w["metadata"].get("deletionTimestamp") else None
    terminating_wl = wait_for(terminating, message="held Workload terminating", timeout=60,
                              describe=lambda: last["seen"])
    assert terminating_wl["metadata"]["finalizers"] == [finalizer]
    assert terminating_wl["metadata"]["uid"] == held["metadata"]["uid"]
    custom.patch_namespaced_custom_object(KUEUE, VERSION, queue.namespace, "workloads", "held",
                                          {"metadata": {"finalizers": None}})  # the framework's part
    wait_for(lambda: read("held") is None, message="held Workload gone once released")
