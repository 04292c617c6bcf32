"""Per-job metrics computed from the operator's cache at scrape time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import GaugeMetricFamily

from msjob_runtime.progress import parse_time

from ..api.enums import ConditionType

if TYPE_CHECKING:
    from .reconciler import Controller


class JobStateCollector:
    """msjob_jobs{namespace,state} and the training progress of each job."""

    def __init__(self, controller: "Controller"):
        self.controller = controller

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("msjob_jobs", "MSJobs by state.", labels=["namespace", "state"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("msjob_jobs", "MSJobs by state.", labels=["namespace", "state"])
        labels = ["namespace", "job"]
        step = GaugeMetricFamily("msjob_job_step", "Last training step reported by worker 0.", labels=labels)
        speed = GaugeMetricFamily("msjob_job_steps_per_second", "Training throughput in steps per second.",
                                  labels=labels)
        step_time = GaugeMetricFamily("msjob_job_step_time_seconds", "Duration of the last training step.",
                                      labels=labels)
        heartbeat = GaugeMetricFamily("msjob_job_last_step_timestamp_seconds",
                                      "Unix time of the last training step.", labels=labels)
        counts: dict[tuple[str, str], int] = {}
        for job in list(self.controller.jobs.values()):
            status = job.get("status") or {}
            state = status.get("state") or ConditionType.CREATED.value  # the reconcile's own summary of its conditions
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
