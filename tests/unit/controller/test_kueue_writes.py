"""How the controller writes to Kueue Workloads (what the API server answers is scripted; the real Kueue
accepting these writes is proven in tests/integration/test_kueue.py), and the Kueue caches."""

import asyncio
import copy
import logging

import pytest

from msjob_operator.api import naming
from msjob_operator.builders import workload as wl
from msjob_operator.config import Config
from msjob_operator.controller import kueue
from msjob_operator.controller.apply import Applier, StatusConflict
from msjob_operator.controller.events import EventRecorder
from msjob_operator.controller.observations import ObjectsByJob, Refusals
from msjob_operator.controller.store import ChildStore, JobStore
from msjob_operator.reconcile.context import Plan

from ..jobs import job, owned
from .fakekube import FakeKube, event, until

KEY = ("ns", "demo")
STATUS = "/apis/mindspore.gitee.com/v1/namespaces/ns/msjobs/demo/status"
WORKLOADS = "/apis/kueue.x-k8s.io/v1beta2/namespaces/ns/workloads"
LOG = logging.LoggerAdapter(logging.getLogger("test"), {})


def workload(name: str = "msjob-demo-abcde", rv: str = "5") -> dict:
    return {"apiVersion": wl.KUEUE_API_VERSION, "kind": "Workload",
            "metadata": {"name": name, "namespace": "ns", "uid": "wl-uid", "resourceVersion": rv,
                         "labels": naming.job_labels("demo"), "ownerReferences": owned()},
            "spec": {"queueName": "jobs"}, "status": {"conditions": []}}


def setup():
    kube = FakeKube()
    store = ChildStore()
    applier = Applier(kube, JobStore(), ChildStore(), ChildStore(), ChildStore(), Refusals(), ObjectsByJob(),
                      EventRecorder(kube), Config(kueue=True), kueue_workloads=store)
    the_job = job()
    the_job["metadata"]["resourceVersion"] = "7"
    return kube, applier, store, the_job


def apply(applier, the_job, plan):
    return asyncio.run(applier.apply(KEY, the_job, plan, LOG))


def test_finished_is_server_side_applied_to_the_status_by_the_operators_field_manager():
    kube, applier, store, the_job = setup()
    change = wl.finish("msjob-demo-abcde", True, "MSJob demo succeeded", "2026-11-22T12:00:00Z")
    done = workload(rv="9")
    done["status"]["conditions"] = change.body["status"]["conditions"]
    kube.answer("PATCH", f"{WORKLOADS}/msjob-demo-abcde/status", (200, done))
    apply(applier, the_job, Plan(status={}, workload_writes=[change]))
    (call,) = kube.requests("PATCH")
    assert call.content_type == "application/apply-patch+yaml"
    assert call.query == {"fieldManager": "msjob-operator", "force": True}
    assert call.body["status"]["conditions"][0]["type"] == "Finished"
    assert store.for_job(KEY)[0]["metadata"]["resourceVersion"] == "9"  # our write's answer is cached


def test_giving_the_quota_back_is_conditional_and_a_conflict_plans_again():
    kube, applier, store, the_job = setup()
    evicted = workload()
    change = wl.release(evicted, {"reason": "Preempted", "message": "preempted"}, "2026-11-22T12:00:00Z")
    fresh = workload(rv="6")
    kube.answer("PATCH", f"{WORKLOADS}/msjob-demo-abcde/status", (409, {"reason": "Conflict"}))
    kube.answer("GET", f"{WORKLOADS}/msjob-demo-abcde", (200, fresh))
    with pytest.raises(StatusConflict):
        apply(applier, the_job, Plan(status={}, workload_writes=[change]))
    patch = kube.requests("PATCH")[0]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body["metadata"] == {"resourceVersion": "5"} and patch.body["status"]["admission"] is None
    assert store.for_job(KEY)[0]["metadata"]["resourceVersion"] == "6"  # the next pass plans from the new one


def test_a_refused_workload_create_is_recorded_and_cleared_by_already_exists():
    kube, applier, store, the_job = setup()
    body = wl.build_workload(the_job, queue="jobs", pod_sets=[])
    name = body["metadata"]["name"]
    kube.answer("POST", WORKLOADS, (422, {"kind": "Status", "reason": "Invalid", "message": "podSets: Required value"}))
    apply(applier, the_job, Plan(status={}, create_workloads=[body]))
    refusal = applier.refusals.for_job(KEY)[("Workload", name)]
    assert refusal.code == 422 and "podSets" in refusal.message
    kube.answer("POST", WORKLOADS, (409, {"reason": "AlreadyExists"}))  # ours: the name carries the job's UID
    apply(applier, the_job, Plan(status={}, create_workloads=[body]))
    assert ("Workload", name) not in applier.refusals.for_job(KEY)


def test_a_delete_names_the_incarnation():
    kube, applier, _, the_job = setup()
    kube.answer("DELETE", f"{WORKLOADS}/msjob-demo-abcde", (200, {}))
    apply(applier, the_job, Plan(status={}, workload_writes=[wl.delete(workload())]))
    (call,) = kube.requests("DELETE")
    assert call.body["preconditions"] == {"uid": "wl-uid"}


def test_the_caches_feed_the_reconcile_by_job_and_by_name():
    kube = FakeKube()
    woken: list = []
    sources = kueue.KueueSources(kube, ["ns"], woken.append)
    flavor = {"metadata": {"name": "npu", "resourceVersion": "1"}, "spec": {"nodeLabels": {"pool": "a"}}}
    queue = {"metadata": {"name": "jobs", "namespace": "ns", "resourceVersion": "1"}, "spec": {"clusterQueue": "cq"}}
    kube.on_list(kueue.path("resourceflavors"), ([flavor], "1"))
    kube.on_list(kueue.path("localqueues", "ns"), ([queue], "1"))
    kube.on_list(WORKLOADS, ([workload()], "1"))
    kube.on_watch(WORKLOADS, [event("MODIFIED", workload(rv="8"))])

    async def run():
        tasks = [asyncio.create_task(i.run()) for i in sources.informers]
        await until(lambda: all(i.synced.is_set() for i in sources.informers) and
                    sources.workloads.for_job(KEY)[0]["metadata"]["resourceVersion"] == "8")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    seen = sources.observed(KEY)
    assert [w["metadata"]["name"] for w in seen.workloads] == ["msjob-demo-abcde"]
    assert seen.flavors["npu"]["spec"] == {"nodeLabels": {"pool": "a"}}
    assert seen.local_queues == {"jobs": copy.deepcopy(queue)}
    assert KEY in woken  # a Workload event reconciles its job
    assert sources.observed(("other", "x")).local_queues == {}
