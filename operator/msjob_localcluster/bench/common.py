"""What every benchmark scenario needs: job bodies, throw-away namespaces, and a pod watch that counts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any, Callable, Optional

from prometheus_client.parser import text_string_to_metric_families

from msjob_operator.api import naming
from msjob_operator.api.models import GROUP, VERSION
from msjob_operator.controller.kube import Kube, core_path, job_path

REQUESTS_METRIC = "msjob_api_requests_total"
TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


def job_body(name: str, workers: int, annotations: Optional[dict[str, Any]] = None, **spec: Any) -> dict[str, Any]:
    """An MSJob for the fake nodes: a Scheduler and `workers` Workers; annotations drive the fake containers."""
    template = {"metadata": {"annotations": dict(annotations or {})},
                "spec": {"containers": [{"name": "mindspore", "image": "mindspore/mindspore:2.10.0"}],
                         "tolerations": [TOLERATION], "nodeSelector": {"type": "kwok"}}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MSJob", "metadata": {"name": name},
            "spec": {"msReplicaSpecs": {"Scheduler": {"replicas": 1, "template": template},
                                        "Worker": {"replicas": workers, "template": template}}, **spec}}


async def create_job(kube: Kube, namespace: str, body: dict[str, Any]) -> None:
    await kube.request("POST", job_path(namespace), body)


async def new_namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await kube.request("POST", "/api/v1/namespaces",
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def until_gone(kube: Kube, path: str, timeout: float, poll: float = 0.5) -> bool:
    """Poll the object at `path` until it is gone (404); False if it is still there after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        status, _ = await kube.request("GET", path, ok_statuses=(404,))
        if status == 404:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)


async def delete_namespace(kube: Kube, namespace: str, wait: float = 0) -> None:
    """Delete; with `wait`, until it is gone, so its pods' deletion does not load the next measurement."""
    # The jobs first: a job whose pods the namespace's deletion removes would make them again, in vain.
    await kube.request("DELETE", job_path(namespace), ok_statuses=(404,))
    await kube.request("DELETE", f"/api/v1/namespaces/{namespace}", ok_statuses=(404,))
    if wait:
        await until_gone(kube, f"/api/v1/namespaces/{namespace}", wait, poll=1)


def api_requests(metrics_text: str) -> Counter[tuple[str, str]]:
    """(verb, resource) -> requests, from the operator's metrics page."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == REQUESTS_METRIC:
                counts[(sample.labels["verb"], sample.labels["resource"])] += int(sample.value)
    return counts


async def quiet_requests(metrics: Callable[[], str], timeout: float,
                         quiet_seconds: float = 1) -> Counter[tuple[str, str]]:
    """The operator's request counts once they stop moving: it has caught up with everything it was told."""
    last = api_requests(await asyncio.to_thread(metrics))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_seconds)
        now = api_requests(await asyncio.to_thread(metrics))
        if now == last:
            return now
        last = now
    return last


def seconds(value: float) -> float:
    return round(value, 2)


class PodWatch:
    """Pods of one namespace (label-selected), counted per gang attempt as a watch reports them.

    Counts are kept incrementally (each event moves one pod between counts), so waiting on thousands of
    pods costs O(1) per event; `until` records the moment, in time.monotonic(), a condition became true.
    """

    def __init__(self, kube: Kube, namespace: str, selector: str):
        self.kube, self.namespace, self.selector = kube, namespace, selector
        self._pods: dict[str, tuple[str, str, str, bool]] = {}  # uid -> (name, attempt, phase, terminating)
        self._uid_by_name: dict[str, str] = {}
        self.ever_running: set[str] = set()  # pod names the watch has seen Running
        self.failed_at: dict[str, float] = {}  # pod name -> when the watch first reported it Failed
        self.pods: Counter[str] = Counter()       # attempt -> pods that exist (terminating included)
        self.running: Counter[str] = Counter()    # attempt -> pods Running and not terminating
        self.terminating: Counter[str] = Counter()  # attempt -> pods being deleted
        self._changed = asyncio.Event()
        self._task: Optional[asyncio.Task[None]] = None

    @property
    def total(self) -> int:
        return sum(self.pods.values())

    @property
    def total_running(self) -> int:
        return sum(self.running.values())

    async def start(self) -> "PodWatch":
        path = core_path("pods", self.namespace)
        items, rv = await self.kube.list(path, self.selector)
        for pod in items:
            self._update("ADDED", pod)
        self._task = asyncio.create_task(self._run(path, rv))
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, path: str, rv: str) -> None:
        while True:  # the server ends a watch after its timeout: go on from where it stopped
            async for event in self.kube.watch(path, rv, self.selector, timeout_seconds=300):
                obj = event.get("object") or {}
                rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self._update(event["type"], obj)
                    self._changed.set()

    def _update(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        old = self._pods.pop(meta["uid"], None)
        if old is not None:
            self._count(old, -1)
        if kind == "DELETED":
            if self._uid_by_name.get(meta["name"]) == meta["uid"]:
                del self._uid_by_name[meta["name"]]
            return
        state = (meta["name"], (meta.get("labels") or {}).get(naming.ATTEMPT_LABEL, ""),
                 (pod.get("status") or {}).get("phase", ""), bool(meta.get("deletionTimestamp")))
        self._pods[meta["uid"]] = state
        self._uid_by_name[state[0]] = meta["uid"]
        self._count(state, +1)
        if state[2] == "Running":
            self.ever_running.add(state[0])
        elif state[2] == "Failed":
            self.failed_at.setdefault(state[0], time.monotonic())

    def phase(self, name: str) -> str:
        """The phase of the newest pod of that name ("" when there is none)."""
        uid = self._uid_by_name.get(name)
        return self._pods[uid][2] if uid in self._pods else ""

    def _count(self, state: tuple[str, str, str, bool], sign: int) -> None:
        _, attempt, phase, terminating = state
        self.pods[attempt] += sign
        self.running[attempt] += sign * (phase == "Running" and not terminating)
        self.terminating[attempt] += sign * terminating

    async def until(self, condition: Callable[["PodWatch"], bool], timeout: float, what: str = "") -> float:
        """Wait until `condition(self)` holds; returns when (time.monotonic()) it was first seen to hold."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what or 'condition'} not reached within {timeout} s "
                                   f"(pods {dict(self.pods)}, running {dict(self.running)})")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        return time.monotonic()
