"""Hostile but realistic use on the real cluster: what a user can do to a job with kubectl alone.

Each test reproduces one behaviour found by trying (orphans and squatters, deletions by hand,
evictions in a loop, refused creates, deleted Services, stripped labels) and proves what the
operator does about it now.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi

from msjob_operator.api import naming

from ..helpers import wait_for
from .msjobs import EXIT, GROUP, KWOK_POD_SPEC, PLURAL, VERSION, msjob

pytestmark = pytest.mark.cluster
EVICT = "kwok.msjob.test/evict"


def status(jobs, name: str) -> dict:
    return jobs.get(name).get("status") or {}


def waiting(jobs, name: str) -> dict | None:
    """The job's Waiting condition while it holds."""
    found = jobs.condition(name, "Waiting")
    return found if found and found["status"] == "True" else None


def plain_pod(name: str, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": "squatter"}, "annotations": annotations or {}},
            "spec": {**KWOK_POD_SPEC, "containers": [{"name": "c", "image": "busybox"}]}}


def uids(pods) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in pods}


@pytest.fixture
def scheduling(kube):
    """PriorityClasses of the test's own (cluster-scoped), deleted afterwards."""
    from kubernetes.client import SchedulingV1Api

    api, made = SchedulingV1Api(kube), []

    class Classes:
        @staticmethod
        def priority_class(stem: str, value: int) -> str:
            name = f"{stem}-{uuid.uuid4().hex[:6]}"
            api.create_priority_class({"metadata": {"name": name}, "value": value})
            made.append(name)
            return name

    yield Classes
    for name in made:
        api.delete_priority_class(name)


def owned_by(pod, uid: str) -> bool:
    return any(ref.uid == uid and ref.controller for ref in pod.metadata.owner_references or [])


# -- 1. membership by ownership ------------------------------------------------------------------

def test_orphans_of_an_earlier_job_are_not_adopted(jobs, kube):
    jobs.create(msjob("orph", workers=1))
    old = uids(jobs.wait_pods("orph", 2))
    custom = CustomObjectsApi(kube)
    custom.delete_namespaced_custom_object(GROUP, VERSION, jobs.ns, PLURAL, "orph",
                                           body={"propagationPolicy": "Orphan"})
    wait_for(lambda: not jobs.exists("orph") and all(not p.metadata.owner_references for p in jobs.pods("orph")),
             timeout=60, message="the job gone and its pods orphaned")

    job = jobs.create(msjob("orph", workers=2))
    blocked = wait_for(lambda: waiting(jobs, "orph"), timeout=30, message="the job says why it waits",
                       describe=lambda: status(jobs, "orph"))
    assert blocked["reason"] == "PodNameTaken"
    assert "orph-worker-0" in blocked["message"] and "not owned by this MSJob" in blocked["message"]
    jobs.wait_event("orph", "PodNameTaken", "Warning")
    # The orphans are left alone, and none of them counts as a member.
    assert uids(p for p in jobs.pods("orph") if p.metadata.name in old) == old
    current = status(jobs, "orph")
    assert current["state"] == "Created" and current["replicaStatuses"]["Worker"]["active"] == 0

    # The orphaned Services are not taken over either: the job names them once the pods are gone.
    for name in old:
        jobs.core.delete_namespaced_pod(name, jobs.ns, grace_period_seconds=0)

    def name_taken() -> dict | None:
        w = waiting(jobs, "orph")
        return w if w and w["reason"] == "ServiceNameTaken" else None

    services = wait_for(name_taken, timeout=30, message="the orphaned Services named",
                        describe=lambda: status(jobs, "orph"))
    assert "Service orph-scheduler exists and is not owned by this MSJob" in services["message"]
    for svc in jobs.services("orph"):
        jobs.core.delete_namespaced_service(svc.metadata.name, jobs.ns)
    pods = jobs.wait_pods("orph", 3)
    assert all(owned_by(p, job["metadata"]["uid"]) for p in pods)
    jobs.wait_condition("orph", "Running")
    assert jobs.condition("orph", "Waiting")["status"] == "False"


