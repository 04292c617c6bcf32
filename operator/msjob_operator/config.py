"""The operator's configuration: one frozen object, built once from the command line.

``Config.from_args`` is the only reader of flags; the environment supplies in-cluster defaults only
(``POD_NAMESPACE`` for the Lease's namespace). What the operator learns about the cluster at start
(whether the gang scheduler's PodGroup CRD and Kueue's API are served) is applied once, before any job is reconciled
(``dataclasses.replace``), and the object never changes afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
from typing import Mapping, Optional


class GangScheduler(str, enum.Enum):
    """Whose PodGroup gang-scheduled jobs get."""

    VOLCANO = "volcano"  # scheduling.volcano.sh/v1beta1
    SCHEDULER_PLUGINS = "scheduler-plugins"  # scheduling.x-k8s.io/v1alpha1 (coscheduling)
    WORKLOAD_API = "workload-api"  # scheduling.k8s.io/v1beta1 Workload and PodGroup: kube-scheduler's own gang


class GangMode(str, enum.Enum):
    AUTO = "auto"  # jobs that set runPolicy.schedulingPolicy
    ALWAYS = "always"  # every job
    NEVER = "never"  # no PodGroups


class LogFormat(str, enum.Enum):
    PLAIN = "plain"
    JSON = "json"


VOLCANO = GangScheduler.VOLCANO.value
SCHEDULER_PLUGINS = GangScheduler.SCHEDULER_PLUGINS.value
WORKLOAD_API = GangScheduler.WORKLOAD_API.value
DEFAULT_REPORTER_IMAGE = "msjob-operator:0.1.0"


@dataclasses.dataclass(frozen=True)
class GangSettings:
    scheduler: str = VOLCANO
    mode: str = GangMode.AUTO.value
    # schedulerName for the pods; default: "volcano", "scheduler-plugins-scheduler", or none (the
    # default scheduler does the Workload API's gang).
    scheduler_name: Optional[str] = None

    @property
    def pod_scheduler_name(self) -> Optional[str]:
        if self.scheduler_name:
            return self.scheduler_name
        if self.scheduler == WORKLOAD_API:
            return None
        return "volcano" if self.scheduler == VOLCANO else "scheduler-plugins-scheduler"


@dataclasses.dataclass(frozen=True)
class Config:
    # What the builders and the reconcile read.
    gang: GangSettings = GangSettings()
    reporter_image: str = DEFAULT_REPORTER_IMAGE  # the operator's own image carries the reporter
    gang_available: bool = True  # False when the gang scheduler's PodGroup CRD is not served
    max_pods_per_job: int = 4096  # a job asking for more fails without creating any
    # Kueue: jobs labelled kueue.x-k8s.io/queue-name get a Kueue Workload and run only once it is admitted.
    kueue: bool = False
    kueue_available: bool = True  # False when kueue.x-k8s.io is not served (then such jobs wait)
    # What the controller and the process read.
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    kubeconfig: Optional[str] = None  # None: in-cluster, then $KUBECONFIG / ~/.kube/config
    metrics_port: int = 8080  # 0 disables
    metrics_address: str = "0.0.0.0"
    health_port: int = 8081  # 0 disables
    workers: int = 16
    max_in_flight: int = 64
    peering: bool = False
    peering_namespace: str = "default"
    peering_name: str = "msjob-operator"
    peering_lease_seconds: float = 15.0
    log_format: str = LogFormat.PLAIN.value
    verbose: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> "Config":
        return cls(
            gang=GangSettings(scheduler=args.gang_scheduler, mode=args.gang_scheduling,
                              scheduler_name=args.gang_scheduler_name or None),
            reporter_image=args.reporter_image,
            max_pods_per_job=args.max_replicas_per_job,
            kueue=args.kueue,
            namespaces=tuple(args.namespace or ()),
            kubeconfig=os.path.abspath(args.kubeconfig) if args.kubeconfig else None,
            metrics_port=args.metrics_port,
            metrics_address=args.metrics_address,
            health_port=args.health_port,
            workers=args.workers,
            max_in_flight=args.max_in_flight,
            peering=args.peering,
            peering_namespace=args.peering_namespace or environ.get("POD_NAMESPACE") or "default",
            peering_name=args.peering_name,
            peering_lease_seconds=args.peering_lease_seconds,
            log_format=args.log_format,
            verbose=args.verbose,
        )


DEFAULT = Config()
