"""Kube's own logic under a fake transport: bounded concurrency, status handling, bodies, merge patches."""

import asyncio
import json

import pytest

from msjob_operator.controller.kube import Kube, KubeError, merge_patch

from .fakekube import until


class Response:
    def __init__(self, status: int, data=None, lines=()):
        self.status = status
        self._raw = b"" if data is None else json.dumps(data).encode()
        self._lines = list(lines)
        self.released = False

    async def read(self) -> bytes:
        return self._raw

    def release(self) -> None:
        self.released = True

    @property
    def content(self):
        async def lines():
            for line in self._lines:
                yield line
        return lines()


class ApiClient:
    """What Kube uses of kubernetes_asyncio's ApiClient: call_api. Holds calls at a gate when asked."""

    def __init__(self, answer=lambda path, method, body: Response(200, {})):
        self.answer = answer
        self.calls: list[dict] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate: asyncio.Event | None = None

    async def call_api(self, path, method, **kwargs):
        self.calls.append({"path": path, "method": method, **kwargs})
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            return self.answer(path, method, kwargs.get("body"))
        finally:
            self.in_flight -= 1


def test_at_most_max_in_flight_requests_at_once():
    async def scenario():
        api = ApiClient()
        api.gate = asyncio.Event()
        kube = Kube(api, max_in_flight=3)
        requests = [asyncio.create_task(kube.request("GET", f"/api/v1/namespaces/ns/pods/p{i}")) for i in range(10)]
        await until(lambda: api.in_flight == 3)
        for _ in range(50):
            await asyncio.sleep(0)
        assert api.in_flight == 3 and len(api.calls) == 3  # the other seven wait for a slot
        api.gate.set()
        results = await asyncio.gather(*requests)
        assert len(api.calls) == 10 and api.most_in_flight == 3
        assert all(status == 200 for status, _ in results)
    asyncio.run(scenario())


def test_a_failed_request_frees_its_slot():
    async def scenario():
        kube = Kube(ApiClient(lambda path, method, body: Response(500, {"message": "boom"})), max_in_flight=1)
        for _ in range(3):  # with a leaked slot the second would wait forever
            with pytest.raises(KubeError):
                await asyncio.wait_for(kube.request("GET", "/api/v1/pods"), 5)
    asyncio.run(scenario())


def test_statuses_queries_and_errors():
    answers = {"/api/v1/namespaces/ns/pods/missing": Response(404, {"reason": "NotFound"}),
               "/api/v1/namespaces/ns/pods/bad": Response(422, {"reason": "Invalid", "message": "spec is invalid"}),
               "/api/v1/namespaces/ns/pods/ok": Response(200, {"kind": "Pod"})}
    api = ApiClient(lambda path, method, body: answers[path])
    kube = Kube(api)

    async def scenario():
        assert await kube.get("pods", "ns", "missing") is None  # 404 is an answer, not an error
        assert await kube.get("pods", "ns", "ok") == {"kind": "Pod"}
        with pytest.raises(KubeError) as raised:
            await kube.request("GET", "/api/v1/namespaces/ns/pods/bad", query={"watch": False, "limit": 5, "x": None})
        assert raised.value.status == 422 and raised.value.body["reason"] == "Invalid"
        assert "spec is invalid" in str(raised.value)
    asyncio.run(scenario())
    assert api.calls[-1]["query_params"] == [("watch", "false"), ("limit", 5)]  # booleans lowered, None dropped


def test_list_follows_continue_tokens():
    pages = [Response(200, {"metadata": {"continue": "t1", "resourceVersion": "5"}, "items": [{"n": 1}]}),
             Response(200, {"metadata": {"resourceVersion": "7"}, "items": [{"n": 2}]})]
    api = ApiClient(lambda path, method, body: pages.pop(0))
    items, rv = asyncio.run(Kube(api).list("/api/v1/pods", "a=b", limit=1))
    assert items == [{"n": 1}, {"n": 2}] and rv == "7"
    assert [dict(c["query_params"]).get("continue") for c in api.calls] == [None, "t1"]
    assert dict(api.calls[0]["query_params"]) == {"labelSelector": "a=b", "limit": 1}


