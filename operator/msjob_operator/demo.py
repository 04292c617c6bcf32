"""`msjob-operator demo`: the operator's main job end to end, on the embedded local cluster by default.

Brings up the local cluster (unless a kubeconfig is given), runs the operator, submits an example
MSJob and shows it move Created -> Running -> Succeeded.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .api.models import GROUP, PLURAL, VERSION

DEFAULT_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="run an example MSJob end to end (local cluster unless --kubeconfig)")
    demo.add_argument("--kubeconfig", help="use this cluster instead of the embedded local one")
    demo.add_argument("-f", "--file", type=Path, default=DEFAULT_EXAMPLE, help="MSJob YAML to submit")
    demo.add_argument("--namespace", default="default")
    demo.add_argument("--timeout", type=float, default=300)
    demo.add_argument("--keep", action="store_true", help="leave the local cluster running afterwards")
    demo.set_defaults(func=run)


def _line(started: float, job: dict, pods: list) -> str:
    status = job.get("status") or {}
    phases: dict[str, int] = {}
    for pod in pods:
        phases[pod.status.phase] = phases.get(pod.status.phase, 0) + 1
    pod_text = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items())) or "none yet"
    return (f"[{time.monotonic() - started:6.1f}s] {job['metadata']['name']}: {status.get('state', 'Submitted'):<10} "
            f"workers {status.get('workers', '-'):>5}  restarts {status.get('restartCount', 0)}  pods: {pod_text}")


def watch(api_client, namespace: str, name: str, timeout: float, out=sys.stdout, since: str | None = None) -> str:
    """Print a line for every change of the job's state, workers or pods; return the final state."""
    from kubernetes import watch as kwatch
    from kubernetes.client import CoreV1Api, CustomObjectsApi

    custom, core = CustomObjectsApi(api_client), CoreV1Api(api_client)
    started = time.monotonic()
    last = None
    stream = kwatch.Watch()
    # Job events show every status write; pod events show pods being created and finishing.
    for event in stream.stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                               field_selector=f"metadata.name={name}", timeout_seconds=int(timeout),
                               resource_version=since):
        job = event["object"]
        pods = core.list_namespaced_pod(namespace, label_selector=f"training.kubeflow.org/job-name={name}").items
        line = _line(started, job, pods)
        if line.split("]", 1)[1] != (last or "]").split("]", 1)[1]:
            print(line, file=out, flush=True)
            last = line
        state = (job.get("status") or {}).get("state")
        if state in ("Succeeded", "Failed"):
            stream.stop()
            for cond in job["status"].get("conditions", []):
                if cond["type"] == state:
                    print(f"{state}: {cond.get('message', '')}", file=out, flush=True)
            return state
        if time.monotonic() - started > timeout:
            stream.stop()
    return "Timeout"


def _delete_previous(custom, namespace: str, name: str, timeout: float = 60) -> None:
    """A job left by an earlier demo run is deleted, and we wait until it is gone."""
    from kubernetes.client.exceptions import ApiException

    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.2)


def run(args: argparse.Namespace) -> int:
    from kubernetes import config

    from .localcluster.operator_process import OperatorProcess

    cluster = None
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if not kubeconfig:
        from .localcluster.cluster import LocalCluster

        print("no kubeconfig given: starting the embedded local cluster (first run builds its binaries)", flush=True)
        cluster = LocalCluster(name="demo", nodes=4).start()
        kubeconfig = str(cluster.kubeconfig)
        print(f"local cluster ready: KUBECONFIG={kubeconfig}", flush=True)
    operator = None
    try:
        logs = Path(tempfile.mkdtemp(prefix="msjob-demo-"))
        operator = OperatorProcess(Path(kubeconfig), logs).start()
        print(f"operator running (log: {operator.log_path})", flush=True)
        api_client = config.new_client_from_config(config_file=kubeconfig)
        from kubernetes.client import CustomObjectsApi

        body = yaml.safe_load(args.file.read_text())
        name = body["metadata"]["name"]
        custom = CustomObjectsApi(api_client)
        _delete_previous(custom, args.namespace, name)
        created = custom.create_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, body)
        print(f"submitted MSJob {args.namespace}/{name} from {args.file}", flush=True)
        state = watch(api_client, args.namespace, name, args.timeout, since=created["metadata"]["resourceVersion"])
        return 0 if state == "Succeeded" else 1
    finally:
        if operator is not None:
            operator.stop()
        if cluster is not None and not args.keep:
            cluster.stop()
        elif cluster is not None:
            print("local cluster left running; stop it with: msjob-operator local down --name demo", flush=True)
