"""The msjob CLI's answers that need no cluster: one readable line for what cannot be submitted."""

import subprocess
import sys

import pytest

from msjob_operator.sdk import accessors, client

MALFORMED = "apiVersion: mindspore.gitee.com/v1\nkind: MSJob\nmetadata: {name: x\nspec: [\n"


def test_malformed_yaml_is_one_line_naming_the_place(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(MALFORMED)
    result = subprocess.run([sys.executable, "-m", "msjob_operator.sdk.cli", "--kubeconfig", str(tmp_path / "none"),
                             "submit", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: {path} is not valid YAML (line ")


def test_every_condition_type_can_be_waited_for():
    assert {"Stalled", "Waiting", "Succeeded", "Failed"} <= set(accessors.CONDITION_TYPES)
    with pytest.raises(ValueError, match="conditions must be among"):
        client.MSJobClient.wait_for_condition(None, "x", ["Exploded"])  # checked before any request
