"""List-then-watch of the operator's children, selected by label on the server.

kopf would stream every pod of the watched namespaces and filter labels on the client; at
thousands of pods that costs memory and CPU, so children are watched here with a labelSelector.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable, Optional

from .kube import Kube, KubeError
from .store import ChildStore, Key

log = logging.getLogger(__name__)


class Informer:
    def __init__(self, kube: Kube, paths: Iterable[str], selector: str, store: ChildStore,
                 notify: Callable[[Key], None], what: str, on_unselected: Optional[Callable[[dict[str, Any]],
                                                                                            None]] = None):
        self.kube = kube
        # Called with an object the watch reports DELETED without a deletionTimestamp: deleted at once
        # (a forced delete), or still there and only no longer selected (its labels were changed: the
        # watch then sends the object as it was before). Only a read can tell.
        self.on_unselected = on_unselected
        self.paths = list(paths)  # one per watched namespace, or one cluster-wide path
        self.selector = selector
        self.store = store
        self.notify = notify
        self.what = what
        self.synced = asyncio.Event()
        self._synced_paths: set[str] = set()
        self._stores = {path: ChildStore() for path in self.paths} if len(self.paths) > 1 else None

    async def run(self) -> None:
        await asyncio.gather(*(self._run_path(path) for path in self.paths))

    async def _run_path(self, path: str) -> None:
        backoff = 0.5
        while True:
            try:
                items, rv = await self.kube.list(path, self.selector)
                for key in self._replace(path, items):
                    self.notify(key)
                self._synced_paths.add(path)
                if len(self._synced_paths) == len(self.paths):
                    self.synced.set()
                backoff = 0.5
                while True:
                    rv = await self._watch_once(path, rv)
            except asyncio.CancelledError:
                raise
            except _Expired:
                log.info("%s watch expired; listing again", self.what)
            except Exception as exc:  # the API server restarted, the network broke, ...
                log.warning("%s watch failed (%s); listing again in %.1f s", self.what, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _replace(self, path: str, items: list[dict[str, Any]]) -> set[Key]:
        if self._stores is None:
            return self.store.replace_all(items)
        # With several namespaces, a relist of one must not forget the others' children.
        touched = self._stores[path].replace_all(items)
        self.store.replace_jobs(touched, items)
        return touched

    async def _watch_once(self, path: str, rv: str) -> str:
        async for event in self.kube.watch(path, rv, self.selector):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _Expired()
                raise KubeError(obj.get("code", 0), obj, f"watch {path}")
            rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                key = self.store.remove(obj)
                if self._stores is not None:
                    self._stores[path].remove(obj)
                if self.on_unselected is not None and not (obj.get("metadata") or {}).get("deletionTimestamp"):
                    self.on_unselected(obj)
            else:
                key = self.store.upsert(obj)
                if self._stores is not None:
                    self._stores[path].upsert(obj)
            if key is not None:
                self.notify(key)
        return rv


class _Expired(Exception):
    pass


def selected(obj: dict[str, Any], selector: str) -> bool:
    """Whether the object's labels match an equality selector ``k=v,k2=v2``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        name, _, value = term.partition("=")
        if labels.get(name) != value:
            return False
    return True
