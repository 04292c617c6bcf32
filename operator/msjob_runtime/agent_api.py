"""The agent's two conversations with the API server, each in a thread of its own with its own client.

* ``GangWatcher``: lists the gang ConfigMap with ``fieldSelector=metadata.name=<name>`` (what a
  Role limited by ``resourceNames`` allows for list and watch), then watches it from the list's
  resourceVersion, resuming from the last one seen when a watch ends, listing again after a 410
  or any error.  ``view()`` is what it knows.
* ``LeaseReporter``: reads its member's Lease once (the previous agent's report, should the
  container have been restarted in this pod: the Lease's holder is this pod's UID), then
  merge-patches every report posted onto it, in order; while the API server fails it retries the
  latest one only.  The operator creates the Lease before the pod; while it is missing (deleted by
  hand) the patches fail, are retried, and count against the agent's bound on a failing API server.
* ``ApiHealth``: since when each of them has been failing without a success in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Optional
from urllib.parse import quote

from . import kubeapi
from .agent_protocol import Gang, lease_path, member_lease_name, parse_gang, read_member_report, report_patch

log = logging.getLogger("msjob.agent")

WATCH = "watch"
REPORT = "report"
RETRY_SECONDS = 1.0
REQUEST_TIMEOUT = 10.0
WATCH_READ_SLACK = 10.0  # a watch silent this long past its timeoutSeconds is a dead connection

ClientFactory = Callable[[], Any]  # () -> kubeapi.Client (or a test's stand-in)


def describe(e: BaseException) -> str:
    return str(e) if isinstance(e, kubeapi.KubeError) else f"{type(e).__name__}: {e}"


class ApiHealth:
    """Per channel, the monotonic time of the first failure since the last success."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._since: Dict[str, float] = {}
        self._lock = threading.Lock()

    def ok(self, channel: str) -> None:
        with self._lock:
            failed = self._since.pop(channel, None)
        if failed is not None:
            log.info("%s: the API server answers again", channel)

    def failed(self, channel: str, error: BaseException) -> None:
        with self._lock:
            first = channel not in self._since
            self._since.setdefault(channel, self.clock())
        if first:
            log.warning("%s: %s (will retry)", channel, describe(error))

    def failing_for(self) -> float:
        """Seconds the longest-failing channel has been failing (0 when all are fine)."""
        with self._lock:
            oldest = min(self._since.values(), default=None)
        return 0.0 if oldest is None else max(0.0, self.clock() - oldest)

    def failing(self, channel: str) -> bool:
        with self._lock:
            return channel in self._since


@dataclass(frozen=True)
class GangView:
    gang: Optional[Gang]  # the last valid data read from the server (kept while the object is absent)
    present: bool  # the object existed at the last read
    synced: bool  # the last list or watch succeeded: the view is current
    absent_since: Optional[float]  # monotonic, while the object is missing


