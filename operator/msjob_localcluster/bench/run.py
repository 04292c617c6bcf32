"""The operator at scale, measured on a local cluster. Prints tables, writes JSON.

Scenarios (all by default; `--scenarios` picks some, the size flags keep a run cheap):
  sizes       big jobs: create -> all pods created / Running, next to a plain bulk client (the limit)
  recovery    one worker of a big job fails: seconds until the new gang is created / Running (Recreate),
              and until the new epoch is released / runs (InPlace, the agents' API side played),
              beside the floors of the acknowledgements (a patch per member: of its pod, of a Lease)
  requests    the operator's API requests for one job's whole life, by verb
  concurrent  many small jobs created at once: seconds until all their pods run
  resident    time per new job with 100 and with 1000 jobs already running
  footprint   the operator's RSS and CPU seconds with the resident jobs (1000 jobs / 5000 pods)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from msjob_operator.controller.kube import Kube

from . import footprint, inplace, many_jobs, recovery
from .sizes import HEADER, run_sizes

SCENARIOS = ("sizes", "recovery", "requests", "concurrent", "resident", "footprint")


@dataclass
class Options:
    scenarios: tuple[str, ...] = SCENARIOS
    sizes: list[int] = field(default_factory=lambda: [8, 128, 512, 1024])
    repeat: int = 3  # measurements per size; the row reports their median
    recovery_workers: int = 512
    lifecycle_workers: int = 4
    concurrent_jobs: int = 200
    job_workers: int = 4
    resident: list[int] = field(default_factory=lambda: [100, 1000])
    new_jobs: int = 3
    idle_seconds: float = 10
    timeout: float = 600
    # Wait until a scenario's namespace is gone before the next one, so that deleting thousands of pods
    # does not load the next measurement, and time new jobs only once the operator is quiet (small runs
    # next to other work need not).
    settle: bool = True


def load() -> dict[str, Any]:
    """The machine's load while we measure: other work on the same cores slows everything down."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return {"loadavg_1m": float(one), "loadavg_5m": float(five), "loadavg_15m": float(fifteen), "cpus": os.cpu_count()}


async def run_scenarios(kubeconfig: str, options: Options, operator_pid: int,
                        metrics: Callable[[], str]) -> dict[str, Any]:
    """Run the chosen scenarios one after another against an operator that is already running."""
    chosen = set(options.scenarios)
    results: dict[str, Any] = {"load_before": load()}
    if "sizes" in chosen:
        print(HEADER, flush=True)
        results["results"] = await run_sizes(kubeconfig, options.sizes, options.timeout, options.settle,
                                             repeat=options.repeat)
    kube = await Kube.connect(kubeconfig, max_in_flight=64)
    try:
        if "recovery" in chosen:
            rec = await recovery.measure_recovery(kube, options.recovery_workers, options.timeout, options.settle)
            rec["limit"] = await recovery.measure_recovery_limit(kube, options.recovery_workers, options.timeout,
                                                                 options.settle)
            rec["ratio_created"] = round(rec["created_s"] / max(rec["limit"]["created_s"], 1e-3), 2)
            rec["in_place"] = await inplace.measure_in_place(kube, kubeconfig, options.recovery_workers,
                                                             options.timeout, metrics, options.settle)
            results["recovery"] = rec
            print(recovery.table(results["recovery"]), flush=True)
            print(inplace.table(rec["in_place"]), flush=True)
            print(f"failure -> barrier lifted (InPlace) {rec['in_place']['barrier_lifted_s']:.2f} s; failure -> "
                  f"all new pods created (Recreate) {rec['created_s']:.2f} s, by a plain bulk client (the limit) "
                  f"{rec['limit']['created_s']:.2f} s", flush=True)
        if "requests" in chosen:
            results["lifecycle_requests"] = await footprint.measure_lifecycle_requests(
                kube, metrics, options.lifecycle_workers, options.timeout)
            print(footprint.table(None, results["lifecycle_requests"]), flush=True)
        if "concurrent" in chosen:
            results["concurrent"] = await many_jobs.measure_concurrent(
                kube, options.concurrent_jobs, options.job_workers, options.timeout, options.settle)
            print(many_jobs.table(results["concurrent"], []), flush=True)
        if chosen & {"resident", "footprint"}:
            since = footprint.process_usage(operator_pid)
            resident_jobs = many_jobs.ResidentJobs(kube, options.job_workers, options.timeout, metrics, options.settle)
            async with resident_jobs as resident:
                if "resident" in chosen:
                    results["resident"] = await many_jobs.measure_resident(resident, options.resident, options.new_jobs)
                    print(many_jobs.table(None, results["resident"]), flush=True)
                if "footprint" in chosen:
                    await resident.grow_to(max(options.resident))
                    results["footprint"] = await footprint.measure_footprint(
                        operator_pid, resident.jobs, resident.pods, since, options.idle_seconds)
                    print(footprint.table(results["footprint"], None), flush=True)
    finally:
        await kube.close()
    results["load_after"] = load()
    return results


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msjob_localcluster.bench", description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, from the list below")
    parser.add_argument("--sizes", default="8,128,512,1024", help="sizes: worker counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="sizes: measurements per size (the median is reported)")
    parser.add_argument("--recovery-workers", type=int, default=512)
    parser.add_argument("--lifecycle-workers", type=int, default=4, help="requests: workers of the job")
    parser.add_argument("--concurrent-jobs", type=int, default=200)
    parser.add_argument("--job-workers", type=int, default=4, help="workers of each concurrent or resident job")
    parser.add_argument("--resident", default="100,1000",
                        help="resident job counts, ascending; footprint uses the last")
    parser.add_argument("--new-jobs", type=int, default=3, help="new jobs timed per resident count")
    parser.add_argument("--kubeconfig", help="an existing cluster (default: start a local one)")
    parser.add_argument("--nodes", type=int, default=12, help="fake nodes of the local cluster (1000 pods each)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args(argv)
    scenarios = tuple(s for s in args.scenarios.split(",") if s)
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))} (choose from {', '.join(SCENARIOS)})")
    options = Options(scenarios=scenarios, sizes=_ints(args.sizes), repeat=args.repeat,
                      recovery_workers=args.recovery_workers,
                      lifecycle_workers=args.lifecycle_workers, concurrent_jobs=args.concurrent_jobs,
                      job_workers=args.job_workers, resident=sorted(_ints(args.resident)), new_jobs=args.new_jobs,
                      timeout=args.timeout)

    from ..operator_process import OperatorProcess

    with tempfile.TemporaryDirectory(prefix="msjob-bench-") as scratch:  # the operator's log
        cluster = None
        kubeconfig = args.kubeconfig
        if not kubeconfig:
            from ..cluster import LocalCluster

            capacity = {"cpu": "1000", "memory": "4Ti", "pods": "1000", "huawei.com/Ascend910": "8",
                        "nvidia.com/gpu": "8"}
            cluster = LocalCluster(name="bench", nodes=args.nodes, node_capacity=capacity).start()
            kubeconfig = str(cluster.kubeconfig)
        try:
            operator = OperatorProcess(Path(kubeconfig), Path(scratch), verbose=False).start()
            try:
                results = asyncio.run(run_scenarios(kubeconfig, options, operator.pid, operator.metrics))
            finally:
                operator.stop()
        finally:
            if cluster is not None:
                cluster.stop()
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0
