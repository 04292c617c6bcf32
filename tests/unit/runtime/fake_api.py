"""A small in-memory stand-in for the API server, as much of it as the agent uses (our own logic's
tests only; the real API server is in tests/cluster/test_agent.py).

ConfigMaps: list and watch with ``fieldSelector=metadata.name=X`` only (as a Role limited by
resourceNames allows), resourceVersions, 410 for a version older than ``compact()``.  Pods: get.
Leases: get, and JSON merge patch of annotations and spec.  ``down = True``: every call fails as with
no server.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time

from msjob_runtime import kubeapi
from msjob_runtime.agent_protocol import AGENT_ANNOTATION

CONFIGMAPS = re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps$")
POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$")
LEASE = re.compile(r"^/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases/([^/]+)$")


class FakeApi:
    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 100
        self.compacted = 0
        self.configmaps: dict[tuple[str, str], dict] = {}
        self.events: list[tuple[int, str, dict]] = []
        self.pods: dict[tuple[str, str], dict] = {}
        self.leases: dict[tuple[str, str], dict] = {}
        self.reports: dict[tuple[str, str], list[dict]] = {}
        self.calls: list[tuple[str, str, dict]] = []  # (verb, path, query)
        self._down = False

    # ----- the test's side

    def client(self) -> "FakeClient":
        return FakeClient(self)

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        with self.cond:
            self._down = value
            self.cond.notify_all()

    def set_configmap(self, ns: str, name: str, data: dict) -> None:
        with self.cond:
            self.rv += 1
            kind = "MODIFIED" if (ns, name) in self.configmaps else "ADDED"
            obj = {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(self.rv)}, "data": dict(data)}
            self.configmaps[(ns, name)] = obj
            self.events.append((self.rv, kind, copy.deepcopy(obj)))
            self.cond.notify_all()

    def delete_configmap(self, ns: str, name: str) -> None:
        with self.cond:
            self.rv += 1
            obj = self.configmaps.pop((ns, name))
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.events.append((self.rv, "DELETED", obj))
            self.cond.notify_all()

    def compact(self) -> None:
        """Forget the history: watches from an older version get 410 Gone (open ones are ended)."""
        with self.cond:
            self.rv += 1
            self.compacted = self.rv
            self.cond.notify_all()

    def add_pod(self, ns: str, name: str, uid: str) -> None:
        with self.cond:
            self.pods[(ns, name)] = {"metadata": {"name": name, "namespace": ns, "uid": uid}}

    def add_lease(self, ns: str, name: str, annotations: dict | None = None, holder: str | None = None) -> None:
        with self.cond:
            self.leases[(ns, name)] = {"metadata": {"name": name, "namespace": ns,
                                                    "annotations": dict(annotations or {})},
                                       "spec": {"holderIdentity": holder} if holder else {}}

    def report_history(self, ns: str, name: str) -> list[dict]:
        with self.cond:
            return list(self.reports.get((ns, name), []))

    def last_report(self, ns: str, name: str) -> dict | None:
        history = self.report_history(ns, name)
        return history[-1] if history else None

    # ----- the server's side

    def _check(self, verb: str, path: str, query: dict | None) -> None:
        with self.cond:
            self.calls.append((verb, path, dict(query or {})))
            if self._down:
                raise kubeapi.TransportError(f"{verb} {path}: ConnectionRefusedError: [Errno 111] Connection refused")

    @staticmethod
    def _selected(path: str, query: dict | None) -> tuple[str, str]:
        m = CONFIGMAPS.match(path)
        selector = (query or {}).get("fieldSelector", "")
        if not m or not selector.startswith("metadata.name="):
            raise kubeapi.ApiError(403, "Forbidden", f"cannot list {path} without a name")
        return m.group(1), selector[len("metadata.name="):]

    def get(self, path: str, query: dict | None) -> dict:
        self._check("get", path, query)
        with self.cond:
            for pattern, objects in ((POD, self.pods), (LEASE, self.leases)):
                m = pattern.match(path)
                if m:
                    found = objects.get((m.group(1), m.group(2)))
                    if found is None:
                        raise kubeapi.ApiError(404, "NotFound", f'"{m.group(2)}" not found')
                    return copy.deepcopy(found)
            key = self._selected(path, query)
            items = [copy.deepcopy(self.configmaps[key])] if key in self.configmaps else []
            return {"kind": "ConfigMapList", "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    def patch(self, path: str, body: dict) -> dict:
        self._check("patch", path, None)
        with self.cond:
            m = LEASE.match(path)
            lease = self.leases.get((m.group(1), m.group(2))) if m else None
            if lease is None:
                raise kubeapi.ApiError(404, "NotFound", f"{path} not found")
            lease["spec"].update(body.get("spec") or {})
            for k, v in body["metadata"]["annotations"].items():
                lease["metadata"]["annotations"][k] = v
                if k == AGENT_ANNOTATION:
                    self.reports.setdefault((m.group(1), m.group(2)), []).append(json.loads(v))
            self.cond.notify_all()
            return copy.deepcopy(lease)

    def watch(self, path: str, resource_version: str | None, timeout_seconds: int | None, query: dict | None):
        self._check("watch", path, {**(query or {}), "resourceVersion": resource_version})
        key = self._selected(path, query)
        with self.cond:
            start = int(resource_version) if resource_version else self.rv
            if start < self.compacted:
                raise kubeapi.ApiError(410, "Expired", f"too old resource version: {start} ({self.compacted})")
        deadline = time.monotonic() + (timeout_seconds or 30)
        seen = start
        while True:
            with self.cond:
                while True:
                    if self._down:
                        raise kubeapi.TransportError(f"watch {path}: the connection was cut")
                    if self.compacted > seen:
                        return  # the server ended the watch; the next one gets 410
                    fresh = [(rv, t, o) for rv, t, o in self.events
                             if rv > seen and (o["metadata"]["namespace"], o["metadata"]["name"]) == key]
                    if fresh:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.cond.wait(left)
            for rv, kind, obj in fresh:
                seen = rv
                yield {"type": kind, "object": copy.deepcopy(obj)}


class FakeClient:
    """What kubeapi.Client offers, on a FakeApi."""

    def __init__(self, api: FakeApi):
        self.api = api

    def get(self, path, query=None, timeout=None):
        return self.api.get(path, query)

    def patch(self, path, body, timeout=None):
        return self.api.patch(path, body)

    def watch(self, path, *, resource_version=None, timeout_seconds=None, query=None, allow_bookmarks=False,
              read_timeout=None):
        return self.api.watch(path, resource_version, timeout_seconds, query)

    def close(self):
        pass