def test_watch_yields_each_line_and_fails_on_a_bad_status():
    lines = [json.dumps({"type": "ADDED", "object": {"n": 1}}).encode() + b"\n", b"\n",
             json.dumps({"type": "DELETED", "object": {"n": 2}}).encode() + b"\n"]
    stream = Response(200, lines=lines)
    api = ApiClient(lambda path, method, body: stream)

    async def collect(kube):
        return [e async for e in kube.watch("/api/v1/pods", "42", "a=b")]
    assert asyncio.run(collect(Kube(api))) == [{"type": "ADDED", "object": {"n": 1}}, {"type": "DELETED",
                                                                                       "object": {"n": 2}}]
    assert stream.released
    assert ("resourceVersion", "42") in api.calls[0]["query_params"]
    gone = Response(410, {"reason": "Expired"})
    with pytest.raises(KubeError) as raised:
        asyncio.run(collect(Kube(ApiClient(lambda path, method, body: gone))))
    assert raised.value.status == 410 and gone.released


def test_delete_pod_is_preconditioned_on_the_uid():
    answers = [Response(200, {"kind": "Pod", "metadata": {"name": "p"}}), Response(200, {"kind": "Status"}),
               Response(409, {"reason": "Conflict"}), Response(404, {"reason": "NotFound"})]
    api = ApiClient(lambda path, method, body: answers.pop(0))
    kube = Kube(api)

    async def scenario():
        assert (await kube.delete_pod("ns", "p", "uid-1", grace_seconds=0))["kind"] == "Pod"
        assert await kube.delete_pod("ns", "p", "uid-1") is None  # a Status: deleted at once
        assert await kube.delete_pod("ns", "p", "uid-1") is None  # another incarnation holds the name
        assert await kube.delete_pod("ns", "p", "uid-1") is None  # already gone
    asyncio.run(scenario())
    first = api.calls[0]
    assert first["method"] == "DELETE" and first["path"] == "/api/v1/namespaces/ns/pods/p"
    assert first["body"]["preconditions"] == {"uid": "uid-1"} and first["body"]["gracePeriodSeconds"] == 0
    assert "gracePeriodSeconds" not in api.calls[1]["body"]


def test_patch_job_status_sends_the_difference_conditioned_on_the_resource_version():
    api = ApiClient(lambda path, method, body: Response(200, {"status": {"phase": "Running"}}))
    old = {"phase": "Pending", "message": "waiting", "replicaStatuses": {"Worker": {"active": 1, "failed": 2}}}
    new = {"phase": "Running", "replicaStatuses": {"Worker": {"active": 2}}}
    asyncio.run(Kube(api).patch_job_status("ns", "j", old, new, "77"))
    (call,) = api.calls
    assert call["method"] == "PATCH" and call["path"] == "/apis/mindspore.gitee.com/v1/namespaces/ns/msjobs/j/status"
    assert call["header_params"]["Content-Type"] == "application/merge-patch+json"
    assert call["body"] == {"status": {"phase": "Running", "message": None,
                                       "replicaStatuses": {"Worker": {"active": 2, "failed": None}}},
                            "metadata": {"resourceVersion": "77"}}


def test_merge_patch():
    assert merge_patch({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": 3, "c": 4}
    assert merge_patch({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}) == {"a": {"y": None}}
    assert merge_patch({"a": {"x": 1}}, {"a": {"x": 1}}) == {}  # unchanged objects are left out
    assert merge_patch({"l": [1, 2]}, {"l": [1]}) == {"l": [1]}  # lists are replaced whole
    assert merge_patch({"a": {"x": 1}}, {"a": 5}) == {"a": 5} and merge_patch({"a": 5},
                                                                              {"a": {"x": 1}}) == {"a": {"x": 1}}
    assert merge_patch({"a": None}, {}) == {"a": None}
    assert merge_patch({}, {"a": None}) == {"a": None}
