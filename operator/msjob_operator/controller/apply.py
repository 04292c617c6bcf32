"""Apply a plan in order: the one status write, then prerequisites, creates and deletes, Events.

What the API server answers is recorded for the next pass: AlreadyExists is success only when the
existing object is the job's own (anything else holds the name, and is reported); a create refused
with a 4xx (quota, admission, an invalid object) is a refusal the job's status shows; a 5xx or a
broken connection is an error, and the pass is retried with the job's backoff.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Optional

from msjob_runtime.progress import parse_time

from ..api import naming
from ..builders.podgroup import podgroup_api
from ..config import Config
from ..reconcile.context import Plan, PodDeletion, fmt_time
from ..reconcile.waiting import Refusal
from . import kueue, metrics
from .events import EventRecorder
from .informer import selected
from .kube import Kube, KubeError, core_path
from .observations import ObjectsByJob, Refusals
from .store import ChildStore, JobStore, Key

log = logging.getLogger("msjob_operator")

# Fields that change on every pass and alone are no reason to write the status.
_VOLATILE = ("lastReconcileTime",)
_PLURALS = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
            "ConfigMap": "configmaps", "Lease": "leases",
            "Workload": "workloads"}  # the Workload API's (its Kueue namesake has plan.create_workloads)
# Children whose existing namesake is read on AlreadyExists: one the job does not own holds the name.
_VERIFIED_KINDS = ("Pod", "Service", "PodGroup")


def collection_path(body: dict[str, Any], namespace: str) -> str:
    """Where objects of ``body``'s kind live in ``namespace``."""
    group_version = body["apiVersion"]
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{base}/namespaces/{namespace}/{_PLURALS[body['kind']]}"


class StatusConflict(Exception):
    """The job changed since the pass read it: the pass is planned again from the new job."""


def status_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in status.items() if k not in _VOLATILE}
    return strip(old or {}) != strip(new)


def refused(exc: BaseException) -> bool:
    """A final answer about the object itself (quota, admission, invalid), not a failure to ask."""
    return isinstance(exc, KubeError) and 400 <= exc.status < 500 and exc.status not in (401, 408, 409, 429)


