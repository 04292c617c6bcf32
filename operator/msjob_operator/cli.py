"""The `msjob-operator` command: run the operator. (The local cluster and the demo are the local
platform's own command, `msjob-local`.)"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config import Config, GangMode, GangScheduler, LogFormat


def _run(args: argparse.Namespace) -> int:
    # kopf imports the sync `kubernetes` client, when installed, only to recognise its model classes;
    # the operator never uses them, and loading them costs 40 MiB of RSS. None makes the import fail.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]  # None makes an import fail
    import kopf

    config = Config.from_args(args)
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == LogFormat.JSON.value else kopf.LogFormat.PLAIN,
    )
    logging.getLogger("msjob_operator").setLevel(logging.DEBUG if config.verbose else logging.INFO)
    from .controller import handlers  # noqa: F401  (registers the handlers)

    liveness = f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None
    kopf.run(
        # kopf's own peering would pause its watches, not our informers and workers: a Lease does that.
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        memo=kopf.Memo(config=config),
        liveness_endpoint=liveness,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msjob-operator",
                                     description="Kubernetes operator for MindSpore training jobs (MSJob).")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    run.add_argument("--namespace", "-n", action="append", help="watch only this namespace (repeatable); default: all")
    run.add_argument("--kubeconfig",
                     help="kubeconfig file (default: in-cluster config, then $KUBECONFIG / ~/.kube/config)")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0 disables)")
    run.add_argument("--metrics-address", default="0.0.0.0", help="address the metrics endpoint listens on")
    run.add_argument("--health-port", type=int, default=8081, help="liveness/readiness port for /healthz (0 disables)")
    run.add_argument("--workers", type=int, default=16, help="jobs reconciled concurrently")
    run.add_argument("--max-in-flight", type=int, default=64,
                     help="API requests in flight at once (creates and deletes)")
    run.add_argument("--max-replicas-per-job", type=int, default=4096,
                     help="a job asking for more pods in total fails with condition TooManyReplicas, creating none")
    run.add_argument("--gang-scheduler", choices=[g.value for g in GangScheduler], default=GangScheduler.VOLCANO.value,
                     help="whose PodGroup gang-scheduled jobs get")
    run.add_argument("--gang-scheduling", choices=[m.value for m in GangMode], default=GangMode.AUTO.value,
                     help="auto: jobs that set runPolicy.schedulingPolicy; always: every job")
    run.add_argument("--kueue", action="store_true",
                     help="queue jobs labelled kueue.x-k8s.io/queue-name in Kueue: the operator writes each one's "
                          "Workload and runs the job only while Kueue admits it")
    run.add_argument("--gang-scheduler-name", help="schedulerName of gang-scheduled pods (default: per gang scheduler)")
    run.add_argument("--reporter-image", default=f"msjob-operator:{__version__}",
                     help="image of the progress reporter sidecar (spec.health.reportProgress)")
    run.add_argument("--peering", action="store_true",
                     help="several replicas (HA): the holder of a Lease reconciles, the others stand by")
    run.add_argument("--peering-namespace", help="namespace of the Lease (default: $POD_NAMESPACE, else default)")
    run.add_argument("--peering-name", default="msjob-operator", help="name of the Lease (default: %(default)s)")
    run.add_argument("--peering-lease-seconds", type=float, default=15.0,
                     help="a standby takes over when the leader has not renewed for this long")
    run.add_argument("--log-format", choices=[f.value for f in LogFormat], default=LogFormat.PLAIN.value)
    run.add_argument("--verbose", "-v", action="store_true")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
