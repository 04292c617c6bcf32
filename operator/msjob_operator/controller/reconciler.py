"""Runs reconcile passes: read the caches, compute one Plan, apply it in order with bounded concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from typing import Any, Callable, MutableMapping, Optional

from ..api import naming
from ..config import DEFAULT, Config
from ..reconcile.context import Plan
from ..reconcile.plan import reconcile
from ..reconcile.queueing import KueueObserved
from . import kueue, metrics
from .apply import Applier, StatusConflict
from .events import EventRecorder
from .informer import Informer, selected
from .kube import Kube, KubeError, core_path, lease_path
from .leader import LeaderElection
from .observations import ObjectsByJob, Refusals
from .queue import WorkQueue
from .store import ChildStore, JobStore, Key, job_owner

log = logging.getLogger("msjob_operator")

# While a job has a refused create, a name held by someone else or a stray member, it is looked at
# again at least this often (its backoff may make it longer).
RECHECK_SECONDS = 5.0


def ours(job: dict[str, Any]) -> bool:
    managed_by = (((job.get("spec") or {}).get("runPolicy") or {}).get("managedBy")) or ""
    return managed_by in ("", naming.MANAGED_BY)


class JobLog(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in typeshed
    """Every line about a job carries [namespace/name]."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{(self.extra or {}).get('job')}] {msg}", kwargs


