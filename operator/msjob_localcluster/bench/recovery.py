"""Recovery: one worker of a big running job fails; how long until its whole gang is back.

The clock starts when the watch reports the worker Failed (the moment the operator can know), and stops
when every pod of the new attempt exists, and when all of them run. A gang restart deletes every old pod
first (names are reused), so the times include the deletion of the old gang; that part is reported too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from msjob_operator.api import naming
from msjob_operator.controller.kube import Kube, core_path

from .common import PodWatch, create_job, delete_namespace, job_body, new_namespace, seconds
from .sizes import plain_pods, plain_services

# The local cluster's kwok stages: a running pod with an exit code exits (after run-seconds since its start).
EXIT_CODE = "kwok.msjob.test/exit-code"
RUN_SECONDS = "kwok.msjob.test/run-seconds"


async def measure_recovery(kube: Kube, workers: int, timeout: float, settle: bool = True) -> dict[str, Any]:
    name, pods = "recover", workers + 1
    namespace = await new_namespace(kube, "bench-recovery")
    watch = await PodWatch(kube, namespace, f"{naming.JOB_NAME_LABEL}={name}").start()
    try:
        await create_job(kube, namespace, job_body(name, workers))
        await watch.until(lambda w: w.running["0"] >= pods, timeout, f"{pods} pods of attempt 0 Running")
        victim = naming.pod_name(name, "Worker", workers // 2)
        await kube.request("PATCH", core_path("pods", namespace, victim),
                           {"metadata": {"annotations": {EXIT_CODE: "1", RUN_SECONDS: "0"}}},
                           content_type="application/merge-patch+json")
        await watch.until(lambda w: victim in w.failed_at, timeout, f"{victim} Failed")
        failed = watch.failed_at[victim]

        def new(w: PodWatch) -> int:
            return sum(n for attempt, n in w.pods.items() if attempt != "0")

        deleting = await watch.until(lambda w: w.terminating["0"] + (pods - w.pods["0"]) >= pods, timeout,
                                     "every old pod being deleted")
        gone = await watch.until(lambda w: w.pods["0"] == 0, timeout, "the old gang gone")
        created = await watch.until(lambda w: new(w) >= pods, timeout, "the new gang created")
        running = await watch.until(
            lambda w: sum(n for attempt, n in w.running.items() if attempt != "0") >= pods, timeout,
            "the new gang Running")
        return {"workers": workers, "pods": pods, "victim": victim,
                "old_deleting_s": seconds(deleting - failed), "old_gone_s": seconds(gone - failed),
                "created_s": seconds(created - failed), "running_s": seconds(running - failed),
                "created_after_old_gone_s": seconds(created - gone)}
    finally:
        await watch.stop()
        await delete_namespace(kube, namespace, wait=timeout if settle else 0)


async def measure_recovery_limit(kube: Kube, workers: int, timeout: float, settle: bool = True) -> dict[str, Any]:
    """The same restart done by a plain bulk client (64 in flight), as the physical limit: delete every
    pod of a running gang (with the job's Services, whose endpoints follow), wait until they are gone
    (names are reused), create them again."""
    name, count = "limit", workers + 1
    namespace = await new_namespace(kube, "bench-recovery-limit")
    watch = await PodWatch(kube, namespace, f"{naming.JOB_NAME_LABEL}={name}").start()
    try:
        await asyncio.gather(*(kube.create("services", namespace, svc)
                               for svc in plain_services(name, workers, namespace)))
        old = plain_pods(name, workers)
        for pod in old:
            pod["metadata"]["namespace"] = namespace
        await asyncio.gather(*(kube.create("pods", namespace, pod) for pod in old))
        await watch.until(lambda w: w.running["0"] >= count, timeout, f"{count} plain pods Running")
        started = time.monotonic()
        await asyncio.gather(*(kube.request("DELETE", core_path("pods", namespace, pod["metadata"]["name"]),
                                            ok_statuses=(404,)) for pod in old))
        deleting = time.monotonic()
        gone = await watch.until(lambda w: w.pods["0"] == 0, timeout, "the plain pods gone")
        new = plain_pods(name, workers, attempt=1)
        for pod in new:
            pod["metadata"]["namespace"] = namespace
        await asyncio.gather(*(kube.create("pods", namespace, pod) for pod in new))
        created = await watch.until(lambda w: w.pods["1"] >= count, timeout, "the plain pods created again")
        running = await watch.until(lambda w: w.running["1"] >= count, timeout, "the plain pods Running again")
        return {"old_deleting_s": seconds(deleting - started), "old_gone_s": seconds(gone - started),
                "created_s": seconds(created - started), "running_s": seconds(running - started)}
    finally:
        await watch.stop()
        await delete_namespace(kube, namespace, wait=timeout if settle else 0)


def table(r: dict[str, Any]) -> str:
    return "\n".join([
        f"recovery, {r['workers']} workers: one worker fails; seconds from its Failed phase in the watch to",
        f"  every old pod being deleted {r['old_deleting_s']:>7.2f} s",
        f"  the old gang gone           {r['old_gone_s']:>7.2f} s",
        f"  all new pods created        {r['created_s']:>7.2f} s   "
        f"({r['created_after_old_gone_s']:.2f} s after the old gang was gone)",
        f"  all new pods Running        {r['running_s']:>7.2f} s",
        *([f"the same restart by a plain bulk client (the limit): deleted {r['limit']['old_deleting_s']:.2f} s, "
           f"gone {r['limit']['old_gone_s']:.2f} s, created {r['limit']['created_s']:.2f} s, "
           f"Running {r['limit']['running_s']:.2f} s; ratio (created) {r['ratio_created']:.2f}"]
          if "limit" in r else []),
    ])
