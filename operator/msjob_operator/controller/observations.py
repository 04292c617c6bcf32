"""What the watches cannot show a pass, kept per job: refused creates, names held by objects the job
does not own, and members that lost the labels the watches select on.

All three are observations of the API server (its answer to a create, a GET after AlreadyExists, a
watch event); the reconcile reads them as it reads the caches. They are refreshed or dropped by the
controller, never guessed: a refusal is cleared by the next successful create, a holder or stray is
read again before each pass of its job and dropped once it is gone.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Generic, TypeVar

from ..reconcile.waiting import Refusal
from .store import Key

T = TypeVar("T")


class _PerJob(Generic[T]):
    def __init__(self) -> None:
        self._by_job: dict[Key, dict[tuple[str, str], T]] = defaultdict(dict)

    def drop(self, key: Key, kind: str, name: str) -> None:
        found = self._by_job.get(key)
        if found is not None:
            found.pop((kind, name), None)
            if not found:
                del self._by_job[key]

    def forget(self, key: Key) -> None:
        self._by_job.pop(key, None)


class Refusals(_PerJob[Refusal]):
    """Creates the API server refused, by job and (kind, name)."""

    def add(self, key: Key, refusal: Refusal) -> bool:
        """Record a refusal (keeping when the run of refusals began); True when it says something new."""
        known = self._by_job[key].get((refusal.kind, refusal.name))
        if known is not None:
            refusal = dataclasses.replace(refusal, since=known.since)
        self._by_job[key][(refusal.kind, refusal.name)] = refusal
        return bool(known != refusal)

    def clear(self, key: Key, kind: str, name: str) -> None:
        self.drop(key, kind, name)

    def for_job(self, key: Key) -> dict[tuple[str, str], Refusal]:
        return dict(self._by_job.get(key) or {})


class ObjectsByJob(_PerJob[dict[str, Any]]):
    """Objects kept by job and (kind, name): the holders of a child's name, or stray members."""

    def put(self, key: Key, obj: dict[str, Any]) -> None:
        self._by_job[key][(obj.get("kind") or "Pod", obj["metadata"]["name"])] = obj

    def for_job(self, key: Key) -> list[dict[str, Any]]:
        return list((self._by_job.get(key) or {}).values())

    def __len__(self) -> int:
        return sum(len(found) for found in self._by_job.values())