class Controller:
    def __init__(self, kube: Kube, config: Config = DEFAULT, leader: Optional[LeaderElection] = None,
                 on_leadership_lost: Optional[Callable[[], None]] = None):
        self.kube = kube
        # With several replicas only the Lease holder reconciles; the others keep warm caches.
        self.leader = leader
        self.on_leadership_lost = on_leadership_lost
        self.namespaces = list(config.namespaces)
        self.workers = config.workers
        self.config = config
        self.jobs = JobStore()
        self.pods = ChildStore(keep_spec=("nodeName",))  # all the reconcile reads of a pod's spec
        self.services = ChildStore()
        self.podgroups = ChildStore()
        self.configmaps = ChildStore()  # the jobs' own: the in-place gang's (and rank tables)
        self.leases = ChildStore()  # the in-place members' Leases: their agents' reports
        self.refusals = Refusals()
        self.holders = ObjectsByJob()  # objects under a child's name that the job does not own
        self.strays = ObjectsByJob()  # members that lost the labels the pod watch selects on
        self.strays_scanned = asyncio.Event()
        self._checks: dict[Key, set[asyncio.Task[None]]] = {}  # reads of pods the watch dropped, by job
        self.queue: WorkQueue[Key] = WorkQueue()
        self.events = EventRecorder(kube)
        self.last_success: Optional[float] = None
        self._tasks: list[asyncio.Task[None]] = []
        # Kueue's Workloads and the objects an admission refers to (only with --kueue).
        self.kueue = kueue.KueueSources(kube, self.namespaces, self.queue.add) if config.kueue else None
        self.applier = Applier(kube, self.jobs, self.pods, self.services, self.podgroups, self.refusals,
                               self.holders, self.events, self.config, configmaps=self.configmaps,
                               kueue_workloads=self.kueue.workloads if self.kueue else None, leases=self.leases)
        self.pod_informer = Informer(kube, self._paths("pods"), naming.CHILD_SELECTOR, self.pods, self.queue.add,
                                     "pods", on_unselected=self._maybe_stray)
        self.service_informer = Informer(kube, self._paths("services"), naming.CHILD_SELECTOR, self.services,
                                         self.queue.add, "services")
        self.configmap_informer = Informer(kube, self._paths("configmaps"), naming.CHILD_SELECTOR, self.configmaps,
                                           self.queue.add, "configmaps")
        self.lease_informer = Informer(kube, [lease_path(ns) for ns in self.namespaces] or [lease_path(None)],
                                       naming.CHILD_SELECTOR, self.leases, self.queue.add, "leases")
        self.podgroup_informer = Informer(
            kube, [self.applier.podgroup_path(ns) for ns in self.namespaces] or [self.applier.podgroup_path()],
            naming.CHILD_SELECTOR, self.podgroups, self.queue.add, "podgroups")

    def _paths(self, plural: str) -> list[str]:
        if self.namespaces:
            return [core_path(plural, ns) for ns in self.namespaces]
        return [core_path(plural)]

    @property
    def informers(self) -> list[Informer]:
        informers = [self.pod_informer, self.service_informer, self.configmap_informer, self.lease_informer]
        if self.config.gang_available and self.config.gang.mode != "never":
            informers.append(self.podgroup_informer)
        if self.kueue is not None and self.config.kueue_available:
            informers.extend(self.kueue.informers)
        return informers

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.config.gang.mode != "never":
            # Without the gang scheduler's CRD there is nothing to watch: jobs run without a gang.
            status, _ = await self.kube.request("GET", self.applier.podgroup_base, ok_statuses=(404,))
            if status == 404:
                log.warning("%s is not served: gang scheduling is off until the operator restarts",
                            self.applier.podgroup_base)
                self.config = dataclasses.replace(self.config, gang_available=False)
                self.applier.config = self.config
        if self.config.kueue:
            # Without Kueue's API, Kueue-labelled jobs wait (reason KueueNotServed) rather than run unqueued.
            status, _ = await self.kube.request("GET", kueue.BASE, ok_statuses=(404,))
            if status == 404:
                log.warning("%s is not served: jobs labelled for a Kueue queue wait until Kueue is installed and "
                            "the operator restarts", kueue.BASE)
                self.config = dataclasses.replace(self.config, kueue_available=False)
                self.applier.config = self.config
        for informer in self.informers:
            self._tasks.append(asyncio.create_task(informer.run(), name=f"{informer.what}-informer"))
        self._tasks.append(asyncio.create_task(self._scan_strays(), name="stray-scan"))
        if self.leader is None:
            self._start_workers()
        else:
            self._tasks.append(asyncio.create_task(self._lead(), name="leader-election"))

    def _start_workers(self) -> list[asyncio.Task[None]]:
        workers = [asyncio.create_task(self._work(), name=f"reconcile-worker-{i}") for i in range(self.workers)]
        self._tasks.extend(workers)
        return workers

    async def _lead(self) -> None:
        assert self.leader is not None
        await self.leader.acquire()
        workers = self._start_workers()
        try:
            await self.leader.hold()
        except Exception:  # noqa: BLE001 - whatever ends the renewals ends the leadership
            log.exception("leader election failed")
        # Lost: stop acting at once, then let the process end (a fresh start rejoins as a candidate).
        self.leader.leading = False
        for task in workers:
            task.cancel()
        if self.on_leadership_lost is not None:
            self.on_leadership_lost()

    async def stop(self) -> None:
        self.queue.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.events.stop()
        self._tasks.clear()
        if self.leader is not None:  # after the workers are gone: nothing acts once the Lease is free
            try:
                await asyncio.wait_for(self.leader.release(), 5)
            except Exception as exc:  # noqa: BLE001 - a standby then takes over after the lease duration
                log.warning("could not release the Lease: %s", exc)

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers) and self.strays_scanned.is_set()

    def health(self) -> dict[str, Any]:
        return {
            "synced": self.synced,
            "leader": self.leader is None or self.leader.leading,
            "jobs": len(self.jobs),
            "queued": len(self.queue),
            "lastReconcile": self.last_success,
        }

    # -- inputs -------------------------------------------------------------------------------
    def job_event(self, event_type: Optional[str], job: dict[str, Any]) -> None:
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        if event_type == "DELETED":
            self.jobs.remove(key)
            self.queue.forget(key)
            self.refusals.forget(key)
            self.holders.forget(key)
            self.strays.forget(key)
            self.events.forget(job["metadata"].get("uid"))
            return
        self.jobs.upsert(job)
        self.queue.add(key)

    def _stray(self, pod: dict[str, Any]) -> None:
        """A member whose labels were changed so that the pod watch no longer sees it: it is still the
        job's (its ownerReference says so), so it is kept here and handled as a stale member."""
        key = job_owner(pod)
        if key is not None and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.strays.put(key, {**pod, "kind": "Pod"})
            self.queue.add(key)

    def _maybe_stray(self, pod: dict[str, Any]) -> None:
        """The pod watch dropped a member without seeing it being deleted: read it, and keep it as a stray
        if it is still there. The job's next pass waits for the answer."""
        key = job_owner(pod)
        if key is None:
            return
        meta = pod["metadata"]

        async def check() -> None:
            try:
                status, fresh = await self.kube.request("GET", core_path("pods", meta["namespace"], meta["name"]),
                                                        ok_statuses=(404,))
                if status != 404 and fresh["metadata"].get("uid") == meta.get("uid") \
                        and not selected(fresh, naming.CHILD_SELECTOR):
                    self._stray(fresh)
            except Exception as exc:  # noqa: BLE001 - the next relist or restart's scan finds it
                log.warning("could not read pod %s/%s: %s", meta["namespace"], meta["name"], exc)
            finally:
                self.queue.add(key)

        task = asyncio.create_task(check())
        self._checks.setdefault(key, set()).add(task)
        task.add_done_callback(lambda t: self._checks.get(key, set()).discard(t))

    async def _scan_strays(self) -> None:
        """Once at start: members that lost their labels while no operator watched (one paginated list
        of the pods the watch does not select, keeping only those an MSJob owns)."""
        selector = f"{naming.OPERATOR_NAME_LABEL}!={naming.OPERATOR_NAME}"
        delay = 0.5
        while True:
            try:
                for path in self._paths("pods"):
                    items, _ = await self.kube.list(path, selector)
                    for pod in items:
                        self._stray(pod)
                self.strays_scanned.set()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried like the informers' lists
                log.warning("listing unlabelled pods failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # -- workers ------------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            metrics.QUEUE_DEPTH.set(len(self.queue))
            try:
                refused = await self.reconcile_key(key)
                if refused:
                    self.queue.retry(key)  # look again soon, then less and less often
                else:
                    self.queue.succeeded(key)
            except asyncio.CancelledError:
                raise
            except StatusConflict:
                self.queue.add(key)  # the job changed under the pass: plan again from the new one
            except Exception as exc:
                metrics.RECONCILE_ERRORS.inc()
                delay = self.queue.retry(key)
                JobLog(log, {"job": "/".join(key)}).warning("reconcile failed (%s); retrying in %.1f s", exc, delay,
                                                            exc_info=not isinstance(exc, KubeError))
            finally:
                self.queue.done(key)

    async def reconcile_key(self, key: Key) -> bool:
        """One pass over one job; True while some create of it stands refused."""
        for informer in self.informers:
            await informer.synced.wait()
        await self.strays_scanned.wait()
        pending = self._checks.pop(key, set())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        job = self.jobs.get(key)
        if job is None or not ours(job) or job["metadata"].get("deletionTimestamp"):
            return False
        started = time.monotonic()
        jlog = JobLog(log, {"job": "/".join(key)})
        await self._refresh(key)
        plan = self._plan(job, key)  # one plan per pass, applied in order (prerequisites first)
        refused = await self.applier.apply(key, job, plan, jlog)
        if plan.continues:
            self.queue.again(key)  # its pods wait for what this pass created: next, before other jobs
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after + 0.05)
        if self.holders.for_job(key) or self.strays.for_job(key):
            self.queue.add_after(key, RECHECK_SECONDS)
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        self.last_success = time.time()
        metrics.LAST_RECONCILE.set(self.last_success)
        return refused

    async def _refresh(self, key: Key) -> None:
        """Read again what no watch shows: holders of the job's names and its stray members."""
        def foreign(obj: dict[str, Any]) -> bool:
            return not self._owned_by(obj, key)

        def stray(obj: dict[str, Any]) -> bool:
            return job_owner(obj) == key and not selected(obj, naming.CHILD_SELECTOR)

        checks: tuple[tuple[ObjectsByJob, Callable[[dict[str, Any]], bool]], ...] = (
            (self.holders, foreign), (self.strays, stray))
        for found, keep in checks:
            for obj in found.for_job(key):
                kind, name = obj.get("kind") or "Pod", obj["metadata"]["name"]
                plural = "services" if kind == "Service" else "pods"
                status, fresh = await self.kube.request("GET", core_path(plural, key[0], name), ok_statuses=(404,))
                if status == 404 or not keep(fresh) or fresh["metadata"].get("uid") != obj["metadata"].get("uid"):
                    found.drop(key, kind, name)
                else:
                    found.put(key, {**fresh, "kind": kind})

    def _owned_by(self, obj: dict[str, Any], key: Key) -> bool:
        job = self.jobs.get(key)
        uid = job["metadata"].get("uid") if job else None
        return any(ref.get("controller") and ref.get("uid") == uid
                   for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])

    def _plan(self, job: dict[str, Any], key: Key) -> Plan:
        pods = self.pods.for_job(key)
        known = {pod["metadata"]["name"] for pod in pods}
        strays = [pod for pod in self.strays.for_job(key) if pod["metadata"]["name"] not in known]
        holders = [obj for obj in self.holders.for_job(key) if obj["metadata"]["name"] not in known]
        return reconcile(job, [*pods, *strays], self.services.for_job(key),
                         dt.datetime.now(dt.timezone.utc), self.config, self.podgroups.for_job(key),
                         refusals=self.refusals.for_job(key), holders=holders,
                         configmaps=self.configmaps.for_job(key), leases=self.leases.for_job(key),
                         kueue=self.kueue.observed(key) if self.kueue is not None else KueueObserved())
