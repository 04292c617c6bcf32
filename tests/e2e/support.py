"""MSJobs that run real MindSpore on the process node, and ways to watch them."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Callable

from kubernetes.client import CoreV1Api

from msjob_localcluster.processnode import NODE_SELECTOR, TOLERATION
from msjob_operator.api import naming

from ..helpers import wait_for
from ..integration.msjobs import GROUP, VERSION, MSJobs

SCRIPTS_DIR = Path(__file__).parents[2] / "examples" / "scripts"
SCRIPTS_CONFIGMAP = "msjob-scripts"
# Tiny jobs: MindSpore's import and cluster forming dominate; keep the training itself short.
DEFAULT_TOPO_TIMEOUT = 90
GRACE_SECONDS = 3


def pod_template(script: str, args: list[str], ckpt_dir: Path | None, env: dict | None = None) -> dict:
    volumes = [{"name": "scripts", "configMap": {"name": SCRIPTS_CONFIGMAP}}]
    mounts = [{"name": "scripts", "mountPath": "/workspace"}]
    if ckpt_dir is not None:
        volumes.append({"name": "checkpoints", "hostPath": {"path": str(ckpt_dir), "type": "DirectoryOrCreate"}})
        mounts.append({"name": "checkpoints", "mountPath": "/ckpt"})
        args = [*args, "--ckpt-dir", "/ckpt"]
    container = {
        "name": "mindspore", "image": "mindspore/mindspore:2.10.0",
        "command": ["python", f"/workspace/{script}"], "args": list(args), "volumeMounts": mounts,
    }
    if env:
        container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    return {
        "metadata": {"labels": {"app": "msjob-e2e"}},
        "spec": {
            "tolerations": [TOLERATION], "nodeSelector": dict(NODE_SELECTOR),
            "terminationGracePeriodSeconds": GRACE_SECONDS, "volumes": volumes, "containers": [container],
        },
    }


def msjob(name: str, *, workers: int = 2, ps: int = 0, script: str = "train_data_parallel.py",
          worker_args: list[str] | None = None, ckpt_dir: Path | None = None, restart_policy: str = "ExitCode",
          backoff_limit: int = 2, recovery: bool = False, clean_pod_policy: str | None = None,
          env: dict | None = None, topo_timeout: int = DEFAULT_TOPO_TIMEOUT) -> dict:
    """An MSJob whose pods run ``examples/scripts/<script>`` on the process node."""
    worker_args = list(worker_args or [])
    replicas = {
        "Scheduler": {"replicas": 1, "template": pod_template(script, [], None, env)},
        "Worker": {"replicas": workers, "restartPolicy": restart_policy,
                   "template": pod_template(script, worker_args, ckpt_dir, env)},
    }
    if ps:
        replicas["PS"] = {"replicas": ps, "template": pod_template(script, worker_args, None, env)}
    run_policy = {"backoffLimit": backoff_limit}
    if clean_pod_policy:
        run_policy["cleanPodPolicy"] = clean_pod_policy
    mindspore = {"clusterTimeoutSeconds": topo_timeout}
    if recovery:
        mindspore["enableRecovery"] = True
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MSJob", "metadata": {"name": name},
            "spec": {"runPolicy": run_policy, "mindspore": mindspore, "msReplicaSpecs": copy.deepcopy(replicas)}}


class E2EJobs(MSJobs):
    def __init__(self, api_client, namespace: str, node, operator):
        super().__init__(api_client, namespace)
        self.node = node
        self.operator = operator
        self.core = CoreV1Api(api_client)
        self._scripts = False

    def create(self, body: dict) -> dict:
        if not self._scripts:
            data = {p.name: p.read_text() for p in sorted(SCRIPTS_DIR.glob("*.py"))}
            self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": SCRIPTS_CONFIGMAP}, "data": data})
            self._scripts = True
        return super().create(body)

    # -- logs of what the node ran
    def runs(self, pod: str) -> list[dict]:
        return self.node.records(self.ns, pod)

    def logs(self, pod: str) -> list[str]:
        """The log of every run of pod ``pod`` (oldest first)."""
        return [self.node.log(self.ns, pod, uid=r["uid"]) for r in self.runs(pod)]

    def log(self, pod: str) -> str:
        return self.node.log(self.ns, pod)

    def state(self, name: str) -> dict:
        status = self.get(name).get("status") or {}
        return {"state": status.get("state"), "restartCount": status.get("restartCount"),
                "conditions": [(c["type"], c["status"], c.get("reason")) for c in status.get("conditions") or []],
                "lastFailure": status.get("lastFailure"),
                "pods": [(p.metadata.name, p.status.phase, p.metadata.labels.get(naming.ATTEMPT_LABEL))
                         for p in self.pods(name)],
                "operator": self.operator.tail(15) if self.operator is not None else ""}

    def wait_finished(self, name: str, timeout: float, watch: Callable[[], None] | None = None) -> dict:
        """Wait for Succeeded or Failed; ``watch()`` is called on every poll (to time log events)."""
        def done():
            if watch is not None:
                watch()
            status = self.get(name).get("status") or {}
            return status if status.get("state") in ("Succeeded", "Failed") else None
        return wait_for(done, timeout=timeout, interval=0.3, message=f"MSJob {name} finished",
                        describe=lambda: self.state(name))

    def wait_log(self, pod: str, pattern: str, timeout: float) -> re.Match:
        """Wait until the newest run of ``pod`` logged ``pattern`` (a regular expression)."""
        return wait_for(lambda: re.search(pattern, self.log(pod)), timeout=timeout, interval=0.2,
                        message=f"{pod} logging {pattern!r}", describe=lambda: self.log(pod)[-1500:])

    def wait_attempt_running(self, name: str, count: int, attempt: int, timeout: float) -> list:
        return self.wait_pods(name, count, attempt=attempt, timeout=timeout)


class Stopwatch:
    def __init__(self):
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> float:
        self.marks.setdefault(name, time.monotonic() - self.t0)
        return self.marks[name]

    def since(self, start: str, end: str) -> float:
        return self.marks[end] - self.marks[start]


def mindspore_lines(log: str) -> list[str]:
    """The script's own lines, without MindSpore's [WARNING]/[INFO] noise."""
    return [line for line in log.splitlines() if line and not line.startswith("[")]


def losses(log: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"^step \d+ epoch \d+ loss ([0-9.e+-]+)$", log, re.M)]
