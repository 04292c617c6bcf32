"""Kubernetes Events about MSJobs, aggregated as client-go's recorder does.

An Event repeated for the same job (same type and reason) within ``SERIES_SECONDS`` of the last one
is not a new object: the existing Event's count, message and lastTimestamp are patched. A job that
keeps restarting shows one Event with a count, not hundreds. Events are best effort: a failed post
is logged at debug level and never blocks a reconcile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from typing import Any, Optional

from ..api import naming
from .kube import Kube, core_path

log = logging.getLogger("msjob_operator")

SERIES_SECONDS = 600.0
SERIES_KEPT = 10000  # series remembered; the oldest are forgotten first


@dataclasses.dataclass
class _Series:
    name: str
    count: int
    seen: float  # monotonic time of the last occurrence


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, kube: Kube):
        self.kube = kube
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    def post(self, job: dict[str, Any], etype: str, reason: str, message: str) -> None:
        task = asyncio.create_task(self._post(job, etype, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, job: dict[str, Any], etype: str, reason: str, message: str) -> None:
        meta = job["metadata"]
        key = (meta["uid"], etype, reason)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:  # one write per series at a time: the count stays exact
                series = self._series.get(key)
                if series is not None and time.monotonic() - series.seen < SERIES_SECONDS:
                    if await self._repeat(meta["namespace"], series, message):
                        return
                self._series[key] = await self._create(job, etype, reason, message)
                while len(self._series) > SERIES_KEPT:
                    oldest = next(iter(self._series))
                    self._series.pop(oldest)
                    self._locks.pop(oldest, None)
        except Exception as exc:  # noqa: BLE001 - an Event is best effort
            log.debug("could not post event %s: %s", reason, exc)

    async def _repeat(self, namespace: str, series: _Series, message: str) -> bool:
        body = {"count": series.count + 1, "message": message, "lastTimestamp": _now()}
        status, _ = await self.kube.request("PATCH", core_path("events", namespace, series.name), body,
                                            content_type="application/merge-patch+json", ok_statuses=(404,))
        if status == 404:  # expired (events live an hour) or deleted: start a new one
            return False
        series.count += 1
        series.seen = time.monotonic()
        return True

    async def _create(self, job: dict[str, Any], etype: str, reason: str, message: str) -> _Series:
        meta = job["metadata"]
        now = _now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": job.get("apiVersion"), "kind": job.get("kind"), "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": etype, "reason": reason, "message": message,
            "source": {"component": naming.OPERATOR_NAME},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": naming.MANAGED_BY, "reportingInstance": naming.OPERATOR_NAME,
        }
        _, created = await self.kube.request("POST", core_path("events", meta["namespace"]), body)
        return _Series(created["metadata"]["name"], 1, time.monotonic())

    def forget(self, uid: Optional[str]) -> None:
        for key in [k for k in self._locks if k[0] == uid]:
            self._series.pop(key, None)
            del self._locks[key]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