def test_a_squatter_under_a_member_name_is_reported_not_adopted(jobs):
    jobs.core.create_namespaced_pod(jobs.ns, plain_pod("sq-worker-1"))
    job = jobs.create(msjob("sq", workers=2))
    blocked = wait_for(lambda: waiting(jobs, "sq"), timeout=30, message="the job says why it waits",
                       describe=lambda: status(jobs, "sq"))
    assert blocked["reason"] == "PodNameTaken" and "sq-worker-1" in blocked["message"]
    squatter = jobs.core.read_namespaced_pod("sq-worker-1", jobs.ns)
    assert not squatter.metadata.owner_references and squatter.metadata.deletion_timestamp is None
    jobs.core.delete_namespaced_pod("sq-worker-1", jobs.ns, grace_period_seconds=0)
    pods = jobs.wait_pods("sq", 3)
    assert all(owned_by(p, job["metadata"]["uid"]) for p in pods)


def test_a_pod_with_the_jobs_labels_but_no_owner_is_ignored(jobs):
    jobs.create(msjob("lab", workers=1))
    jobs.wait_condition("lab", "Running")
    labels = {**naming.replica_labels("lab", "Worker"), naming.REPLICA_INDEX_LABEL: "0", naming.ATTEMPT_LABEL: "0"}
    jobs.core.create_namespaced_pod(jobs.ns, plain_pod("lab-impostor", labels, {EXIT: "1"}))
    wait_for(lambda: jobs.core.read_namespaced_pod("lab-impostor", jobs.ns).status.phase == "Failed",
             timeout=30, message="the impostor failed")
    jobs.wait_pods("lab", 3, phase=None)  # two members and the impostor, none deleted
    current = status(jobs, "lab")
    assert current["restartCount"] == 0 and not current.get("backoffCount") and current["state"] == "Running"
    assert current["replicaStatuses"]["Worker"]["failed"] == 0


# -- 2. budgets as documented ----------------------------------------------------------------------

def restarted_uncounted(jobs, name: str, members: int) -> dict:
    jobs.wait_pods(name, members, attempt=1)
    jobs.wait_condition(name, "Running")
    current = status(jobs, name)
    assert "Failed" != current["state"], current
    assert current["restartCount"] == 1 and not current.get("backoffCount"), current
    return current


@pytest.mark.parametrize("grace", [None, 0], ids=["graceful", "forced"])
def test_deleting_a_member_by_hand_does_not_use_the_budget(jobs, grace):
    name = "del-force" if grace == 0 else "del-grace"
    jobs.create(msjob(name, workers=2, runPolicy={"backoffLimit": 0}))
    jobs.wait_condition(name, "Running")
    jobs.core.delete_namespaced_pod(f"{name}-worker-0", jobs.ns, grace_period_seconds=grace)
    current = restarted_uncounted(jobs, name, 3)
    assert current["lastFailure"]["reason"] in ("Deleted", "Lost")


def test_an_eviction_does_not_use_the_budget(jobs):
    jobs.create(msjob("evicted", workers=2, runPolicy={"backoffLimit": 0}))
    jobs.wait_condition("evicted", "Running")
    jobs.core.create_namespaced_pod_eviction("evicted-worker-1", jobs.ns, {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "evicted-worker-1", "namespace": jobs.ns}})
    restarted_uncounted(jobs, "evicted", 3)


def test_a_preemption_does_not_use_the_budget(jobs, pool, core: CoreV1Api, scheduling):
    nodes = pool(1)
    low, high = scheduling.priority_class("low", 10), scheduling.priority_class("high", 100000)
    spec = {"nodeSelector": {"kwok.msjob.test/pool": pool.name},
            "tolerations": [{"key": "kwok.msjob.test/pool", "operator": "Equal", "value": pool.name,
                             "effect": "NoSchedule"}]}
    body = msjob("preempted", workers=1, scheduler=False, runPolicy={"backoffLimit": 0})
    worker = body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]
    worker.update(spec, priorityClassName=low)
    worker["containers"][0]["resources"] = {"limits": {"huawei.com/Ascend910": "8"}}
    jobs.create(body)
    jobs.wait_condition("preempted", "Running")
    first = uids(jobs.pods("preempted"))
    # A pod of higher priority needs the node's NPUs: kube-scheduler preempts the worker.
    intruder = plain_pod("intruder")
    intruder["spec"].update(spec, priorityClassName=high)
    intruder["spec"]["containers"][0]["resources"] = {"limits": {"huawei.com/Ascend910": "8"}}
    core.create_namespaced_pod(jobs.ns, intruder)
    wait_for(lambda: status(jobs, "preempted").get("restartCount") == 1, timeout=60, message="the gang restarted",
             describe=lambda: status(jobs, "preempted"))
    current = status(jobs, "preempted")
    assert current["state"] != "Failed" and not current.get("backoffCount"), current
    assert all(p.metadata.uid not in first.values() or p.metadata.deletion_timestamp for p in jobs.pods("preempted"))
    assert nodes


