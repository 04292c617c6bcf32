"""Kueue's objects for the reconcile, and the operator's writes to its Workloads (only with --kueue).

Watched: the jobs' Workloads (label-selected, cached by the job that controls them: a Workload event
reconciles its job), and, for what an admission means and what a Workload needs, ResourceFlavors and
WorkloadPriorityClasses (cluster-scoped, a handful) and LocalQueues (their ClusterQueue names the queue in
messages). Writes: server-side apply of the Finished condition, a merge patch of the status conditional
on the resourceVersion (giving the quota back after an eviction), merge patches of the spec, deletes.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from ..api import naming
from ..builders.workload import FIELD_MANAGER, KUEUE_GROUP, KUEUE_VERSION, WorkloadWrite
from ..reconcile.queueing import KueueObserved
from .informer import Informer, selected
from .kube import Kube
from .store import ChildStore, Key

log = logging.getLogger("msjob_operator")

BASE = f"/apis/{KUEUE_GROUP}/{KUEUE_VERSION}"


def path(plural: str, namespace: Optional[str] = None, name: str = "") -> str:
    base = f"{BASE}/namespaces/{namespace}/{plural}" if namespace else f"{BASE}/{plural}"
    return f"{base}/{name}" if name else base


class NamedStore(ChildStore):
    """Objects by (namespace, name), for one informer path: nothing here belongs to a job, so no job is
    notified (a job waiting for one of them looks again on its own)."""

    def __init__(self) -> None:
        super().__init__()
        self._by_name: dict[tuple[str, str], dict[str, Any]] = {}

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace") or ""), str(meta.get("name"))

    def upsert(self, obj: dict[str, Any]) -> Optional[Key]:
        self._by_name[self._key(obj)] = self._slim(obj)
        return None

    def remove(self, obj: dict[str, Any]) -> Optional[Key]:
        self._by_name.pop(self._key(obj), None)
        return None

    def replace_all(self, objects: list[dict[str, Any]]) -> set[Key]:
        self._by_name = {}
        for obj in objects:
            self.upsert(obj)
        return set()

    def named(self, namespace: str = "") -> dict[str, dict[str, Any]]:
        return {name: obj for (ns, name), obj in self._by_name.items() if ns == namespace}


class KueueSources:
    """The informers and caches of Kueue's objects."""

    def __init__(self, kube: Kube, namespaces: list[str], notify: Callable[[Key], None]):
        self.workloads = ChildStore()
        self.flavors = NamedStore()
        self.priority_classes = NamedStore()
        # One informer (and store) per watched namespace: a relist of one namespace replaces only its own.
        self.local_queues = {ns: NamedStore() for ns in namespaces or [""]}
        self.informers = [
            Informer(kube, [path("workloads", ns) for ns in namespaces] or [path("workloads")],
                     naming.CHILD_SELECTOR, self.workloads, notify, "workloads"),
            Informer(kube, [path("resourceflavors")], "", self.flavors, notify, "resourceflavors"),
            Informer(kube, [path("workloadpriorityclasses")], "", self.priority_classes, notify,
                     "workloadpriorityclasses"),
            *(Informer(kube, [path("localqueues", ns or None)], "", store, notify, "localqueues")
              for ns, store in self.local_queues.items()),
        ]

    def observed(self, key: Key) -> KueueObserved:
        namespace = key[0]
        queues = self.local_queues.get(namespace) or self.local_queues.get("")
        return KueueObserved(workloads=self.workloads.for_job(key), flavors=self.flavors.named(),
                             priority_classes=self.priority_classes.named(),
                             local_queues=queues.named(namespace) if queues is not None else {})


async def write(kube: Kube, key: Key, change: WorkloadWrite, store: ChildStore) -> bool:
    """Apply one write to the job's Workload; False when it met a newer Workload (Conflict): the pass is
    planned again from it."""
    target = path("workloads", key[0], change.name)
    if change.what == "delete":
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": change.uid}}
        await kube.request("DELETE", target, body, ok_statuses=(404, 409))
        log.info("[%s/%s] deleted Workload %s", key[0], key[1], change.name)
        return True
    if change.what == "apply-status":
        status, updated = await kube.request("PATCH", f"{target}/status", change.body,
                                             query={"fieldManager": FIELD_MANAGER, "force": True},
                                             content_type="application/apply-patch+yaml", ok_statuses=(404,))
    elif change.what == "patch-status":
        body = {**change.body, "metadata": {"resourceVersion": change.resource_version}}
        status, updated = await kube.request("PATCH", f"{target}/status", body,
                                             content_type="application/merge-patch+json", ok_statuses=(404, 409))
        if status == 409:
            _, fresh = await kube.request("GET", target, ok_statuses=(404,))
            if isinstance(fresh, dict) and fresh.get("kind") == "Workload":
                store.upsert(fresh)
            return False
    else:
        status, updated = await kube.request("PATCH", target, change.body,
                                             content_type="application/merge-patch+json", ok_statuses=(404,))
    if status != 404 and isinstance(updated, dict) and selected(updated, naming.CHILD_SELECTOR):
        store.upsert(updated)  # our own write, newer than what the watch has shown so far
    return True
