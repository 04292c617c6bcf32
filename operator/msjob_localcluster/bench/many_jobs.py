"""Many jobs: a burst of small jobs created at once, and the time per new job next to 100 or 1000 resident ones.

Resident jobs are small jobs whose pods keep running (a fake pod without an exit code runs forever), so the
operator holds them all in its caches while a new job is measured from `create MSJob` to all pods Running.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from msjob_operator.api import naming
from msjob_operator.controller.kube import Kube

from .common import PodWatch, create_job, delete_namespace, job_body, new_namespace, quiet_requests, seconds


async def measure_concurrent(kube: Kube, jobs: int, workers: int, timeout: float,
                             settle: bool = True) -> dict[str, Any]:
    """`jobs` jobs of `workers` workers created at once: seconds until all their pods are Running."""
    pods = jobs * (workers + 1)
    namespace = await new_namespace(kube, "bench-concurrent")
    watch = await PodWatch(kube, namespace, naming.CHILD_SELECTOR).start()
    try:
        started = time.monotonic()
        await asyncio.gather(*(create_job(kube, namespace, job_body(f"burst-{i}", workers)) for i in range(jobs)))
        submitted = time.monotonic()
        created = await watch.until(lambda w: w.total >= pods, timeout, f"{pods} pods created")
        running = await watch.until(lambda w: w.total_running >= pods, timeout, f"{pods} pods Running")
        return {"jobs": jobs, "workers": workers, "pods": pods, "submitted_s": seconds(submitted - started),
                "created_s": seconds(created - started), "running_s": seconds(running - started)}
    finally:
        await watch.stop()
        await delete_namespace(kube, namespace, wait=timeout if settle else 0)


class ResidentJobs:
    """A namespace of running jobs that grows on demand; measures new jobs against the ones already there."""

    def __init__(self, kube: Kube, workers: int, timeout: float, metrics: Callable[[], str], settle: bool = True):
        self.kube, self.workers, self.timeout, self.metrics, self.settle = kube, workers, timeout, metrics, settle
        self.namespace = ""
        self.catch_up_s = 0.0  # after the last growth: from all pods Running until the operator was quiet
        self.jobs = 0
        self._watch: PodWatch | None = None

    @property
    def watch(self) -> PodWatch:
        """The namespace's pods (from ``async with`` on)."""
        if self._watch is None:
            raise RuntimeError("ResidentJobs is used outside its `async with`")
        return self._watch

    async def __aenter__(self) -> "ResidentJobs":
        self.namespace = await new_namespace(self.kube, "bench-resident")
        self._watch = await PodWatch(self.kube, self.namespace, naming.CHILD_SELECTOR).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.watch.stop()
        await delete_namespace(self.kube, self.namespace, wait=self.timeout if self.settle else 0)

    @property
    def pods(self) -> int:
        return self.watch.total

    async def grow_to(self, jobs: int) -> None:
        """Create jobs until there are `jobs`, wait until all their pods run and the operator is quiet.

        Resident means settled: all pods Running and the operator done with them (statuses written,
        Events posted), so a new job is timed against the jobs' presence, not behind their backlog.
        """
        if jobs <= self.jobs:
            return
        names = [f"resident-{i}" for i in range(self.jobs, jobs)]
        await asyncio.gather(*(create_job(self.kube, self.namespace, job_body(n, self.workers)) for n in names))
        self.jobs = jobs
        expected = self.jobs * (self.workers + 1)
        running = await self.watch.until(lambda w: w.total_running >= expected, self.timeout,
                                         f"{expected} resident pods Running")
        await self.quiet()
        self.catch_up_s = time.monotonic() - running

    async def quiet(self) -> None:
        if self.settle:
            await quiet_requests(self.metrics, self.timeout)

    async def time_new_job(self) -> tuple[float, float]:
        """Seconds from `create MSJob` to all its pods created (the operator's part) and to all Running
        (plus the scheduler's and the nodes'); the job stays, one more resident."""
        name = f"resident-{self.jobs}"
        self.jobs += 1
        expected = self.jobs * (self.workers + 1)
        started = time.monotonic()
        await create_job(self.kube, self.namespace, job_body(name, self.workers))
        created = await self.watch.until(lambda w: w.total >= expected, self.timeout, f"{name} created")
        running = await self.watch.until(lambda w: w.total_running >= expected, self.timeout, f"{name} Running")
        return created - started, running - started


async def measure_resident(resident: ResidentJobs, counts: list[int], new_jobs: int) -> list[dict[str, Any]]:
    """For each count of resident jobs (ascending): the mean time per new job, one at a time."""
    rows = []
    for count in counts:
        await resident.grow_to(count)
        resident_jobs, resident_pods = resident.jobs, resident.pods
        created, running = [], []
        for _ in range(new_jobs):
            c, r = await resident.time_new_job()
            created.append(c)
            running.append(r)
            await resident.quiet()  # the next one starts from quiet too
        rows.append({"resident_jobs": resident_jobs, "resident_pods": resident_pods, "new_jobs": new_jobs,
                     "mean_created_s": seconds(sum(created) / new_jobs), "mean_s": seconds(sum(running) / new_jobs),
                     "max_s": seconds(max(running)), "catch_up_s": seconds(resident.catch_up_s)})
    for row in rows:
        row["ratio_created_to_first"] = round(row["mean_created_s"] / max(rows[0]["mean_created_s"], 1e-3), 2)
        row["ratio_to_first"] = round(row["mean_s"] / max(rows[0]["mean_s"], 1e-3), 2)
    return rows


def table(concurrent: dict[str, Any] | None, resident: list[dict[str, Any]]) -> str:
    lines = []
    if concurrent:
        lines.append(f"{concurrent['jobs']} jobs of {concurrent['workers']} workers at once "
                     f"({concurrent['pods']} pods): all created {concurrent['created_s']:.2f} s, "
                     f"all Running {concurrent['running_s']:.2f} s")
    if resident:
        lines.append(f"{'resident jobs':>14} {'resident pods':>14} {'new job: created':>17} {'ratio':>6} "
                     f"{'running':>8} {'max':>6} {'ratio':>6} {'caught up after':>16}")
        lines += [f"{r['resident_jobs']:>14} {r['resident_pods']:>14} {r['mean_created_s']:>16.2f}s "
                  f"{r['ratio_created_to_first']:>6.2f} {r['mean_s']:>7.2f}s {r['max_s']:>5.2f}s "
                  f"{r['ratio_to_first']:>6.2f} {r['catch_up_s']:>15.2f}s" for r in resident]
    return "\n".join(lines)
