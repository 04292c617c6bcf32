"""Leader election on a coordination.k8s.io Lease, so that of several replicas only one acts.

Every replica keeps its caches warm; only the holder of the Lease reconciles. As in client-go, a
candidate judges a Lease expired by its own clock: the holder's record must stay unchanged for a
whole lease duration after this replica saw it (no trust in other machines' clocks). Writes carry
the resourceVersion they read, so two candidates can never both win the same Lease.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import uuid
from typing import Any, Optional

from .kube import Kube, lease_path

log = logging.getLogger("msjob_operator")


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _micro_time() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: Optional[str] = None,
                 lease_seconds: float = 15.0):
        self.kube = kube
        self.path = lease_path(namespace, name)
        self.collection = lease_path(namespace)
        self.name = name
        self.identity = identity or default_identity()
        self.lease_seconds = lease_seconds
        self.renew_every = lease_seconds / 3
        self.leading = False
        self._observed: tuple[object, ...] = ()  # the other holder's (holder, renewTime) as last seen...
        self._observed_at = 0.0  # ...and when, on our monotonic clock

    def _spec(self, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(int(self.lease_seconds), 1),
                "acquireTime": acquire_time, "renewTime": _micro_time(), "leaseTransitions": transitions}

    async def try_acquire_or_renew(self) -> bool:
        status, lease = await self.kube.request("GET", self.path, ok_statuses=(404,))
        if status == 404:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name},
                    "spec": self._spec(_micro_time(), 0)}
            status, _ = await self.kube.request("POST", self.collection, body, ok_statuses=(409,))
            return status != 409
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity:
            record = (holder, spec.get("renewTime"))
            if record != self._observed:
                self._observed, self._observed_at = record, time.monotonic()
            duration = spec.get("leaseDurationSeconds") or self.lease_seconds
            if time.monotonic() - self._observed_at < duration:
                return False  # held by a live peer
        transitions = (spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquired = str(spec.get("acquireTime") or _micro_time()) if holder == self.identity else _micro_time()
        lease["spec"] = self._spec(acquired, transitions)
        # The resourceVersion we read makes this a compare-and-swap: a concurrent winner gets 409 here.
        status, _ = await self.kube.request("PUT", self.path, lease, ok_statuses=(409,))
        return status != 409

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        log.info("waiting to lead (Lease %s, identity %s)", self.path, self.identity)
        while True:
            try:
                if await self.try_acquire_or_renew():
                    self.leading = True
                    log.info("leading: this replica now reconciles")
                    return
            except Exception as exc:  # noqa: BLE001 - retried: a candidate never gives up
                log.warning("leader election: %s", exc)
            await asyncio.sleep(self.renew_every)

    async def release(self) -> None:
        """On a clean stop: give the Lease up (no holder), so a standby takes over at once instead of
        after a lease duration. Only when this replica still holds it; the write is a compare-and-swap."""
        if not self.leading:
            return
        self.leading = False
        status, lease = await self.kube.request("GET", self.path, ok_statuses=(404,))
        if status == 404 or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["holderIdentity"] = None
        status, _ = await self.kube.request("PUT", self.path, lease, ok_statuses=(409,))
        if status != 409:
            log.info("released the Lease: a standby may lead now")

    async def hold(self) -> None:
        """Renew the Lease; return when leadership is lost (not renewed within a lease duration)."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                # Bounded: a renewal stuck behind a busy client must count as failed, not wait.
                if await asyncio.wait_for(self.try_acquire_or_renew(), self.renew_every):
                    last_renewed = time.monotonic()
                    continue
                log.error("leadership lost: another replica holds the Lease")
            except Exception as exc:  # noqa: BLE001 - any failure to renew counts against the deadline
                # Keep trying, but stop acting before a peer may consider the Lease expired.
                if time.monotonic() - last_renewed < self.lease_seconds - self.renew_every:
                    log.warning("could not renew the Lease (%s); retrying", exc or type(exc).__name__)
                    continue
                log.error("leadership lost: the Lease could not be renewed (%s)", exc or type(exc).__name__)
            self.leading = False
            return