# A lost node: integration/test_control_plane_chaos.py::test_deleted_node_restarts_the_gang_without_using_the_budget


# -- 3. backoff between restarts --------------------------------------------------------------------

def test_a_member_evicted_on_every_attempt_backs_off_and_stops(jobs):
    jobs.create(msjob("hotloop", workers=1, worker_annotations={EVICT: "true"},
                      runPolicy={"backoffLimit": 0}, failurePolicy={"uncountedRestartLimit": 2}))
    # The first restart is immediate, the second waits 10 s before its gang is created.
    second = wait_for(lambda: [p for p in jobs.pods("hotloop") if p.metadata.labels[naming.ATTEMPT_LABEL] == "2"],
                      timeout=60, message="the gang of attempt 2", describe=lambda: status(jobs, "hotloop"))
    restarts = [e for e in jobs.events("hotloop") if e.reason == "MemberDisrupted"]
    assert len(restarts) == 1 and restarts[0].count == 2, [(e.reason, e.count, e.message) for e in restarts]
    assert (second[0].metadata.creation_timestamp - restarts[0].last_timestamp).total_seconds() >= 9
    failed = jobs.wait_condition("hotloop", "Failed", timeout=60)
    assert failed["reason"] == "UncountedRestartLimitExceeded"
    assert "failurePolicy.uncountedRestartLimit=2" in failed["message"]
    current = status(jobs, "hotloop")
    assert current["restartCount"] == 2 and not current.get("backoffCount")


# -- 4. every refusal visible ------------------------------------------------------------------------

def test_a_quota_refusal_shows_in_status_and_fails_at_the_startup_deadline(jobs):
    jobs.core.create_namespaced_resource_quota(jobs.ns, {"metadata": {"name": "three"},
                                                         "spec": {"hard": {"pods": "3"}}})
    jobs.create(msjob("quota", workers=4, failurePolicy={"startupDeadlineSeconds": 15}))
    blocked = wait_for(lambda: waiting(jobs, "quota"), timeout=30, message="the refusal in the status",
                       describe=lambda: status(jobs, "quota"))
    assert blocked["reason"] == "PodCreateRefused" and "exceeded quota" in blocked["message"]
    failed = jobs.wait_condition("quota", "Failed", timeout=60)
    assert failed["reason"] == "StartupDeadlineExceeded" and "exceeded quota" in failed["message"]
    # The partial gang is not left holding resources, and the refusal was reported once.
    wait_for(lambda: not jobs.pods("quota"), timeout=60, message="the partial gang deleted")
    refused = [e for e in jobs.events("quota") if e.reason == "PodCreateRefused"]
    assert len(refused) == 1, [(e.reason, e.message) for e in refused]


def test_a_missing_priority_class_shows_in_status(jobs):
    body = msjob("noprio", workers=1)
    body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["priorityClassName"] = "does-not-exist"
    jobs.create(body)
    blocked = wait_for(lambda: waiting(jobs, "noprio"), timeout=30, message="the refusal in the status",
                       describe=lambda: status(jobs, "noprio"))
    assert blocked["reason"] == "PodCreateRefused" and "does-not-exist" in blocked["message"]
    assert "Worker" in blocked["message"]


# -- 6. stable scheduler address --------------------------------------------------------------------

