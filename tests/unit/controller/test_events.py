"""Event aggregation: one Event per (job, type, reason) series, its count patched while the series lasts."""

import asyncio
import itertools

import pytest

from msjob_operator.controller import events as events_module
from msjob_operator.controller.events import SERIES_SECONDS, EventRecorder
from msjob_operator.controller.kube import KubeError

from ..jobs import job
from .fakekube import FakeClock, FakeKube, until

EVENTS = "/api/v1/namespaces/ns/events"


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(events_module, "time", clock)
    return clock


def setup():
    kube = FakeKube()
    names = (f"demo.{i}" for i in itertools.count())
    kube.route(EVENTS, lambda call: (201, {**call.body, "metadata": {"name": next(names)}}) if call.method == "POST"
               else (200, {}))
    return kube, EventRecorder(kube)


def post(recorder: EventRecorder, *events, of=None) -> None:
    """Post the events one after the other (each waits for the last, as passes of one job do)."""
    async def scenario():
        for etype, reason, message in events:
            recorder.post(of or job(), etype, reason, message)
            await until(lambda: not recorder._tasks)
    asyncio.run(scenario())


def test_the_first_event_is_created_and_a_repeat_patches_it(clock):
    kube, recorder = setup()
    post(recorder, ("Warning", "Restarting", "worker 1 failed"))
    (create,) = kube.calls
    assert create.method == "POST" and create.path == EVENTS
    body = create.body
    assert body["metadata"]["generateName"] == "demo." and body["count"] == 1
    assert body["involvedObject"]["uid"] == "job-uid" and body["involvedObject"]["kind"] == "MSJob"
    assert (body["type"], body["reason"], body["message"]) == ("Warning", "Restarting", "worker 1 failed")

    clock.now += 5
    post(recorder, ("Warning", "Restarting", "worker 0 failed"), ("Warning", "Restarting", "worker 3 failed"))
    patches = kube.requests("PATCH")
    assert [c.path for c in patches] == [f"{EVENTS}/demo.0"] * 2
    assert [c.body["count"] for c in patches] == [2, 3]
    assert patches[-1].body["message"] == "worker 3 failed" and patches[-1].body["lastTimestamp"]
    assert patches[-1].content_type == "application/merge-patch+json"
    assert len(kube.requests("POST")) == 1


def test_another_reason_type_or_job_is_another_series(clock):
    kube, recorder = setup()
    other = job("other")
    other["metadata"]["uid"] = "other-uid"
    post(recorder, ("Warning", "Restarting", "a"), ("Normal", "Restarting", "b"), ("Warning", "Failed", "c"))
    post(recorder, ("Warning", "Restarting", "d"), of=other)
    assert len(kube.requests("POST")) == 4 and not kube.requests("PATCH")


def test_a_repeat_after_the_series_window_is_a_new_event(clock):
    kube, recorder = setup()
    post(recorder, ("Warning", "Restarting", "a"))
    clock.now += SERIES_SECONDS - 1
    post(recorder, ("Warning", "Restarting", "b"))  # within the window, and the window moves with it
    clock.now += SERIES_SECONDS - 1
    post(recorder, ("Warning", "Restarting", "c"))
    assert len(kube.requests("POST")) == 1 and len(kube.requests("PATCH")) == 2
    clock.now += SERIES_SECONDS + 1
    post(recorder, ("Warning", "Restarting", "d"))
    assert len(kube.requests("POST")) == 2 and kube.calls[-1].body["count"] == 1


def test_a_patch_of_an_event_gone_creates_a_new_one(clock):
    kube, recorder = setup()
    post(recorder, ("Warning", "Restarting", "a"))
    kube.answer("PATCH", f"{EVENTS}/demo.0", (404, {"reason": "NotFound"}))  # expired on the server
    post(recorder, ("Warning", "Restarting", "b"))
    assert [c.method for c in kube.calls] == ["POST", "PATCH", "POST"] and kube.calls[-1].body["count"] == 1
    post(recorder, ("Warning", "Restarting", "c"))
    assert kube.calls[-1].path == f"{EVENTS}/demo.1" and kube.calls[-1].body["count"] == 2


def test_a_failed_post_is_dropped_and_the_next_one_creates(clock):
    kube, recorder = setup()
    kube.answer("POST", EVENTS, KubeError(500, "boom", "POST"))
    post(recorder, ("Warning", "Restarting", "a"), ("Warning", "Restarting", "b"))  # no error reaches the caller
    assert [c.method for c in kube.calls] == ["POST", "POST"]


def test_concurrent_posts_of_one_series_are_one_create_then_patches(clock):
    kube, recorder = setup()

    async def scenario():
        for message in ("a", "b", "c"):
            recorder.post(job(), "Warning", "Restarting", message)
        await until(lambda: not recorder._tasks)
    asyncio.run(scenario())
    assert [c.method for c in kube.calls] == ["POST", "PATCH", "PATCH"]
    assert [c.body["count"] for c in kube.calls] == [1, 2, 3]


def test_forget_ends_the_jobs_series(clock):
    kube, recorder = setup()
    post(recorder, ("Warning", "Restarting", "a"))
    recorder.forget("job-uid")
    post(recorder, ("Warning", "Restarting", "b"))
    assert [c.method for c in kube.calls] == ["POST", "POST"]
