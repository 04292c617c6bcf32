"""Operator-wide settings that shape what the builders produce (from command-line flags)."""

from __future__ import annotations

import dataclasses

VOLCANO = "volcano"
SCHEDULER_PLUGINS = "scheduler-plugins"


@dataclasses.dataclass(frozen=True)
class GangSettings:
    # Which gang scheduler's PodGroup to create: Volcano, or scheduler-plugins' coscheduling.
    scheduler: str = VOLCANO
    # auto: jobs that set runPolicy.schedulingPolicy; always: every job; never: no PodGroups.
    mode: str = "auto"
    # schedulerName for the pods; default: "volcano", or "scheduler-plugins-scheduler".
    scheduler_name: str | None = None

    @property
    def pod_scheduler_name(self) -> str:
        if self.scheduler_name:
            return self.scheduler_name
        return "volcano" if self.scheduler == VOLCANO else "scheduler-plugins-scheduler"


@dataclasses.dataclass(frozen=True)
class Settings:
    gang: GangSettings = GangSettings()
    # Image of the progress reporter sidecar: the operator's own image carries it.
    reporter_image: str = "msjob-operator:0.1.0"
    # False when the gang scheduler's PodGroup CRD is not installed in the cluster.
    gang_available: bool = True
    # A job asking for more pods than this fails without creating any (--max-replicas-per-job).
    max_pods_per_job: int = 4096


DEFAULT = Settings()