class Applier:
    def __init__(self, kube: Kube, jobs: JobStore, pods: ChildStore, services: ChildStore, podgroups: ChildStore,
                 refusals: Refusals, holders: ObjectsByJob, events: EventRecorder, config: Config,
                 configmaps: Optional[ChildStore] = None, kueue_workloads: Optional[ChildStore] = None,
                 leases: Optional[ChildStore] = None):
        self.kube = kube
        self.configmaps = configmaps or ChildStore()  # the jobs' own ConfigMaps: a write's response goes in at once
        self.leases = leases or ChildStore()  # the in-place members' Leases
        self.jobs, self.pods, self.services, self.podgroups = jobs, pods, services, podgroups
        self.kueue_workloads = kueue_workloads or ChildStore()
        self.refusals, self.holders, self.events = refusals, holders, events
        self.config = config
        group, version = podgroup_api(config.gang)
        self.podgroup_base = f"/apis/{group}/{version}"

    def podgroup_path(self, namespace: Optional[str] = None, name: str = "") -> str:
        base = self.podgroup_base
        path = f"{base}/namespaces/{namespace}/podgroups" if namespace else f"{base}/podgroups"
        return f"{path}/{name}" if name else path

    # -- the status ---------------------------------------------------------------------------
    async def write_status(self, key: Key, job: dict[str, Any], plan: Plan) -> bool:
        """The status goes first: a gang restart is recorded (restartCount) before any pod is deleted,
        so an operator that dies in between resumes the same restart, not a new one. False: the job is gone."""
        old = job.get("status") or {}
        if not status_changed(old, plan.status):
            return True
        plan.status["lastReconcileTime"] = fmt_time(dt.datetime.now(dt.timezone.utc))
        try:
            updated = await self.kube.patch_job_status(key[0], key[1], old, plan.status,
                                                       job["metadata"].get("resourceVersion"))
        except KubeError as exc:
            if exc.status != 409:
                raise
            fresh = await self.kube.get_job(*key)
            if fresh is not None:
                self.jobs.upsert(fresh)
            raise StatusConflict() from exc
        if updated is None:
            return False
        written = updated.get("status") or {}
        if written != plan.status:
            # The write response is the server's status: anything else than the plan is a stale key, or a
            # field the CRD's schema prunes. Counted, so tests and alerts see it.
            metrics.STATUS_MISMATCHES.inc()
            log.error("[%s/%s] the status on the server differs from the plan: %s", key[0], key[1],
                      {k: (written.get(k), plan.status.get(k)) for k in set(written) | set(plan.status)
                       if written.get(k) != plan.status.get(k)})
        self.jobs.upsert(updated)
        return True

    # -- creates ------------------------------------------------------------------------------
    async def _create(self, key: Key, job: dict[str, Any], kind: str, path: str, body: dict[str, Any],
                      store: Optional[ChildStore]) -> bool:
        """Create one child; True when it exists now as the job's own."""
        name = body["metadata"]["name"]
        try:
            status, created = await self.kube.request("POST", path, body, ok_statuses=(409,))
        except KubeError as exc:
            if not refused(exc):
                raise
            message = (exc.body.get("message") if isinstance(exc.body, dict) else None) or str(exc)
            reason = (exc.body.get("reason") if isinstance(exc.body, dict) else None) or str(exc.status)
            now = fmt_time(dt.datetime.now(dt.timezone.utc))
            if self.refusals.add(key, Refusal(kind, name, exc.status, reason, message, since=now)):
                log.warning("[%s/%s] the API server refused %s %s: %s", key[0], key[1], kind, name, message)
            return False
        self.refusals.clear(key, kind, name)
        if status == 409 and kind not in _VERIFIED_KINDS:
            return True  # named after the job (its reporter's identity, its rank table): taken as is
        if status == 409:
            status, created = await self.kube.request("GET", f"{path}/{name}", ok_statuses=(404,))
            if status == 404 or not isinstance(created, dict):
                return False  # gone again in between: the next pass tries anew
            if not self._ours(created, job):
                self.holders.put(key, {**created, "kind": kind})
                return False
            self.holders.drop(key, kind, name)
        if store is not None and isinstance(created, dict) and selected(created, naming.CHILD_SELECTOR):
            store.upsert(created)
        return True

    @staticmethod
    def _ours(obj: dict[str, Any], job: dict[str, Any]) -> bool:
        return any(ref.get("controller") and ref.get("uid") == job["metadata"]["uid"]
                   for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])

    async def create_prerequisites(self, key: Key, job: dict[str, Any], plan: Plan) -> bool:
        """Services (members need the scheduler's ClusterIP), PodGroups (pods go after their gang),
        ConfigMaps (rank tables are mounted), RBAC objects (the reporter's identity) and the in-place
        members' Leases (their agents report there). False when one the pods need is not there (the
        scheduler Service is not one: pods needing its ClusterIP wait for it)."""
        namespace = key[0]
        await asyncio.gather(*(self._create(key, job, "Service", core_path("services", namespace), svc, self.services)
                               for svc in plan.create_services))
        ready = True
        for group in plan.create_podgroups:
            ready &= await self._create(key, job, "PodGroup", self.podgroup_path(namespace), group, self.podgroups)
        for body in plan.apply_configmaps:
            ready &= await self._write_whole(key, job, body, self.configmaps)
        for body in plan.apply_objects:
            ready &= await self._write_whole(key, job, body, None)
        stores = {"Lease": self.leases}  # the in-place members' Leases are watched: their answers are cached
        created = await asyncio.gather(*(self._create(key, job, body["kind"], collection_path(body, namespace), body,
                                                      stores.get(body["kind"])) for body in plan.create_objects))
        return ready and all(created)

    async def write_workloads(self, key: Key, job: dict[str, Any], plan: Plan) -> None:
        """The job's Kueue Workload (controller/kueue.py): created, or written to, before any pod."""
        for body in plan.create_workloads:
            # Named from the job's UID, so AlreadyExists is our own; refusals, as ("Workload", name), show in status.
            await self._create(key, job, "Workload", kueue.path("workloads", key[0]), body, self.kueue_workloads)
        for change in plan.workload_writes:
            if not await kueue.write(self.kube, key, change, self.kueue_workloads):
                raise StatusConflict()  # the Workload changed under the pass: plan again from the new one

    async def _write_whole(self, key: Key, job: dict[str, Any], body: dict[str, Any],
                           store: Optional[ChildStore]) -> bool:
        """Write what an object holds (all but its metadata: a ConfigMap's data, a Role's rules), or create
        it when it is missing (a refusal is recorded as for any create)."""
        path = collection_path(body, key[0])
        content = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}
        status, written = await self.kube.request("PATCH", f"{path}/{body['metadata']['name']}", content,
                                                  content_type="application/merge-patch+json", ok_statuses=(404,))
        if status == 404:
            return await self._create(key, job, body["kind"], path, body, store)
        if store is not None and isinstance(written, dict) and selected(written, naming.CHILD_SELECTOR):
            store.upsert(written)
        return True

    # -- the plan -------------------------------------------------------------------------------
    async def apply(self, key: Key, job: dict[str, Any], plan: Plan,
                    jlog: "logging.LoggerAdapter[logging.Logger]") -> bool:
        """Apply everything; True while some create of the job stands refused (its backoff decides the next look)."""
        namespace = key[0]
        if not await self.write_status(key, job, plan):
            return False  # the job is gone
        self.record(namespace, plan)
        await self.write_workloads(key, job, plan)
        if not await self.create_prerequisites(key, job, plan):
            # A PodGroup, ConfigMap or RBAC object the pods need is not there: no pod this pass.
            plan.create_pods.clear()
        for name in plan.delete_podgroups:
            await self.kube.request("DELETE", self.podgroup_path(namespace, name), ok_statuses=(404,))
            jlog.info("deleted PodGroup %s", name)

        async def create_pod(pod: dict[str, Any]) -> bool:
            created = await self._create(key, job, "Pod", core_path("pods", namespace), pod, self.pods)
            if created:
                metrics.PODS_CREATED.labels(namespace).inc()
            return created

        results = await asyncio.gather(*(create_pod(pod) for pod in plan.create_pods),
                                       *(self._delete_pod(namespace, d) for d in plan.delete_pods),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if plan.create_pods:
            jlog.info("created %d pods", sum(1 for r in results[:len(plan.create_pods)] if r is True))
        if plan.delete_pods:
            jlog.info("deleted %d pods", len(plan.delete_pods))
        for event in plan.events:
            (jlog.warning if event.type == "Warning" else jlog.info)("%s: %s", event.reason, event.message)
            self.events.post(job, event.type, event.reason, event.message)
        if plan.delete_job:
            jlog.info("deleting the job: ttlSecondsAfterFinished has passed")
            await self.kube.delete_job(namespace, key[1], job["metadata"]["uid"])
        if errors:
            raise errors[0]
        return bool(self.refusals.for_job(key))

    async def _delete_pod(self, namespace: str, deletion: PodDeletion) -> None:
        deleted = await self.kube.delete_pod(namespace, deletion.name, deletion.uid, deletion.grace_seconds)
        metrics.PODS_DELETED.labels(namespace).inc()
        # Only a pod the watch sees goes into the cache: the watch tells when it is gone.
        if deleted is not None and selected(deleted, naming.CHILD_SELECTOR):
            self.pods.upsert(deleted)

    @staticmethod
    def record(namespace: str, plan: Plan) -> None:
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
            elif what == "restart-phase":  # restart-phase:<strategy>:<phase>:<seconds>
                strategy, phase, taken = reason.split(":")
                metrics.RESTART_PHASE_SECONDS.labels(namespace, strategy, phase).observe(float(taken))
            elif what == "running":
                began = parse_time(plan.status.get("attemptStartTime"))
                if began is not None:
                    seconds = (dt.datetime.now(dt.timezone.utc) - began).total_seconds()
                    metrics.TIME_TO_RUNNING.labels(namespace).observe(max(seconds, 0.0))

