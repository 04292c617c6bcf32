"""The `msjob` command, run as a user runs it (a subprocess with --kubeconfig), against the local cluster."""

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from msjob_operator.sdk import MSJobClient

from ..helpers import wait_for
from .msjobs import msjob

pytestmark = pytest.mark.cluster

EXIT = "kwok.msjob.test/exit-code"
RUN = "kwok.msjob.test/run-seconds"
MSJOB = Path(sys.executable).parent / "msjob"
PROGRESS = re.compile(r"^\[\s*\d+\.\ds\] (?P<name>[a-z0-9-]+): (?P<state>\w+) "
                      r"workers (?P<workers>\d+/\d+) restarts (?P<restarts>\d+)")


@pytest.fixture
def cli(cluster, namespace, running_operator):
    assert MSJOB.exists(), f"{MSJOB} is missing: reinstall the project (pip install -e .) for its console scripts"

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(MSJOB), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, *args],
                              capture_output=True, text=True, timeout=timeout)
    return run


@pytest.fixture
def client(cluster, namespace):
    c = MSJobClient(kubeconfig=str(cluster.kubeconfig), namespace=namespace)
    yield c
    c.close()


def write(tmp_path: Path, *jobs: dict) -> str:
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(jobs))
    return str(path)


def progress(stdout: str) -> list[re.Match]:
    return [m for m in (PROGRESS.match(line) for line in stdout.splitlines()) if m]


def test_submit_wait_get_list_describe(cli, client, tmp_path, namespace):
    path = write(tmp_path, msjob("cli-train", workers=2, worker_annotations={EXIT: "0", RUN: "4"}))
    done = cli("submit", "-f", path, "--wait", "--timeout", "120", timeout=150)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "msjob.mindspore.gitee.com/cli-train created"
    steps = progress(done.stdout)
    states = [m["state"] for m in steps]
    assert "Running" in states and states[-1] == "Succeeded", done.stdout
    assert all(m["name"] == "cli-train" and m["workers"].endswith("/2") for m in steps)
    # One line per change: no two consecutive lines say the same.
    keys = [(m["state"], m["workers"], m["restarts"]) for m in steps]
    assert all(a != b for a, b in itertools.pairwise(keys)), done.stdout
    assert lines[-1].startswith("cli-train: Succeeded"), done.stdout

    got = cli("get", "cli-train")
    assert got.returncode == 0, got.stderr
    header, row = got.stdout.splitlines()
    assert header.split() == ["NAME", "STATE", "WORKERS", "RESTARTS", "WAITING", "AGE"]
    assert row.split()[:4] == ["cli-train", "Succeeded", row.split()[2], "0"]
    assert json.loads(cli("get", "cli-train", "-o", "json").stdout)["status"]["state"] == "Succeeded"

    listed = cli("list")
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == ["NAME", "cli-train"]
    everywhere = cli("list", "-A")
    assert everywhere.stdout.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [namespace, "cli-train"] for line in everywhere.stdout.splitlines())

    # Events are posted just after the status is written: wait for the last one before describing.
    wait_for(lambda: any(e.reason == "MSJobSucceeded" for e in client.get_events("cli-train")), timeout=30,
             message="the MSJobSucceeded event")
    described = cli("describe", "cli-train")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert re.search(r"^State:\s+Succeeded$", text, re.M)
    for section in ("Replicas:", "Conditions:", "Last Failure:", "Pods:", "Events:"):
        assert f"\n{section}\n" in text, text
    assert re.search(r"^  Worker\s+2\s+OnFailure\s", text, re.M), text
    assert re.search(r"^  Succeeded\s+True\s+\w+", text, re.M), text
    assert re.search(r"^  \S+\s+Normal\s+MSJobSucceeded\s", text, re.M), text
    assert "cli-train-worker-0" in text


def test_wait_exit_codes_for_failure_and_timeout(cli, tmp_path):
    path = write(tmp_path, msjob("cli-bad", workers=1, worker_annotations={EXIT: "3"}, runPolicy={"backoffLimit": 0}),
                 msjob("cli-long", workers=1))
    submitted = cli("submit", "-f", path)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.splitlines() == ["msjob.mindspore.gitee.com/cli-bad created",
                                             "msjob.mindspore.gitee.com/cli-long created"]

    failed = cli("wait", "cli-bad", "--timeout", "120", timeout=150)
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert progress(failed.stdout)[-1]["state"] == "Failed"
    last = failed.stdout.splitlines()[-1]
    assert last.startswith("cli-bad: Failed: BackoffLimitExceeded: ") and "exit code 3" in last

    described = cli("describe", "cli-bad").stdout
    assert re.search(r"^  Exit Code:\s+3$", described, re.M), described
    assert re.search(r"^  Pod:\s+cli-bad-worker-0$", described, re.M), described

    timed_out = cli("wait", "cli-long", "--timeout", "2", timeout=60)
    assert timed_out.returncode == 2, (timed_out.stdout, timed_out.stderr)
    assert "timed out after 2 s" in timed_out.stderr
    assert cli("wait", "cli-long", "--for", "Running", "--timeout", "60").returncode == 0


def test_suspend_resume_logs_delete(cli, client, tmp_path):
    assert cli("submit", "-f", write(tmp_path, msjob("cli-pause", workers=2))).returncode == 0
    assert cli("wait", "cli-pause", "--for", "Running", "--timeout", "60").returncode == 0

    # kwok's fake nodes serve no logs: one readable error line, exit code 1.
    logs = cli("logs", "cli-pause", "--type", "worker", "--index", "1")
    assert logs.returncode == 1 and logs.stdout == ""
    assert logs.stderr.startswith("error: cannot read the log of pod ") and "cli-pause-worker-1" in logs.stderr
    assert "Traceback" not in logs.stderr

    suspended = cli("suspend", "cli-pause")
    assert suspended.returncode == 0 and suspended.stdout.strip() == "msjob.mindspore.gitee.com/cli-pause suspended"
    assert cli("wait", "cli-pause", "--for", "Suspended", "--timeout", "60").returncode == 0
    wait_for(lambda: not client.get_pods("cli-pause"), timeout=60, message="a suspended job holds no pods")
    assert cli("get", "cli-pause").stdout.splitlines()[1].split()[1] == "Suspended"

    assert cli("resume", "cli-pause").stdout.strip() == "msjob.mindspore.gitee.com/cli-pause resumed"
    assert cli("wait", "cli-pause", "--for", "Running", "--timeout", "60").returncode == 0
    assert len(client.get_pods("cli-pause", include_terminating=False)) == 3

    deleted = cli("delete", "cli-pause", "--wait")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "msjob.mindspore.gitee.com/cli-pause deleted"
    missing = cli("get", "cli-pause")
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    empty = cli("list")
    assert empty.returncode == 0 and empty.stdout == "" and "No MSJobs found" in empty.stderr