def test_a_deleted_scheduler_service_comes_back_with_the_same_address(jobs):
    jobs.create(msjob("addr", workers=2))
    jobs.wait_condition("addr", "Running")
    before = uids(jobs.pods("addr"))
    ip = jobs.core.read_namespaced_service("addr-scheduler", jobs.ns).spec.cluster_ip
    assert status(jobs, "addr")["schedulerAddress"] == ip
    jobs.core.delete_namespaced_service("addr-scheduler", jobs.ns)
    back = wait_for(lambda: jobs.core.read_namespaced_service("addr-scheduler", jobs.ns), timeout=30,
                    message="the Service recreated")
    assert back.spec.cluster_ip == ip
    assert uids(jobs.pods("addr")) == before and status(jobs, "addr")["restartCount"] == 0


def test_a_scheduler_address_taken_by_another_service_restarts_the_gang(jobs, running_operator):
    jobs.create(msjob("taken", workers=2, runPolicy={"backoffLimit": 0}))
    jobs.wait_condition("taken", "Running")
    ip = jobs.core.read_namespaced_service("taken-scheduler", jobs.ns).spec.cluster_ip
    running_operator.kill()
    try:
        jobs.core.delete_namespaced_service("taken-scheduler", jobs.ns)
        wait_for(lambda: ip not in [s.spec.cluster_ip for s in jobs.core.list_namespaced_service(jobs.ns).items],
                 timeout=30, message="the address released")
        jobs.core.create_namespaced_service(jobs.ns, {"metadata": {"name": "thief"}, "spec": {
            "clusterIP": ip, "ports": [{"port": 80}], "selector": {"app": "none"}}})
    finally:
        running_operator.start()
    current = restarted_uncounted(jobs, "taken", 3)
    new_ip = jobs.core.read_namespaced_service("taken-scheduler", jobs.ns).spec.cluster_ip
    assert new_ip != ip and current["schedulerAddress"] == new_ip
    for pod in jobs.pods("taken", include_terminating=False):
        env = {e.name: e.value for e in pod.spec.containers[0].env}
        if pod.metadata.labels[naming.REPLICA_TYPE_LABEL] != "scheduler":
            assert env["MS_SCHED_HOST"] == new_ip


# -- 7. no stuck restart ------------------------------------------------------------------------------

def unlabel(jobs, pod: str) -> None:
    jobs.core.patch_namespaced_pod(pod, jobs.ns, [{"op": "remove", "path": "/metadata/labels/"
                                                   + naming.OPERATOR_NAME_LABEL.replace("/", "~1")}])


@pytest.mark.parametrize("operator_down", [False, True], ids=["operator-up", "operator-down"])
def test_a_member_without_the_operators_labels_is_still_handled(jobs, running_operator, operator_down):
    name = "strip-down" if operator_down else "strip-up"
    jobs.create(msjob(name, workers=2))
    jobs.wait_condition(name, "Running")
    stripped = jobs.core.read_namespaced_pod(f"{name}-worker-1", jobs.ns).metadata.uid
    if operator_down:
        running_operator.kill()
    try:
        unlabel(jobs, f"{name}-worker-1")
    finally:
        if operator_down:
            running_operator.start()
    # Still a member (its ownerReference says so): the gang goes on, and a restart takes it along.
    assert status(jobs, name)["state"] == "Running"
    jobs.annotate_pod(f"{name}-worker-0", {EXIT: "1"})
    pods = jobs.wait_pods(name, 3, attempt=1)
    assert stripped not in {p.metadata.uid for p in pods}
    wait_for(lambda: not any(p.metadata.uid == stripped for p in jobs.core.list_namespaced_pod(jobs.ns).items),
             timeout=60, message="the stripped member deleted")
    jobs.wait_condition(name, "Running")
    current = status(jobs, name)
    assert current["restartCount"] == 1 and jobs.condition(name, "Restarting")["reason"] == "MSJobRestarted"


# -- 8. admission, and RESTARTS counting every restart -------------------------------------------------

def test_restarts_column_counts_replica_restarts(jobs):
    jobs.create(msjob("rr", workers=2,
                      failurePolicy={"rules": [{"action": "RestartReplica", "replicaTypes": ["Worker"]}]}))
    jobs.wait_condition("rr", "Running")
    jobs.annotate_pod("rr-worker-1", {EXIT: "1"})
    wait_for(lambda: status(jobs, "rr").get("restartCount") == 1, timeout=30, message="the restart counted",
             describe=lambda: status(jobs, "rr"))
    assert status(jobs, "rr")["replicaStatuses"]["Worker"]["restarts"] == 1
