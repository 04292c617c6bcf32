"""A work queue of job keys, like client-go's: a key is queued at most once, never processed by two
workers at the same time, and a change during processing queues it again.  One addition: a pass whose
next step needs what it just created (``again``) is followed by the key's next pass before the keys
already waiting, so a job's pods follow its Services instead of every other job's first pass."""

from __future__ import annotations

import asyncio
import itertools
from typing import Generic, Hashable, TypeVar

RETRY_BASE_SECONDS = 0.4
RETRY_MAX_SECONDS = 30.0


K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, min_interval: float = 0.2) -> None:
        # A key changed while it was processed waits this long before its next pass, so a burst of
        # pod events (a big job starting) is handled in a few passes instead of one per event.
        self.min_interval = min_interval
        # (rank, order, key): rank 0 for a key to continue at once (``again``), 1 for every other.
        self._queue: asyncio.PriorityQueue[tuple[int, int, K]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._again: set[K] = set()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}  # failed passes in a row, per key (job)

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait((1, next(self._order), key))

    def again(self, key: K) -> None:
        """The key being processed goes again as soon as it is done, ahead of the keys waiting."""
        self._again.add(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue the key after a delay; an earlier pending timer for the key wins."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> K:
        _, _, key = await self._queue.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._again:  # queued now (it is not queued while processed), ahead of the others
            self._again.discard(key)
            self._dirty.add(key)
            self._queue.put_nowait((0, next(self._order), key))
        elif key in self._dirty:
            # Changed while we worked on it: go again, after a short pause.
            self._dirty.discard(key)
            self.add_after(key, self.min_interval)

    def retry(self, key: K) -> float:
        """The key's pass failed: queue it again after a delay that doubles with each failure in a row
        of that key alone (other jobs keep their pace); returns the delay."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = float(min(RETRY_BASE_SECONDS * 2 ** min(failures - 1, 16), RETRY_MAX_SECONDS))
        self.add_after(key, delay)
        return delay

    def succeeded(self, key: K) -> None:
        self._failures.pop(key, None)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
