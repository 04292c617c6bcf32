"""builders/runtime.py's agent invocation: the main container's command under the in-place
restart agent, as a plain script from the runtime's directory, and the agent's identity env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import msjob_runtime
from msjob_operator.builders import runtime as rb
from msjob_runtime import install


def test_agent_command_wraps_the_command_and_keeps_args():
    container = {"name": "mindspore", "command": ["python", "train.py"], "args": ["--epochs", "$(EPOCHS)"]}
    assert rb.agent_command(container, 30) == [
        "python3", "/opt/msjob/runtime/msjob_runtime/agent.py", "--grace-seconds", "25", "--", "python", "train.py"]
    assert rb.agent_command(container, None, python="python")[:4] == [
        "python", rb.AGENT_SCRIPT_PATH, "--grace-seconds", "25"]
    assert rb.agent_command(container, 3)[3] == "1"
    with pytest.raises(ValueError, match="no command"):
        rb.agent_command({"name": "mindspore", "args": ["x"]}, 30)
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in rb.agent_env()}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_UID": "metadata.uid"}


def test_the_script_path_exists_in_an_installed_copy_and_runs_without_pythonpath(tmp_path):
    """What the init container makes: RUNTIME_DIR/msjob_runtime/agent.py, runnable as a plain script
    with site-packages off and no PYTHONPATH (its usage error proves the imports resolved)."""
    install.install(str(tmp_path))
    script = tmp_path / Path(rb.AGENT_SCRIPT_PATH).relative_to(rb.RUNTIME_DIR)
    assert script.is_file()
    done = subprocess.run([sys.executable, "-S", str(script), "--job", "demo"], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "")}, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "no command: give it after --" in done.stderr, done.stderr
    assert Path(msjob_runtime.__file__).parent.joinpath("agent.py").read_bytes() == script.read_bytes()
