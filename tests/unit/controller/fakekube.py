"""A small scripted stand-in for the API server, for tests of the controller layer's own logic.

``FakeKube`` is a ``Kube`` whose three transport methods (request, list, watch) answer from a script
instead of the network; everything built on them (patch_job_status, delete_pod, ...) is the real code.
What the API server itself does (selectors, resourceVersions, admission) is proven on the real server
by the cluster tests; here the tests say what it answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict, deque
from typing import Any, AsyncIterator, Callable, Optional, Union

from msjob_operator.controller.kube import Kube, KubeError

_real_sleep = asyncio.sleep


@dataclasses.dataclass
class Call:
    method: str
    path: str
    body: Any = None
    query: Optional[dict] = None
    content_type: str = "application/json"


Answer = Union[tuple[int, Any], BaseException, Callable[[Call], tuple[int, Any]]]


class FakeKube(Kube):
    """Answers in the order they were scripted, per (method, path); a path without a script is a test
    failure (requests), an empty world (lists) or a quiet stream that never ends (watches)."""

    def __init__(self) -> None:
        super().__init__(api_client=None)
        self.calls: list[Call] = []
        self._answers: dict[tuple[str, str], deque] = defaultdict(deque)
        self._routes: list[tuple[str, Callable[[Call], tuple[int, Any]]]] = []
        self._lists: dict[tuple[str, Optional[str]], deque] = defaultdict(deque)
        self._streams: dict[str, deque] = defaultdict(deque)
        self.list_calls: list[tuple[str, Optional[str]]] = []
        self.watch_calls: list[tuple[str, str]] = []  # (path, resourceVersion)
        self.parked: dict[str, int] = defaultdict(int)  # watches waiting on a stream with nothing scripted

    # -- scripting ----------------------------------------------------------------------------
    def answer(self, method: str, path: str, *answers: Answer) -> None:
        """The next answers to ``method path``: (status, body), an exception to raise, or a function of the call."""
        self._answers[(method, path)].extend(answers)

    def route(self, prefix: str, handler: Callable[[Call], tuple[int, Any]]) -> None:
        """Every request under ``prefix`` without a scripted answer goes to ``handler``."""
        self._routes.append((prefix, handler))

    def on_list(self, path: str, *answers: Union[tuple[list, str], BaseException],
                selector: Optional[str] = None) -> None:
        """The next lists of ``path``: (items, resourceVersion) or an exception."""
        self._lists[(path, selector)].extend(answers)

    def on_watch(self, path: str, *streams: Union[list, BaseException]) -> None:
        """The next watches of ``path``: a list of events (the stream then ends) or an exception."""
        self._streams[path].extend(streams)

    def requests(self, method: Optional[str] = None, path: Optional[str] = None) -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method) and (path is None or c.path == path)]

    # -- the transport ------------------------------------------------------------------------
    async def request(self, method: str, path: str, body: Any = None, *, query: Optional[dict] = None,
                      content_type: str = "application/json", ok_statuses: tuple[int, ...] = (),
                      timeout: float = 60) -> tuple[int, Any]:
        call = Call(method, path, body, query, content_type)
        self.calls.append(call)
        await _real_sleep(0)  # a real request yields to the loop
        scripted = self._answers.get((method, path))
        if scripted:
            answer = scripted.popleft()
        else:
            handler = next((h for prefix, h in self._routes if path.startswith(prefix)), None)
            if handler is None:
                raise AssertionError(f"unexpected request {method} {path}")
            answer = handler
        if isinstance(answer, BaseException):
            raise answer
        status, data = answer(call) if callable(answer) else answer
        if 200 <= status < 300 or status in ok_statuses:
            return status, data
        raise KubeError(status, data, f"{method} {path}")

    async def list(self, path: str, label_selector: Optional[str] = None, limit: int = 500) -> tuple[list[dict], str]:
        self.list_calls.append((path, label_selector))
        await _real_sleep(0)
        scripted = self._lists.get((path, label_selector)) or self._lists.get((path, None))
        if not scripted:
            return [], "1"
        answer = scripted.popleft()
        if isinstance(answer, BaseException):
            raise answer
        items, rv = answer
        return [dict(item) for item in items], rv

    async def watch(self, path: str, resource_version: str, label_selector: Optional[str] = None,
                    timeout_seconds: int = 300) -> AsyncIterator[dict]:
        self.watch_calls.append((path, resource_version))
        await _real_sleep(0)
        scripted = self._streams.get(path)
        if not scripted:
            self.parked[path] += 1
            await asyncio.Future()  # nothing more to say: wait until cancelled
        stream = scripted.popleft()
        if isinstance(stream, BaseException):
            raise stream
        for event in stream:
            yield event


def event(kind: str, obj: dict, rv: Optional[int] = None) -> dict:
    """A watch event; ``rv`` sets the object's resourceVersion (on a copy)."""
    if rv is not None:
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}
    return {"type": kind, "object": obj}


def expired() -> dict:
    return {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}


async def until(condition: Callable[[], bool], steps: int = 2000) -> None:
    """Let the loop run until ``condition`` holds (a bounded number of turns, never a duration)."""
    for _ in range(steps):
        if condition():
            return
        await _real_sleep(0)
    raise AssertionError("the condition never held")


async def settle(turns: int = 50) -> None:
    """Let every ready task run as far as it can."""
    for _ in range(turns):
        await _real_sleep(0)


class FakeClock:
    """A monotonic clock and an asyncio stand-in whose sleep() advances it at once (and records how long)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await _real_sleep(0)

    def asyncio(self) -> Any:
        """The asyncio module, but with this clock's sleep (for monkeypatching a module's ``asyncio``)."""
        clock = self

        class _Asyncio:
            def __getattr__(self, name: str) -> Any:
                return clock.sleep if name == "sleep" else getattr(asyncio, name)

        return _Asyncio()
