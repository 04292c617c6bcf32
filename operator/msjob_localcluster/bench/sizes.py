"""Big jobs: from `create MSJob` to all pods created and Running, next to the physical limit.

For each size, on the same cluster in the same run:
- limit: a plain asyncio client creating the same pods (64 in flight) and Services;
- operator: from `create MSJob` to all pods created, and to all pods Running.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, Awaitable, Callable

from msjob_operator.api import naming
from msjob_operator.api.models import MSJobSpec
from msjob_operator.builders.env import replica_count
from msjob_operator.builders.pods import build_pod
from msjob_operator.builders.services import build_services
from msjob_operator.controller.kube import Kube

from .common import PodWatch, create_job, delete_namespace, job_body, new_namespace


async def _measure(kube: Kube, prefix: str, name: str, pods: int, create: Callable[[str], Awaitable[object]],
                   timeout: float, settle: bool) -> dict[str, Any]:
    """In a fresh namespace: start the clock, `create(namespace)`, wait until all pods run, clean up."""
    namespace = await new_namespace(kube, prefix)
    watch = await PodWatch(kube, namespace, f"{naming.JOB_NAME_LABEL}={name}").start()
    try:
        started = time.monotonic()
        await create(namespace)
        created = await watch.until(lambda w: w.total >= pods, timeout, f"{pods} pods created")
        running = await watch.until(lambda w: w.total_running >= pods, timeout, f"{pods} pods Running")
    finally:
        await watch.stop()
        await delete_namespace(kube, namespace, wait=timeout if settle else 0)
    return {"created": created - started, "running": running - started}


def _plain_job(name: str, workers: int) -> tuple[dict[str, Any], MSJobSpec]:
    job = {**job_body(name, workers), "metadata": {"name": name, "namespace": "bench", "uid": "none"}}
    return job, MSJobSpec.model_validate(job["spec"])


def plain_services(name: str, workers: int, namespace: str) -> list[dict[str, Any]]:
    """The Services the operator would build for a job (their endpoints are part of the work when
    pods come and go), without owner or operator label."""
    services = build_services(*_plain_job(name, workers))
    for svc in services:
        svc["metadata"].pop("ownerReferences", None)
        svc["metadata"]["namespace"] = namespace
        for labels in (svc["metadata"].get("labels") or {}, svc["spec"].get("selector") or {}):
            labels.pop(naming.OPERATOR_NAME_LABEL, None)
    return services


def plain_pods(name: str, workers: int, attempt: int = 0) -> list[dict[str, Any]]:
    """The pods the operator would build for a job, without owner or operator label: a plain client's."""
    job, spec = _plain_job(name, workers)
    replicas = dict(spec.ms_replica_specs.items())
    pods = [build_pod(job, spec, rtype, replicas[rtype], i, attempt=attempt, scheduler_ip="10.0.0.10")
            for rtype in ("Scheduler", "Worker") for i in range(replica_count(spec, rtype))]
    for pod in pods:
        pod["metadata"].pop("ownerReferences")  # no owner: the garbage collector must leave them alone
        pod["metadata"]["labels"].pop(naming.OPERATOR_NAME_LABEL)  # and the operator must not see them
    return pods


async def measure_limit(kube: Kube, workers: int, timeout: float, settle: bool = True) -> dict[str, Any]:
    """The same pods and Services, created by a plain bulk client (64 in flight)."""
    name = "limit"
    pods = plain_pods(name, workers)

    async def create(namespace: str) -> None:
        await asyncio.gather(*(kube.create("services", namespace, svc)
                               for svc in plain_services(name, workers, namespace)))
        for pod in pods:
            pod["metadata"]["namespace"] = namespace
        await asyncio.gather(*(kube.create("pods", namespace, pod) for pod in pods))

    return await _measure(kube, "bench-limit", name, len(pods), create, timeout, settle)


async def measure_operator(kube: Kube, workers: int, timeout: float, settle: bool = True) -> dict[str, Any]:
    async def create(namespace: str) -> None:
        await create_job(kube, namespace, job_body("bench", workers))

    return await _measure(kube, "bench-operator", "bench", workers + 1, create, timeout, settle)


async def run_sizes(kubeconfig: str, sizes: list[int], timeout: float, settle: bool = True,
                    repeat: int = 1) -> list[dict[str, Any]]:
    """Each size ``repeat`` times, the limit and the operator in turn (both see the same machine); the row
    reports the medians, and the ratio of the medians, with every measurement kept beside them."""
    kube = await Kube.connect(kubeconfig, max_in_flight=64)
    rows = []
    try:
        for workers in sizes:
            limits, operators = [], []
            for _ in range(max(repeat, 1)):
                limits.append(await measure_limit(kube, workers, timeout, settle))
                operators.append(await measure_operator(kube, workers, timeout, settle))
            limit = {k: statistics.median(m[k] for m in limits) for k in ("created", "running")}
            operator = {k: statistics.median(m[k] for m in operators) for k in ("created", "running")}
            rows.append({
                "workers": workers, "pods": workers + 1, "measurements": len(limits),
                "limit_created_s": round(limit["created"], 2), "limit_running_s": round(limit["running"], 2),
                "operator_created_s": round(operator["created"], 2),
                "operator_running_s": round(operator["running"], 2),
                "ratio_created": round(operator["created"] / max(limit["created"], 1e-3), 2),
                "limit_created_each_s": [round(m["created"], 2) for m in limits],
                "operator_created_each_s": [round(m["created"], 2) for m in operators],
            })
            print(_row(rows[-1]), flush=True)
    finally:
        await kube.close()
    return rows


HEADER = (f"{'workers':>8} {'limit: created':>15} {'operator: created':>18} {'ratio':>6} "
          f"{'limit: running':>15} {'operator: running':>18}")


def _row(r: dict[str, Any]) -> str:
    return (f"{r['workers']:>8} {r['limit_created_s']:>14.2f}s {r['operator_created_s']:>17.2f}s "
            f"{r['ratio_created']:>6.2f} {r['limit_running_s']:>14.2f}s {r['operator_running_s']:>17.2f}s")
