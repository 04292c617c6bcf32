"""The operator's footprint: memory and CPU of its process with many jobs resident, and its API requests per job.

Memory and CPU come from /proc/<pid> of the operator process (VmRSS, VmHWM; utime + stime). Requests come
from the operator's own counter `msjob_api_requests_total{verb,resource}` on its metrics endpoint.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from msjob_operator.api import naming
from msjob_operator.controller.kube import Kube, job_path

from .common import PodWatch, create_job, delete_namespace, job_body, new_namespace, quiet_requests, until_gone


def process_usage(pid: int) -> dict[str, Any]:
    """RSS and peak RSS in MiB, and CPU seconds (user + system) of a live process."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)

    def kib(field: str) -> int:
        return int(status[field].split()[0])  # "123456 kB"

    # Fields after the command name, which is in parentheses and may contain spaces; utime and stime are 14 and 15.
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(stat[11]) + int(stat[12])
    return {"rss_mib": round(kib("VmRSS") / 1024, 1), "peak_rss_mib": round(kib("VmHWM") / 1024, 1),
            "cpu_s": round(ticks / os.sysconf("SC_CLK_TCK"), 2)}


async def measure_footprint(pid: int, jobs: int, pods: int, since: dict[str, Any],
                            idle_seconds: float = 10) -> dict[str, Any]:
    """With `jobs` jobs / `pods` pods resident: memory, CPU since `since` (a process_usage), CPU while idle."""
    now = process_usage(pid)
    await asyncio.sleep(idle_seconds)  # nothing changes: what does holding the jobs cost?
    idle = process_usage(pid)
    return {"jobs": jobs, "pods": pods, "rss_mib": now["rss_mib"], "peak_rss_mib": now["peak_rss_mib"],
            "cpu_s_total": now["cpu_s"], "cpu_s_bringing_up": round(now["cpu_s"] - since["cpu_s"], 2),
            "idle_cpu_percent": round(100 * (idle["cpu_s"] - now["cpu_s"]) / idle_seconds, 1)}


async def measure_lifecycle_requests(kube: Kube, metrics: Callable[[], str], workers: int,
                                     timeout: float) -> dict[str, Any]:
    """The operator's requests for one job: create -> Running -> Succeeded -> deleted by its TTL, pods gone."""
    name, pods = "lifecycle", workers + 1
    namespace = await new_namespace(kube, "bench-lifecycle")
    watch = await PodWatch(kube, namespace, f"{naming.JOB_NAME_LABEL}={name}").start()
    try:
        before = await quiet_requests(metrics, timeout)
        body = job_body(name, workers,
                        annotations={"kwok.msjob.test/exit-code": "0", "kwok.msjob.test/run-seconds": "3"},
                        runPolicy={"ttlSecondsAfterFinished": 0})
        await create_job(kube, namespace, body)
        await watch.until(lambda w: len(w.ever_running) >= pods, timeout, f"{pods} pods Running")
        ran = len(watch.ever_running)
        # The operator deletes it once Succeeded (TTL 0).
        if not await until_gone(kube, job_path(namespace, name), timeout):
            raise TimeoutError(f"MSJob {name} not deleted within {timeout} s (ttlSecondsAfterFinished: 0)")
        await watch.until(lambda w: w.total == 0, timeout, "the job's pods gone")
        after = await quiet_requests(metrics, timeout)
    finally:
        await watch.stop()
        await delete_namespace(kube, namespace)
    by_verb: Counter[str] = Counter()
    detail = {}
    for (verb, resource), n in sorted((after - before).items()):
        by_verb[verb] += n
        detail[f"{verb} {resource}"] = n
    return {"workers": workers, "pods": pods, "pods_seen_running": ran, "total": sum(by_verb.values()),
            "by_verb": dict(sorted(by_verb.items())), "by_verb_resource": detail}


def table(footprint: dict[str, Any] | None, requests: dict[str, Any] | None) -> str:
    lines = []
    if footprint:
        f = footprint
        lines.append(f"operator with {f['jobs']} jobs / {f['pods']} pods resident: RSS {f['rss_mib']} MiB "
                     f"(peak {f['peak_rss_mib']} MiB), CPU {f['cpu_s_bringing_up']} s to bring them up "
                     f"({f['cpu_s_total']} s since start), {f['idle_cpu_percent']} % CPU while idle")
    if requests:
        r = requests
        lines.append(f"API requests for one job of {r['workers']} workers, create -> run -> succeed -> cleanup: "
                     f"{r['total']} ({', '.join(f'{v} {n}' for v, n in r['by_verb'].items())})")
        lines += [f"  {what:<32} {n:>5}" for what, n in r["by_verb_resource"].items()]
    return "\n".join(lines)