class GangWatcher(threading.Thread):
    def __init__(self, make_client: ClientFactory, namespace: str, name: str, health: ApiHealth,
                 wakeup: threading.Event, *, watch_seconds: int = 30, retry_seconds: float = RETRY_SECONDS):
        super().__init__(name="gang-watcher", daemon=True)
        self.make_client, self.health, self.wakeup = make_client, health, wakeup
        self.namespace, self.name = namespace, name
        self.path = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"
        self.selector = {"fieldSelector": f"metadata.name={name}"}
        self.watch_seconds, self.retry_seconds = max(1, int(watch_seconds)), retry_seconds
        self._lock = threading.Lock()
        self._view = GangView(None, False, False, None)
        self._halt = threading.Event()

    def view(self) -> GangView:
        with self._lock:
            return self._view

    def stop(self) -> None:
        self._halt.set()

    def _set(self, obj: Optional[dict], synced: bool = True) -> None:
        with self._lock:
            old = self._view
            gang, present = old.gang, obj is not None
            if obj is not None:
                try:
                    gang = parse_gang(obj.get("data"))
                except ValueError as e:
                    log.warning("ConfigMap %s/%s: %s; ignored", self.namespace, self.name, e)
            absent_since = None if present else (old.absent_since or self.health.clock())
            self._view = GangView(gang, present, synced, absent_since)
        if not present and old.present:
            log.warning("ConfigMap %s/%s is gone", self.namespace, self.name)
        self.wakeup.set()

    def _unsynced(self) -> None:
        with self._lock:
            v = self._view
            self._view = GangView(v.gang, v.present, False, v.absent_since)

    def run(self) -> None:
        client = None
        version: Optional[str] = None  # None: list first
        while not self._halt.is_set():
            try:
                if client is None:
                    client = self.make_client()
                if version is None:
                    listed = client.get(self.path, query=self.selector, timeout=REQUEST_TIMEOUT)
                    items = listed.get("items") or []
                    self._set(items[0] if items else None)
                    self.health.ok(WATCH)
                    version = (listed.get("metadata") or {}).get("resourceVersion") or ""
                version = self._watch(client, version)
            except kubeapi.ApiError as e:
                version = None
                if e.status == 410:  # our version is too old: list again, at once
                    continue
                self._failed(e)
            except Exception as e:  # noqa: BLE001 - transport, credentials, bugs: retry from a list
                version = None
                self._failed(e)
                if client is not None:
                    client.close()
                client = None
        if client is not None:
            client.close()

    def _failed(self, e: BaseException) -> None:
        self._unsynced()
        self.health.failed(WATCH, e)
        self._halt.wait(self.retry_seconds)

    def _watch(self, client: Any, version: str) -> str:
        """One watch from ``version``; the last resourceVersion seen when the server ends it."""
        events = client.watch(self.path, resource_version=version or None, timeout_seconds=self.watch_seconds,
                              query=self.selector, allow_bookmarks=True,
                              read_timeout=self.watch_seconds + WATCH_READ_SLACK)
        for event in events:
            obj = event.get("object") or {}
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            kind = event.get("type")
            if kind in ("ADDED", "MODIFIED"):
                self._set(obj)
            elif kind == "DELETED":
                self._set(None)
            self.health.ok(WATCH)
            if self._halt.is_set():
                break
        return version


class LeaseReporter(threading.Thread):
    def __init__(self, make_client: ClientFactory, namespace: str, pod: str, health: ApiHealth, *,
                 pod_uid: Optional[str] = None, lease: Optional[str] = None,
                 retry_seconds: float = RETRY_SECONDS, timeout: float = REQUEST_TIMEOUT):
        super().__init__(name="lease-reporter", daemon=True)
        self.make_client, self.health = make_client, health
        self.path = lease_path(quote(namespace, safe=""), quote(lease or member_lease_name(pod), safe=""))
        self.pod_path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}"
        self.pod_uid = pod_uid  # None: read from the pod (an agent started without $POD_UID)
        self.retry_seconds, self.timeout = retry_seconds, timeout
        self.loaded = threading.Event()  # the Lease has been read: ``previous`` is known
        self.previous: Optional[Dict[str, Any]] = None
        self._queue: Deque[Dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._halt = False
        self.sent: Optional[Dict[str, Any]] = None

    def _load(self, client: Any) -> None:
        if not self.pod_uid:
            self.pod_uid = str(((client.get(self.pod_path, timeout=self.timeout) or {}).get("metadata") or {})["uid"])
        try:
            lease = client.get(self.path, timeout=self.timeout) or {}
        except kubeapi.ApiError as e:
            if e.status != 404:
                raise
            lease = None  # not there (yet): no previous report; the patches retry until it is
        self.previous = read_member_report(lease, self.pod_uid)

    def post(self, report: Dict[str, Any]) -> None:
        with self._cond:
            self._queue.append(report)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every posted report is sent; True when they are."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        with self._cond:
            self._halt = True
            self._cond.notify_all()

    def run(self) -> None:
        client = None
        while True:
            try:
                if client is None:
                    client = self.make_client()
                if not self.loaded.is_set():
                    self._load(client)
                    self.health.ok(REPORT)
                    self.loaded.set()
                    continue
                with self._cond:
                    while not self._queue and not self._halt:
                        self._cond.wait()
                    if not self._queue:
                        return
                    if self.health.failing(REPORT):  # retrying: only the latest still matters
                        while len(self._queue) > 1:
                            self._queue.popleft()
                    report = self._queue[0]
                    self._busy = True
                try:
                    client.patch(self.path, report_patch(report, self.pod_uid), timeout=self.timeout)
                finally:
                    with self._cond:
                        self._busy = False
                with self._cond:
                    if self._queue and self._queue[0] is report:
                        self._queue.popleft()
                    self.sent = report
                    self._cond.notify_all()
                self.health.ok(REPORT)
            except Exception as e:  # noqa: BLE001 - any API or network error: retried
                self.health.failed(REPORT, e)
                if client is not None:
                    client.close()
                client = None
                with self._cond:
                    if self._halt:
                        return
                    self._cond.wait(self.retry_seconds)
