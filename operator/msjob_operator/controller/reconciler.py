"""Runs reconcile passes: read the caches, compute a Plan, apply it with bounded concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from typing import Callable, Optional

from prometheus_client.core import GaugeMetricFamily

from .. import naming
from ..builders.podgroup import podgroup_api
from ..reconcile import conditions as cond
from ..settings import DEFAULT, Settings
from ..reconcile.plan import Plan, fmt_time, parse_time, reconcile
from . import metrics
from .informer import Informer
from .kube import Kube, KubeError, core_path
from .leader import LeaderElection
from .queue import WorkQueue
from .store import ChildStore, JobStore, Key

log = logging.getLogger("msjob_operator")

# Fields that change on every pass and alone are no reason to write the status.
_VOLATILE = ("lastReconcileTime",)


def ours(job: dict) -> bool:
    managed_by = (((job.get("spec") or {}).get("runPolicy") or {}).get("managedBy")) or ""
    return managed_by in ("", naming.MANAGED_BY)


def _status_changed(old: dict, new: dict) -> bool:
    strip = lambda s: {k: v for k, v in s.items() if k not in _VOLATILE}  # noqa: E731
    return strip(old or {}) != strip(new)


class JobLog(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        return f"[{self.extra['job']}] {msg}", kwargs


class Controller:
    def __init__(self, kube: Kube, namespaces: Optional[list[str]] = None, workers: int = 16,
                 settings: Settings = DEFAULT, leader: Optional[LeaderElection] = None,
                 on_leadership_lost: Optional[Callable[[], None]] = None):
        self.kube = kube
        # With several replicas only the Lease holder reconciles; the others keep warm caches.
        self.leader = leader
        self.on_leadership_lost = on_leadership_lost
        self.namespaces = namespaces or []
        self.workers = workers
        self.settings = settings
        self.jobs = JobStore()
        self.pods = ChildStore(keep_spec=("nodeName",))  # all the reconcile reads of a pod's spec
        self.services = ChildStore()
        self.podgroups = ChildStore()
        self.queue = WorkQueue()
        self.last_success: Optional[float] = None
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()

        def paths(plural: str) -> list[str]:
            if self.namespaces:
                return [core_path(plural, ns) for ns in self.namespaces]
            return [core_path(plural)]

        self.pod_informer = Informer(kube, paths("pods"), naming.CHILD_SELECTOR, self.pods, self.queue.add, "pods")
        self.service_informer = Informer(kube, paths("services"), naming.CHILD_SELECTOR, self.services, self.queue.add, "services")
        group, version = podgroup_api(settings.gang)
        self.podgroup_base = f"/apis/{group}/{version}"
        self.podgroup_informer = Informer(
            kube, [self.podgroup_path(ns) for ns in self.namespaces] or [self.podgroup_path()],
            naming.CHILD_SELECTOR, self.podgroups, self.queue.add, "podgroups")

    def podgroup_path(self, namespace: Optional[str] = None, name: str = "") -> str:
        path = f"{self.podgroup_base}/namespaces/{namespace}/podgroups" if namespace else f"{self.podgroup_base}/podgroups"
        return f"{path}/{name}" if name else path

    @property
    def informers(self) -> list[Informer]:
        informers = [self.pod_informer, self.service_informer]
        if self.settings.gang_available and self.settings.gang.mode != "never":
            informers.append(self.podgroup_informer)
        return informers

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.settings.gang.mode != "never":
            # Without the gang scheduler's CRD there is nothing to watch: jobs run without a gang.
            status, _ = await self.kube.request("GET", self.podgroup_base, ok_statuses=(404,))
            if status == 404:
                log.warning("%s is not served: gang scheduling is off until the operator restarts", self.podgroup_base)
                self.settings = dataclasses.replace(self.settings, gang_available=False)
        for informer in self.informers:
            self._tasks.append(asyncio.create_task(informer.run(), name=f"{informer.what}-informer"))
        if self.leader is None:
            self._start_workers()
        else:
            self._tasks.append(asyncio.create_task(self._lead(), name="leader-election"))

    def _start_workers(self) -> list[asyncio.Task]:
        workers = [asyncio.create_task(self._work(), name=f"reconcile-worker-{i}") for i in range(self.workers)]
        self._tasks.extend(workers)
        return workers

    async def _lead(self) -> None:
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
        for task in self._tasks + list(self._background):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._tasks.clear()
        if self.leader is not None:  # after the workers are gone: nothing acts once the Lease is free
            try:
                await asyncio.wait_for(self.leader.release(), 5)
            except Exception as exc:  # noqa: BLE001 - a standby then takes over after the lease duration
                log.warning("could not release the Lease: %s", exc)

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers)

    def health(self) -> dict:
        return {
            "synced": self.synced,
            "leader": self.leader is None or self.leader.leading,
            "jobs": len(self.jobs),
            "queued": len(self.queue),
            "lastReconcile": self.last_success,
        }

    # -- inputs -------------------------------------------------------------------------------
    def job_event(self, event_type: Optional[str], job: dict) -> None:
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        if event_type == "DELETED":
            self.jobs.remove(key)
            self.queue.forget(key)
            return
        self.jobs.upsert(job)
        self.queue.add(key)

    # -- workers ------------------------------------------------------------------------------
    async def _work(self) -> None:
        failures: dict[Key, int] = {}
        while True:
            key = await self.queue.get()
            metrics.QUEUE_DEPTH.set(len(self.queue))
            try:
                await self.reconcile_key(key)
                failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.RECONCILE_ERRORS.inc()
                count = failures[key] = failures.get(key, 0) + 1
                delay = min(0.2 * 2 ** count, 30.0)
                JobLog(log, {"job": "/".join(key)}).warning("reconcile failed (%s); retrying in %.1f s", exc, delay,
                                                            exc_info=not isinstance(exc, KubeError))
                self.queue.add_after(key, delay)
            finally:
                self.queue.done(key)

    async def reconcile_key(self, key: Key) -> None:
        for informer in self.informers:
            await informer.synced.wait()
        job = self.jobs.get(key)
        if job is None or not ours(job) or job["metadata"].get("deletionTimestamp"):
            return
        started = time.monotonic()
        jlog = JobLog(log, {"job": "/".join(key)})
        plan = self._plan(job, key)
        if plan.waiting_for_prerequisites and (plan.create_services or plan.create_podgroups or plan.apply_configmaps
                                               or plan.create_objects):
            # Non-scheduler pods need the scheduler Service's ClusterIP in their env, gang-scheduled
            # pods their PodGroup, and rank-table pods the ConfigMap they mount.
            await self._create_services(key, plan.create_services, jlog)
            await self._create_podgroups(key, plan.create_podgroups, jlog)
            await self._apply_configmaps(key, plan.apply_configmaps, jlog)
            await self._create_objects(key, plan.create_objects, jlog)
            plan = self._plan(job, key)
        await self._apply(key, job, plan, jlog)
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        self.last_success = time.time()
        metrics.LAST_RECONCILE.set(self.last_success)

    def _plan(self, job: dict, key: Key) -> Plan:
        return reconcile(job, self.pods.for_job(key), self.services.for_job(key), dt.datetime.now(dt.timezone.utc),
                         self.settings, self.podgroups.for_job(key))

    async def _create_objects(self, key: Key, objects: list[dict], jlog) -> None:
        for body in objects:
            group_version, kind = body["apiVersion"], body["kind"]
            base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            plural = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings"}[kind]
            status, _ = await self.kube.request("POST", f"{base}/namespaces/{key[0]}/{plural}", body, ok_statuses=(409,))
            if status != 409:
                jlog.info("created %s %s", kind, body["metadata"]["name"])

    async def _apply_configmaps(self, key: Key, configmaps: list[dict], jlog) -> None:
        """Write each ConfigMap whole: replace its data, or create it."""
        for body in configmaps:
            path = core_path("configmaps", key[0], body["metadata"]["name"])
            status, _ = await self.kube.request("PATCH", path, {"data": body["data"]},
                                                content_type="application/merge-patch+json", ok_statuses=(404,))
            if status == 404:
                await self.kube.create("configmaps", key[0], body)
                jlog.info("created ConfigMap %s", body["metadata"]["name"])

    async def _create_podgroups(self, key: Key, groups: list[dict], jlog) -> None:
        for group in groups:
            status, created = await self.kube.request("POST", self.podgroup_path(key[0]), group, ok_statuses=(409,))
            if status == 409:
                _, created = await self.kube.request("GET", self.podgroup_path(key[0], group["metadata"]["name"]))
            else:
                jlog.info("created PodGroup %s", group["metadata"]["name"])
            self.podgroups.upsert(created)

    async def _create_services(self, key: Key, services: list[dict], jlog) -> None:
        async def create(svc: dict) -> None:
            created = await self.kube.create("services", key[0], svc)
            if created is None:  # already there: read it so we know its ClusterIP
                created = await self.kube.get("services", key[0], svc["metadata"]["name"])
            else:
                jlog.info("created Service %s", svc["metadata"]["name"])
            if created is not None:
                self.services.upsert(created)
        await asyncio.gather(*(create(svc) for svc in services))

    async def _apply(self, key: Key, job: dict, plan: Plan, jlog) -> None:
        namespace = key[0]
        old_status = job.get("status") or {}
        # The status goes first: a gang restart is recorded (restartCount) before any pod is
        # deleted, so an operator that dies in between resumes the same restart, not a new one.
        if _status_changed(old_status, plan.status):
            plan.status["lastReconcileTime"] = fmt_time(dt.datetime.now(dt.timezone.utc))
            updated = await self.kube.patch_job_status(namespace, key[1], plan.status)
            if updated is None:
                return  # the job is gone
            self.jobs.upsert(updated)
        self._record(namespace, plan, job)

        if plan.create_services:
            await self._create_services(key, plan.create_services, jlog)
        if plan.create_podgroups:
            await self._create_podgroups(key, plan.create_podgroups, jlog)
        if plan.apply_configmaps:
            await self._apply_configmaps(key, plan.apply_configmaps, jlog)
        for name in plan.delete_podgroups:
            await self.kube.request("DELETE", self.podgroup_path(namespace, name), ok_statuses=(404,))
            jlog.info("deleted PodGroup %s", name)

        async def create_pod(pod: dict) -> None:
            created = await self.kube.create("pods", namespace, pod)
            if created is not None:
                self.pods.upsert(created)
                metrics.PODS_CREATED.labels(namespace).inc()

        async def delete_pod(deletion) -> None:
            deleted = await self.kube.delete_pod(namespace, deletion.name, deletion.uid, deletion.grace_seconds)
            metrics.PODS_DELETED.labels(namespace).inc()
            if deleted is not None:
                self.pods.upsert(deleted)

        results = await asyncio.gather(
            *(create_pod(pod) for pod in plan.create_pods),
            *(delete_pod(d) for d in plan.delete_pods),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if plan.create_pods:
            jlog.info("created %d pods", len(plan.create_pods) - sum(1 for r in results[:len(plan.create_pods)] if isinstance(r, BaseException)))
        if plan.delete_pods:
            jlog.info("deleted %d pods", len(plan.delete_pods))
        for event in plan.events:
            (jlog.warning if event.type == "Warning" else jlog.info)("%s: %s", event.reason, event.message)
            self._post_event(job, event.type, event.reason, event.message)
        if plan.delete_job:
            jlog.info("deleting the job: ttlSecondsAfterFinished has passed")
            await self.kube.delete_job(namespace, key[1], job["metadata"]["uid"])
        if errors:
            raise errors[0]
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after + 0.05)

    def _record(self, namespace: str, plan: Plan, job: dict) -> None:
        for transition in plan.transitions:
            what, _, reason = transition.partition(":")
            if what == "created":
                metrics.JOBS_CREATED.labels(namespace).inc()
            elif what == "succeeded":
                metrics.JOBS_SUCCEEDED.labels(namespace).inc()
            elif what == "failed":
                metrics.JOBS_FAILED.labels(namespace, reason).inc()
            elif what == "restarted":
                metrics.JOBS_RESTARTED.labels(namespace, reason).inc()
            elif what == "suspended":
                metrics.JOBS_SUSPENDED.labels(namespace).inc()
            elif what == "stalled":
                metrics.JOBS_STALLED.labels(namespace).inc()
            elif what == "running":
                began = parse_time(plan.status.get("attemptStartTime"))
                if began is not None:
                    seconds = (dt.datetime.now(dt.timezone.utc) - began).total_seconds()
                    metrics.TIME_TO_RUNNING.labels(namespace).observe(max(seconds, 0.0))

    def _post_event(self, job: dict, etype: str, reason: str, message: str) -> None:
        meta = job["metadata"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": job.get("apiVersion"), "kind": job.get("kind"), "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": etype, "reason": reason, "message": message,
            "source": {"component": naming.OPERATOR_NAME},
            "firstTimestamp": now[:19] + "Z", "lastTimestamp": now[:19] + "Z", "count": 1,
            "reportingComponent": naming.MANAGED_BY, "reportingInstance": naming.OPERATOR_NAME,
        }

        async def post() -> None:
            try:
                await self.kube.request("POST", core_path("events", meta["namespace"]), body)
            except Exception as exc:  # an Event is best effort
                log.debug("could not post event %s: %s", reason, exc)

        task = asyncio.create_task(post())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class JobStateCollector:
    """msjob_jobs{namespace,state}: computed from the cache at scrape time."""

    def __init__(self, controller: Controller):
        self.controller = controller

    def describe(self):
        return [GaugeMetricFamily("msjob_jobs", "MSJobs by state.", labels=["namespace", "state"])]

    def collect(self):
        family = GaugeMetricFamily("msjob_jobs", "MSJobs by state.", labels=["namespace", "state"])
        labels = ["namespace", "job"]
        step = GaugeMetricFamily("msjob_job_step", "Last training step reported by worker 0.", labels=labels)
        speed = GaugeMetricFamily("msjob_job_steps_per_second", "Training throughput in steps per second.", labels=labels)
        step_time = GaugeMetricFamily("msjob_job_step_time_seconds", "Duration of the last training step.", labels=labels)
        heartbeat = GaugeMetricFamily("msjob_job_last_step_timestamp_seconds", "Unix time of the last training step.", labels=labels)
        counts: dict[tuple[str, str], int] = {}
        for job in list(self.controller.jobs.values()):
            status = job.get("status") or {}
            state = cond.state(status.get("conditions") or [])
            key = (job["metadata"]["namespace"], state)
            counts[key] = counts.get(key, 0) + 1
            progress = status.get("progress") or {}
            ids = [job["metadata"]["namespace"], job["metadata"]["name"]]
            if progress.get("step") is not None:
                step.add_metric(ids, progress["step"])
            if progress.get("stepsPerSecond") is not None:
                speed.add_metric(ids, progress["stepsPerSecond"])
            if progress.get("stepTimeMs") is not None:
                step_time.add_metric(ids, progress["stepTimeMs"] / 1000)
            beat = parse_time(progress.get("heartbeat"))
            if beat is not None:
                heartbeat.add_metric(ids, beat.timestamp())
        for (namespace, state), count in sorted(counts.items()):
            family.add_metric([namespace, state], count)
        yield from (family, step, speed, step_time, heartbeat)
