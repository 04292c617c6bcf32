"""The Dockerfile's build steps, run for real in a fresh virtual environment (no container engine here):
the COPY and RUN lines of its build stage are read from the Dockerfile, not repeated in this test."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from msjob_localcluster.operator_process import OperatorProcess

from ..dockerfile import DOCKERFILE, copy_sources, parse

pytestmark = pytest.mark.cluster


def test_image_install_steps_give_a_working_operator(cluster, namespace, tmp_path):
    _, stages = parse()
    build = stages[0]
    (venv_dir,) = {m for run in build.all("RUN") for m in re.findall(r"-m venv (\S+)", run)}
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    for copy in filter(None, map(copy_sources, build.all("COPY"))):
        sources, dest = copy
        target = src / dest.rstrip("/").lstrip("./") if dest not in ("./", ".") else src
        for source in sources:
            origin = DOCKERFILE.parent / source
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(origin, src / origin.name)
    for run in build.all("RUN"):
        # The image keeps no pip cache (--no-cache-dir); here the machine's warm cache saves the downloads.
        command = (run.replace(venv_dir, str(venv)).replace("--no-cache-dir", "")
                   .replace("python -m venv", f"{sys.executable} -m venv"))
        proc = subprocess.run(["/bin/sh", "-c", command], cwd=src, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"

    # Only runtime dependencies: no test tools, no MindSpore, no KFP.
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                               capture_output=True, text=True, check=True).stdout.lower()
    names = {line.split("==")[0].replace("_", "-") for line in installed.splitlines()}
    assert {"kopf", "kubernetes-asyncio", "msjob-operator"} <= names
    assert not names & {"pytest", "hypothesis", "mindspore", "kfp"}, names
    # The operator and its in-pod runtime; not the local platform.
    probe = "import msjob_operator, msjob_runtime, importlib.util as u; print(u.find_spec('msjob_localcluster'))"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                           env=clean)
    assert found.returncode == 0 and found.stdout.strip() == "None", found.stdout + found.stderr
    help_text = subprocess.run([str(venv / "bin" / "msjob-operator"), "run", "--help"], capture_output=True,
                               text=True, check=True).stdout
    assert "--gang-scheduling" in help_text

    # A real run against the local cluster, in a namespace of its own so it touches no other test's jobs.
    operator = OperatorProcess(cluster.kubeconfig, tmp_path, extra_args=["--namespace", namespace],
                               python=str(venv / "bin" / "python"))
    try:
        operator.start(timeout=120)
        assert "msjob_workqueue_depth" in operator.metrics()
    finally:
        operator.stop()
