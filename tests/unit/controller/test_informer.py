"""The list-then-watch informer against a scripted API: what it keeps, whom it notifies, how it recovers."""

import asyncio

from msjob_operator.controller import informer as informer_module
from msjob_operator.controller.informer import Informer, selected
from msjob_operator.controller.kube import KubeError
from msjob_operator.controller.store import ChildStore

from ..jobs import pod
from .fakekube import FakeClock, FakeKube, event, expired, until

SELECTOR = "app=msjob"
NS_A = "/api/v1/namespaces/a/pods"
NS_B = "/api/v1/namespaces/b/pods"


def member(job: str, index: int = 0, namespace: str = "ns", rv: int = 1, **kw) -> dict:
    obj = pod(job, "Worker", index, **kw)
    obj["metadata"].update(namespace=namespace, resourceVersion=str(rv))
    obj["metadata"]["uid"] = f"{namespace}-{obj['metadata']['uid']}"
    return obj


class Harness:
    def __init__(self, kube: FakeKube, paths=(NS_A,)):
        self.store = ChildStore()
        self.notified: list = []
        self.unselected: list = []
        self.informer = Informer(kube, paths, SELECTOR, self.store, self.notified.append, "pods",
                                 on_unselected=self.unselected.append)

    def names(self, key) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.store.for_job(key))


def run_until(kube: FakeKube, harness: Harness, condition) -> None:
    async def scenario():
        task = asyncio.create_task(harness.informer.run())
        try:
            await until(condition)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    asyncio.run(scenario())


def test_the_first_list_fills_the_store_notifies_every_job_and_syncs():
    kube = FakeKube()
    kube.on_list(NS_A, ([member("x", 0, "a"), member("x", 1, "a"), member("y", 0, "a")], "10"))
    h = Harness(kube)
    run_until(kube, h, lambda: kube.parked[NS_A])
    assert h.informer.synced.is_set()
    assert h.names(("a", "x")) == ["x-worker-0", "x-worker-1"] and h.names(("a", "y")) == ["y-worker-0"]
    assert sorted(set(h.notified)) == [("a", "x"), ("a", "y")]
    assert kube.list_calls == [(NS_A, SELECTOR)]
    assert kube.watch_calls == [(NS_A, "10")]  # the watch starts where the list was taken


