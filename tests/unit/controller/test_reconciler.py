"""The Controller's own decisions, with the plan stubbed: per-job retries, and members the watch dropped."""

import asyncio
import copy

import pytest

from msjob_operator.api import naming
from msjob_operator.config import Config
from msjob_operator.controller import queue as queue_module
from msjob_operator.controller import reconciler as reconciler_module
from msjob_operator.controller.reconciler import Controller
from msjob_operator.reconcile.context import Plan

from ..jobs import job, pod
from .fakekube import FakeKube, event, settle, until

PODS = "/api/v1/namespaces/ns/pods"
JOBS = "/apis/mindspore.gitee.com/v1/namespaces/ns/msjobs"


class Passes:
    """Stands in for the pure reconcile: records what each pass saw and plans a fixed status."""

    def __init__(self, kube: FakeKube, status=None):
        self.kube = kube
        self.status = status
        self.seen: list[tuple[str, list[str], int]] = []  # (job, pod uids, requests made before the pass)

    def __call__(self, the_job, pods, services, now, settings, podgroups, refusals=None, holders=None, configmaps=None,
                 kueue=None, leases=None):
        self.seen.append((the_job["metadata"]["name"], [p["metadata"]["uid"] for p in pods], len(self.kube.calls)))
        return Plan(status=copy.deepcopy(self.status if self.status is not None else the_job.get("status") or {}))

    def of(self, name: str) -> list[list[str]]:
        return [uids for job_name, uids, _ in self.seen if job_name == name]


def controller(kube: FakeKube, monkeypatch, status=None) -> tuple[Controller, Passes]:
    passes = Passes(kube, status)
    monkeypatch.setattr(reconciler_module, "reconcile", passes)
    ctl = Controller(kube, Config(namespaces=("ns",), workers=2))
    kube.answer("GET", ctl.applier.podgroup_base, (200, {"kind": "APIResourceList"}))
    return ctl, passes


def named(name: str, uid: str = "") -> dict:
    the_job = job(name)
    the_job["metadata"].update(uid=uid or f"{name}-uid", resourceVersion="5")
    return the_job


def run(ctl: Controller, scenario) -> None:
    async def main():
        await ctl.start()
        try:
            await scenario()
        finally:
            await ctl.stop()
    asyncio.run(main())


def test_a_failing_job_backs_off_alone(monkeypatch):
    monkeypatch.setattr(queue_module, "RETRY_BASE_SECONDS", 0.001)
    kube = FakeKube()
    ctl, passes = controller(kube, monkeypatch, status={"phase": "Running"})
    kube.route(f"{JOBS}/failing/status", lambda call: (500, {"reason": "InternalError"}))
    kube.route(f"{JOBS}/healthy/status", lambda call: (200, {**named("healthy"), "status": call.body["status"]}))
    retries: list[tuple[tuple, float]] = []
    retry = ctl.queue.retry
    monkeypatch.setattr(ctl.queue, "retry", lambda key: retries.append((key, retry(key))) or retries[-1][1])

    async def scenario():
        ctl.job_event("ADDED", named("failing"))
        ctl.job_event("ADDED", named("healthy"))
        await until(lambda: len(retries) >= 5, steps=100000)
    run(ctl, scenario)
    assert {key for key, _ in retries} == {("ns", "failing")}
    assert [delay for _, delay in retries[:5]] == [0.001, 0.002, 0.004, 0.008, 0.016]
    assert len(passes.of("healthy")) == 1 and len(kube.requests("PATCH", f"{JOBS}/healthy/status")) == 1
    assert len(passes.of("failing")) >= 5


def test_a_status_conflict_plans_again_at_once_without_backoff(monkeypatch):
    kube = FakeKube()
    ctl, passes = controller(kube, monkeypatch, status={"phase": "Running"})
    fresh = {**named("demo"), "metadata": {**named("demo")["metadata"], "resourceVersion": "6"}}
    kube.answer("PATCH", f"{JOBS}/demo/status", (409, {"reason": "Conflict"}),
                lambda call: (200, {**fresh, "metadata": {**fresh["metadata"], "resourceVersion": "7"},
                                    "status": call.body["status"]}))
    kube.answer("GET", f"{JOBS}/demo", (200, fresh))
    retries: list = []
    monkeypatch.setattr(ctl.queue, "retry", retries.append)

    async def scenario():
        ctl.job_event("ADDED", named("demo"))
        await until(lambda: len(kube.requests("PATCH")) == 2, steps=100000)
        await settle()
    run(ctl, scenario)
    assert retries == [] and len(passes.of("demo")) == 2
    second = kube.requests("PATCH")[1]
    assert second.body["metadata"] == {"resourceVersion": "6"}  # planned again from the job re-read


