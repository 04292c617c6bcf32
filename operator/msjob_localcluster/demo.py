"""``msjob-local demo`` (what ``make run`` runs): the operator's main job end to end.

Without a kubeconfig it brings up the embedded local cluster and, where this machine can run one
(root, network namespaces: ``netns.can_create_namespaces``), a process node; then it trains for real:
``demo-train.yaml``, a scheduler and two workers running ``train_data_parallel.py`` with MindSpore,
followed by one line per change of state, ready workers or training step (step, loss and steps per
second from ``status.progress``), and at the end the final loss and the time to the first step.
Where no process node can run it says why in one line and submits ``demo.yaml`` instead, whose pods
on fake nodes "succeed" after 10 s. ``--kubeconfig`` runs against another cluster (``demo.yaml``, or
``-f FILE``), with the operator as a local process.

The examples it submits are package data (``examples/`` beside this module): copies of the
repository's ``examples/``, kept equal by ``tests/unit/test_demo_examples.py``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TextIO

import yaml

if TYPE_CHECKING:
    from msjob_operator.api.models import MSJob
    from msjob_operator.sdk import MSJobClient

    from .cli import SubParsers

EXAMPLES = Path(__file__).parent / "examples"
FAKE_DEMO = EXAMPLES / "demo.yaml"
TRAIN_DEMO = EXAMPLES / "demo-train.yaml"
SCRIPTS = EXAMPLES / "scripts"
SCRIPTS_CONFIGMAP = "msjob-scripts"  # what the examples for the process node mount at /workspace
CHECKPOINT_VOLUME = "checkpoints"
CLUSTER_NAME = "demo"


def register(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo",
                                 help="run an example MSJob end to end (local cluster unless --kubeconfig)")
    demo.add_argument("--kubeconfig", help="use this cluster instead of the embedded local one")
    demo.add_argument("-f", "--file", type=Path,
                      help="MSJob YAML to submit (default: real MindSpore training on the local cluster's process "
                           "node, else the fake-node demo)")
    demo.add_argument("--namespace", default="default")
    demo.add_argument("--timeout", type=float, default=600)
    demo.add_argument("--keep", action="store_true",
                      help=f"leave the local cluster (and its process node) running afterwards, as `local up --name "
                           f"{CLUSTER_NAME}` would (stop it with `local down --name {CLUSTER_NAME}`)")
    demo.set_defaults(func=run)


def choose_job(kubeconfig: Optional[str], file: Optional[Path],
               problem: Optional[str]) -> tuple[Path, bool, Optional[str]]:
    """(the job to submit, whether to start a process node, a line saying why there is none)."""
    if kubeconfig:
        return file or FAKE_DEMO, False, None
    if problem:
        fallback = "" if file else f"; running the fake-node demo ({FAKE_DEMO.name}) instead"
        return file or FAKE_DEMO, False, f"no process node here: {problem}{fallback}"
    return file or TRAIN_DEMO, True, None


def load_job(path: Path, checkpoints: Optional[Path] = None) -> dict[str, Any]:
    """The MSJob of ``path``; a hostPath volume named ``checkpoints`` is pointed at ``checkpoints`` (a fresh
    directory, so that a new run never resumes from an old one's checkpoints)."""
    body: dict[str, Any] = yaml.safe_load(path.read_text())
    if checkpoints is not None:
        for replica in body["spec"]["msReplicaSpecs"].values():
            for volume in replica["template"]["spec"].get("volumes") or []:
                if volume["name"] == CHECKPOINT_VOLUME and "hostPath" in volume:
                    volume["hostPath"]["path"] = str(checkpoints)
    return body


def scripts_configmap() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": SCRIPTS_CONFIGMAP},
            "data": {p.name: p.read_text() for p in sorted(SCRIPTS.glob("*.py"))}}


def apply_configmap(core: Any, namespace: str, body: dict[str, Any]) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        core.create_namespaced_config_map(namespace, body)
    except ApiException as e:
        if e.status != 409:
            raise
        core.replace_namespaced_config_map(body["metadata"]["name"], namespace, body)


class TrainingWatch:
    """The wait callback: the SDK's progress lines, and when the first training step was seen."""

    def __init__(self, out: TextIO, start: float):
        from msjob_operator.sdk.format import Progress

        self.progress = Progress(out, start)
        self.first_step_after: Optional[float] = None

    def __call__(self, job: MSJob) -> None:
        from msjob_operator.sdk import status_of

        self.progress(job)
        progress = status_of(job).progress
        if self.first_step_after is None and progress is not None and progress.step:
            self.first_step_after = time.monotonic() - self.progress.start