def test_watch_events_upsert_and_remove_and_the_next_watch_resumes_where_the_last_ended():
    kube = FakeKube()
    first = member("x", 0, "a")
    kube.on_list(NS_A, ([first], "10"))
    second = member("x", 1, "a")
    kube.on_watch(NS_A, [
        event("ADDED", second, 11),
        event("MODIFIED", {**first, "status": {"phase": "Failed"}}, 12),
        event("DELETED", {**second, "metadata": {**second["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}},
              13),
        {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "15"}}},
    ], [event("ADDED", member("y", 0, "a"), 16)])
    h = Harness(kube)
    run_until(kube, h, lambda: kube.parked[NS_A])
    assert h.names(("a", "x")) == ["x-worker-0"] and h.store.for_job(("a", "x"))[0]["status"] == {"phase": "Failed"}
    assert h.names(("a", "y")) == ["y-worker-0"]
    # The stream ended twice; each new watch starts at the last resourceVersion seen, a bookmark's included.
    assert kube.watch_calls == [(NS_A, "10"), (NS_A, "15"), (NS_A, "16")]
    assert len(kube.list_calls) == 1  # an ended stream is no reason to list again
    assert h.notified == [("a", "x")] * 4 + [("a", "y")]  # the list, three events; the bookmark notifies no one
    assert h.unselected == []  # deleted with a deletionTimestamp: an ordinary deletion


def test_gone_410_lists_again_and_the_new_list_replaces_the_store():
    kube = FakeKube()
    kept, gone = member("x", 0, "a"), member("y", 0, "a")
    kube.on_list(NS_A, ([kept, gone], "10"), ([kept, member("z", 0, "a", rv=30)], "30"))
    kube.on_watch(NS_A, [expired()])
    h = Harness(kube)
    run_until(kube, h, lambda: kube.parked[NS_A])
    assert len(kube.list_calls) == 2 and kube.watch_calls[-1] == (NS_A, "30")
    assert h.names(("a", "x")) == ["x-worker-0"] and h.names(("a", "z")) == ["z-worker-0"]
    assert h.store.for_job(("a", "y")) == []  # deleted while the watch was down
    assert ("a", "y") in h.notified[2:]  # ...and its job hears about it
    assert h.unselected == []


def test_a_failing_watch_backs_off_doubling_and_recovers(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(informer_module, "asyncio", clock.asyncio())
    kube = FakeKube()
    kube.on_list(NS_A, ([member("x", 0, "a")], "10"), KubeError(503, "unavailable", "list"),
                 ([member("x", 0, "a"), member("x", 1, "a")], "20"), ([member("x", 1, "a")], "30"))
    kube.on_watch(NS_A, KubeError(500, "boom", "watch"),
                  [{"type": "ERROR", "object": {"code": 500, "message": "internal"}}])
    h = Harness(kube)
    run_until(kube, h, lambda: kube.parked[NS_A])
    # The watch fails, the list fails (0.5, 1.0); the next list succeeds, so the next failure (an ERROR
    # event) waits 0.5 again.
    assert clock.slept == [0.5, 1.0, 0.5]
    assert len(kube.list_calls) == 4
    assert h.names(("a", "x")) == ["x-worker-1"]  # recovered: the last list is the truth


def test_a_relist_of_one_namespace_keeps_the_other_namespaces_children():
    kube = FakeKube()
    a0, a1, b0 = member("x", 0, "a"), member("x", 1, "a"), member("y", 0, "b")
    kube.on_list(NS_A, ([a0, a1], "10"), ([a0], "40"))
    kube.on_list(NS_B, ([b0], "11"))
    kube.on_watch(NS_B, [event("ADDED", member("y", 1, "b"), 12)])
    kube.on_watch(NS_A, [expired()])
    h = Harness(kube, paths=(NS_A, NS_B))
    run_until(kube, h, lambda: kube.parked[NS_A] and kube.parked[NS_B])
    assert len([c for c in kube.list_calls if c[0] == NS_A]) == 2
    assert h.names(("b", "y")) == ["y-worker-0", "y-worker-1"]
    # The pods that still exist stay cached after the relist (they were not deleted: no tombstone).
    assert h.names(("a", "x")) == ["x-worker-0"]
    assert h.store.count() == 3


def test_synced_only_after_every_path_listed(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(informer_module, "asyncio", clock.asyncio())
    kube = FakeKube()
    kube.on_list(NS_A, ([member("x", 0, "a")], "10"))
    kube.on_list(NS_B, KubeError(503, "unavailable", "list"), KubeError(503, "unavailable", "list"), ([], "5"))
    h = Harness(kube, paths=(NS_A, NS_B))
    seen_before_b: list[bool] = []

    def b_listed() -> bool:
        if len([c for c in kube.list_calls if c[0] == NS_B]) < 3:
            seen_before_b.append(h.informer.synced.is_set())
            return False
        return kube.parked[NS_B] > 0

    run_until(kube, h, b_listed)
    assert kube.parked[NS_A] and not any(seen_before_b)  # a listed and watching, yet not synced
    assert h.informer.synced.is_set()


def test_deleted_without_a_deletion_timestamp_asks_whether_it_is_only_unselected():
    kube = FakeKube()
    forced = member("x", 0, "a")
    graceful = member("x", 1, "a", deleting=True)
    kube.on_list(NS_A, ([forced, graceful], "10"))
    kube.on_watch(NS_A, [event("DELETED", forced, 11), event("DELETED", graceful, 12)])
    h = Harness(kube)
    run_until(kube, h, lambda: kube.parked[NS_A])
    assert [o["metadata"]["name"] for o in h.unselected] == ["x-worker-0"]
    assert h.store.for_job(("a", "x")) == []


def test_selected_matches_every_equality_term():
    obj = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    assert selected(obj, "a=1,b=2") and selected(obj, "")
    assert not selected(obj, "a=1,b=3") and not selected({"metadata": {}}, "a=1")


def test_a_member_whose_labels_come_back_is_cached_again():
    kube = FakeKube()
    relabelled = member("x", 0, "a", rv=10)
    kube.on_list(NS_A, ([relabelled], "10"))
    # Its labels removed (the watch says DELETED, showing it as it was), then put back (ADDED, same UID).
    kube.on_watch(NS_A, [event("DELETED", relabelled, 11), event("ADDED", relabelled, 12)])
    h = Harness(kube)
    run_until(kube, h, lambda: kube.parked[NS_A])
    assert [o["metadata"]["uid"] for o in h.store.for_job(("a", "x"))] == [relabelled["metadata"]["uid"]]
