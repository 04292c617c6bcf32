"""A user's own MindSpore job on `local up --process-node`, step by step as the README says (with its YAML):
the process node outlives the command, runs the job with the operator beside it, and `local down` stops it
and removes its network namespaces."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from msjob_localcluster import netns
from msjob_localcluster.cluster import default_root
from msjob_localcluster.operator_process import OperatorProcess
from msjob_localcluster.processnode import STATE_FILE, _is_agent

from .conftest import unavailable
from .support import SCRIPTS_DIR
from .test_mindspore import JOB_TIMEOUT

README = Path(__file__).parents[2] / "README.md"
USER_DIR_IN_README = "/home/me/my-project"


def readme_job() -> str:
    """The YAML of the README's "Your own MindSpore job on the local cluster"."""
    section = README.read_text().split("### Your own MindSpore job on the local cluster", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "msjob_localcluster", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def msjob_cli(*args: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "msjob_operator.sdk.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


@pytest.fixture
def cluster_name():
    name = f"pytest-up-{uuid.uuid4().hex[:6]}"
    yield name
    cli("down", "--name", name)  # whatever the test left
    shutil.rmtree(default_root(name), ignore_errors=True)


def test_local_up_with_a_process_node_runs_the_readme_job(cluster_name, tmp_path, mindspore_installed, figures):
    problem = netns.can_create_namespaces()
    if problem:
        unavailable(problem)
    up = cli("up", "--name", cluster_name, "--nodes", "1", "--process-node")
    assert up.returncode == 0, up.stdout + up.stderr
    assert re.search(r"^process node process-node-0 ready in [0-9.]+ s \(pid \d+, ", up.stdout, re.M), up.stdout
    kubeconfig = re.search(r"^export KUBECONFIG=(\S+)$", up.stdout, re.M)[1]
    node_root = default_root(cluster_name) / "process-node"
    state = json.loads((node_root / STATE_FILE).read_text())
    assert _is_agent(state["pid"]), "the process node did not outlive `local up`"
    status = cli("status", "--name", cluster_name)
    assert status.returncode == 0, status.stdout
    assert re.search(rf"process-node +pid {state['pid']} +running", status.stdout), status.stdout
    assert re.search(r"^process-node-0\s+Ready\s", status.stdout, re.M), status.stdout

    # The user's project: their script (here the example script) in a directory of this machine.
    project = tmp_path / "my-project"
    project.mkdir()
    shutil.copy(SCRIPTS_DIR / "train_data_parallel.py", project / "train.py")
    job = tmp_path / "my-job.yaml"
    job.write_text(readme_job().replace(USER_DIR_IN_README, str(project)))
    (tmp_path / "operator").mkdir()
    operator = OperatorProcess(Path(kubeconfig), tmp_path / "operator").start()
    try:
        submitted = msjob_cli("submit", "-f", str(job), "--wait", "--timeout", str(JOB_TIMEOUT),
                              env={"KUBECONFIG": kubeconfig}, timeout=JOB_TIMEOUT + 60)
    finally:
        operator.stop()
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr + operator.tail()
    outcome = re.search(r"^my-job: Succeeded: MSJobSucceeded: .*worker 0 succeeded", submitted.stdout, re.M)
    assert outcome, submitted.stdout
    assert re.search(r"\] my-job: Running workers 2/2 restarts \d", submitted.stdout), submitted.stdout
    # Real training ran on the process node, in its pods' own directories.
    runs = list(node_root.glob("pods/default/my-job-worker-0/*/mindspore.log"))
    allreduce = "allreduce check: sum of (rank + 1) over 2 ranks = 3 (expected 3)"
    assert any(allreduce in log.read_text() for log in runs), runs
    figures("local_up_readme_job", worker0_runs=len(runs))

    prefix = state["prefix"]
    assert netns.list_namespaces(prefix + "-"), "the process node had no network namespaces"
    down = cli("down", "--name", cluster_name)
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"process node process-node-0 stopped; network namespaces {prefix}-* removed" in down.stdout, down.stdout
    assert not _is_agent(state["pid"])
    assert netns.list_namespaces(prefix + "-") == []
    assert not (node_root / STATE_FILE).exists() and not (default_root(cluster_name) / "state.json").exists()