def summary_line(job: MSJob, first_step_after: Optional[float]) -> Optional[str]:
    """``final loss 0.0123 at step 120 (4.1 steps/s); first step 31.2 s after submission``; None without progress."""
    from msjob_operator.sdk import status_of

    progress = status_of(job).progress
    if progress is None or progress.step is None:
        return None
    text = f"final loss {progress.loss:.4g} at step {progress.step}" if progress.loss is not None \
        else f"last step {progress.step}"
    if progress.steps_per_second is not None:
        text += f" ({progress.steps_per_second:.1f} steps/s)"
    if first_step_after is not None:
        text += f"; first training step seen {first_step_after:.1f} s after submission"
    return text


def submit_and_follow(client: MSJobClient, body: dict[str, Any], namespace: str, timeout: float,
                      out: TextIO = sys.stdout) -> int:
    """Submit ``body`` (a job of the same name is deleted first), print its progress until it ends; the exit code."""
    from msjob_operator.sdk import MSJobNotFoundError, MSJobTimeoutError, has_condition
    from msjob_operator.sdk.format import outcome_line

    name = body["metadata"]["name"]
    try:
        client.delete(name, namespace, wait=True, timeout=120)
    except MSJobNotFoundError:
        pass
    start = time.monotonic()
    client.create(copy.deepcopy(body), namespace)
    print(f"submitted MSJob {namespace}/{name}", file=out, flush=True)
    watch = TrainingWatch(out, start)
    try:
        done = client.wait_for_condition(name, ("Succeeded", "Failed"), namespace=namespace, timeout=timeout,
                                         polling_interval=1, callback=watch)
    except MSJobTimeoutError as e:
        print(f"error: {e}", file=out, flush=True)
        return 2
    print(outcome_line(done), file=out, flush=True)
    summary = summary_line(done, watch.first_step_after)
    if summary:
        print(summary, file=out, flush=True)
    return 0 if has_condition(done, "Succeeded") else 1


def run(args: argparse.Namespace) -> int:
    from .cli import process_node_problem
    from .operator_process import OperatorProcess

    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    problem = None if kubeconfig else process_node_problem()
    job_file, with_process_node, note = choose_job(kubeconfig, args.file, problem)
    if note:
        print(note, flush=True)
    work = Path(tempfile.mkdtemp(prefix="msjob-demo-"))
    cluster = node = operator = None
    try:
        if not kubeconfig:
            from .cli import PROCESS_NODE_NAME, process_node_root
            from .cluster import LocalCluster, default_root

            print("starting the embedded local cluster (the first run builds its binaries)", flush=True)
            # --keep: where and as `local up` runs it, so that `local down` stops it; else gone with this process.
            root = default_root(CLUSTER_NAME) if args.keep else None
            cluster = LocalCluster(root, name=CLUSTER_NAME, nodes=4).start(detached=args.keep)
            kubeconfig = str(cluster.kubeconfig)
            print(f"local cluster ready in {cluster.start_seconds:.1f} s: KUBECONFIG={kubeconfig}", flush=True)
            if with_process_node:
                from .processnode import ProcessNode

                node_root = process_node_root(cluster.root) if args.keep else work / "process-node"
                node = ProcessNode(kubeconfig, PROCESS_NODE_NAME, node_root, detached=args.keep).start()
                print(f"process node ready: pods run as local processes with {sys.executable} "
                      f"(pod logs in {node.root / 'pods'})", flush=True)
        operator = OperatorProcess(Path(kubeconfig), work).start()
        print(f"operator running (log: {operator.log_path})", flush=True)
        from msjob_operator.sdk import MSJobClient

        with MSJobClient(kubeconfig=kubeconfig, namespace=args.namespace) as client:
            if cluster is not None:
                apply_configmap(client.core, args.namespace, scripts_configmap())
            body = load_job(job_file, checkpoints=work / "checkpoints" if node is not None else None)
            code = submit_and_follow(client, body, args.namespace, args.timeout)
        if code and node is not None:
            print(f"pod logs: {node.root / 'pods' / args.namespace}", flush=True)
        return code
    finally:
        if operator is not None:
            operator.stop()
        if cluster is not None and args.keep:
            print(f"local cluster left running{' with its process node' if node else ''} (KUBECONFIG={kubeconfig}); "
                  f"stop it with: msjob-local down --name {CLUSTER_NAME}", flush=True)
        else:
            if node is not None:
                node.stop()
            if cluster is not None:
                cluster.stop()