def unlabelled(member: dict) -> dict:
    member = copy.deepcopy(member)
    del member["metadata"]["labels"][naming.OPERATOR_NAME_LABEL]
    return member


@pytest.mark.parametrize("answer, stray, seen", [
    ("unselected", True, ["m-uid"]),  # its labels were changed: still the job's member
    ("gone", False, []),  # deleted at once (a forced delete)
    ("recreated", False, []),  # another incarnation under the name
    ("selected", False, ["m-uid"]),  # labelled again: the watch shows it again and the cache has it
])
def test_a_pod_dropped_by_the_watch_is_read_and_kept_only_if_it_still_exists_unselected(monkeypatch, answer, stray,
                                                                                        seen):
    kube = FakeKube()
    ctl, passes = controller(kube, monkeypatch)
    member = pod(uid="m-uid")
    member["metadata"]["resourceVersion"] = "3"
    name = member["metadata"]["name"]
    world = {"unselected": unlabelled(member), "gone": None, "selected": member,
             "recreated": unlabelled({**member, "metadata": {**member["metadata"], "uid": "other"}})}[answer]
    kube.on_list(PODS, ([member], "3"), selector=naming.CHILD_SELECTOR)
    events = [event("DELETED", unlabelled(member), 4)] + ([event("ADDED", member, 5)] if answer == "selected" else [])
    kube.on_watch(PODS, events)
    kube.route(f"{PODS}/{name}", lambda call: (404, {"reason": "NotFound"}) if world is None else (200, world))

    async def scenario():
        ctl.job_event("ADDED", named("demo", uid="job-uid"))  # the owner of pod()
        await until(lambda: kube.requests("GET", f"{PODS}/{name}"), steps=100000)
        read_at = kube.calls.index(kube.requests("GET", f"{PODS}/{name}")[0])
        await until(lambda: any(at > read_at for _, _, at in passes.seen), steps=100000)  # a pass after the read
        await settle()
    run(ctl, scenario)
    assert passes.of("demo")[-1] == seen
    assert len(ctl.strays) == (1 if stray else 0)
    reads = len(kube.requests("GET", f"{PODS}/{name}"))
    assert reads > 1 if stray else reads == 1  # a stray is read again before each pass; the others never


def test_members_unlabelled_while_no_operator_watched_are_found_at_start(monkeypatch):
    kube = FakeKube()
    ctl, passes = controller(kube, monkeypatch)
    member = unlabelled(pod(uid="m-uid"))
    stranger = unlabelled(pod("other", uid="s-uid", owner=False))  # no MSJob owns it: not a member
    kube.on_list(PODS, ([member, stranger], "3"), selector=f"{naming.OPERATOR_NAME_LABEL}!={naming.OPERATOR_NAME}")
    kube.route(f"{PODS}/{member['metadata']['name']}", lambda call: (200, member))

    async def scenario():
        ctl.job_event("ADDED", named("demo", uid="job-uid"))  # the owner of pod()
        await until(lambda: passes.seen, steps=100000)
        await settle()
    run(ctl, scenario)
    assert ctl.synced
    assert passes.of("demo")[0] == ["m-uid"]  # the first pass already knows it (read again before the pass)
    assert kube.requests("GET", f"{PODS}/{member['metadata']['name']}")


def test_a_pass_that_continues_is_followed_by_its_next_pass_before_other_jobs_and_keeps_its_requeue(monkeypatch):
    kube = FakeKube()
    ctl, passes = controller(kube, monkeypatch, status={"phase": "Running"})
    ctl.workers = 1  # one pass at a time: the order of passes is the queue's order
    plan_of = passes.__call__

    def planned(the_job, *args, **kwargs):
        plan = plan_of(the_job, *args, **kwargs)
        if the_job["metadata"]["name"] == "first" and len(passes.of("first")) == 1:
            plan.continues = True  # its pods wait for what this pass creates
            plan.requeue(0.01)  # and it asked for a later look of its own
        return plan
    monkeypatch.setattr(reconciler_module, "reconcile", planned)
    for name in ("first", "second", "third"):
        kube.route(f"{JOBS}/{name}/status", lambda call, n=name: (200, {**named(n), "status": call.body["status"]}))

    async def scenario():
        for name in ("first", "second", "third"):
            ctl.job_event("ADDED", named(name))
        await until(lambda: len(passes.of("first")) >= 3, steps=100000)
    run(ctl, scenario)
    order = [name for name, _, _ in passes.seen]
    assert order[:3] == ["first", "first", "second"], order  # before the jobs already waiting
    assert len(passes.of("first")) >= 3  # the requeue it asked for came too
