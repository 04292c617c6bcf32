"""The Kubeflow Pipelines step's launcher (`python -m msjob_operator.kfp.launcher`) against the local cluster."""

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from msjob_operator.kfp import launcher
from msjob_operator.sdk import MSJobClient, MSJobNotFoundError

from ..helpers import wait_for
from .msjobs import EXIT, KWOK_POD_SPEC, RUN, msjob

pytestmark = pytest.mark.cluster



def gone(client: MSJobClient, name: str) -> bool:
    try:
        client.get(name)
    except MSJobNotFoundError:
        return True
    return False


def test_success_outputs_the_final_status_and_deletes_the_job(client, cluster, namespace, tmp_path, capsys):
    job = msjob("kfp-ok", workers=2, worker_annotations={EXIT: "0", RUN: "3"})
    status_file, artifact = tmp_path / "outputs" / "status", tmp_path / "artifacts" / "status.json"
    code = launcher.main([
        "--msjob-yaml", yaml.safe_dump(job), "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
        "--timeout", "120", "--delete-after-done", "true",
        "--status-output", str(status_file), "--status-artifact", str(artifact)])
    out = capsys.readouterr().out
    assert code == 0, out

    result = json.loads(status_file.read_text())
    assert result["name"] == "kfp-ok" and result["namespace"] == namespace
    assert result["state"] == "Succeeded" and result["succeeded"] is True and result["restartCount"] == 0
    assert result["reason"] and result["completionTime"]
    assert result["status"]["replicaStatuses"]["Worker"]["succeeded"] >= 1
    assert json.loads(artifact.read_text()) == result

    lines = out.splitlines()
    assert lines[0] == f"submitted MSJob {namespace}/kfp-ok"
    assert any(line.endswith("kfp-ok: Running workers 2/2 restarts 0") for line in lines), out
    assert f"deleted MSJob {namespace}/kfp-ok" in lines
    wait_for(lambda: gone(client, "kfp-ok"), timeout=30, message="the finished job is deleted (--delete-after-done)")


def test_job_from_parameters_gets_a_generated_name(client, cluster, namespace, tmp_path, capsys):
    status_file = tmp_path / "status"
    code = launcher.main([
        "--name", "kfp-params", "--generate-name", "True", "--image", "mindspore/mindspore:2.10",
        "--command", "python train.py --epochs 1", "--workers", "2.0",
        "--node-selector", json.dumps(KWOK_POD_SPEC["nodeSelector"]),
        "--worker-annotations", json.dumps({EXIT: "0", RUN: "2"}),
        "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig), "--timeout", "120",
        "--status-output", str(status_file)])
    assert code == 0, capsys.readouterr()
    result = json.loads(status_file.read_text())
    assert result["state"] == "Succeeded" and result["name"].startswith("kfp-params-")
    job = client.get(result["name"])  # kept: --delete-after-done defaults to false
    worker = job.spec.ms_replica_specs.worker
    assert worker.replicas == 2
    assert worker.template["spec"]["containers"][0]["command"] == ["python", "train.py", "--epochs", "1"]


def test_failed_job_fails_the_step_with_its_reason(client, cluster, namespace, tmp_path, capsys):
    job = msjob("kfp-bad", workers=1, worker_annotations={EXIT: "3"}, runPolicy={"backoffLimit": 0})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    status_file = tmp_path / "status"
    code = launcher.main(["--msjob-file", str(path), "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
                          "--timeout", "120", "--status-output", str(status_file)])
    captured = capsys.readouterr()
    assert code == 1
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith(f"error: MSJob {namespace}/kfp-bad failed: BackoffLimitExceeded: ")
    assert "kfp-bad-worker-0" in err and "exit code 3" in err
    result = json.loads(status_file.read_text())
    assert result["state"] == "Failed" and result["succeeded"] is False and result["reason"] == "BackoffLimitExceeded"
    assert client.is_failed("kfp-bad")  # kept for inspection without --delete-after-done


def test_invalid_input_fails_readably(cluster, namespace, capsys):
    assert launcher.main(["--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig)]) == 1
    assert "give msjob_yaml, or image" in capsys.readouterr().err
    bad = msjob("kfp-invalid", workers=1)
    bad["spec"]["msReplicaSpecs"]["Scheduler"]["replicas"] = 2  # rejected by the API server
    assert launcher.main(["--msjob-yaml", yaml.safe_dump(bad), "--namespace", namespace,
                          "--kubeconfig", str(cluster.kubeconfig)]) == 1
    err = capsys.readouterr().err
    assert "the API server refused" in err and "Scheduler.replicas must be 1" in err and "Traceback" not in err


def test_sigterm_deletes_the_running_job(client, cluster, namespace, tmp_path):
    job = msjob("kfp-cancel", workers=2)  # runs until cancelled
    log = open(tmp_path / "launcher.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "msjob_operator.kfp.launcher", "--msjob-yaml", yaml.safe_dump(job),
         "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig), "--timeout", "300"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        # Cancel while the launcher is following a running job.
        wait_for(lambda: client.is_running("kfp-cancel"), timeout=60, message="the launcher's job running")
        wait_for(lambda: "kfp-cancel: Running" in (tmp_path / "launcher.log").read_text(), timeout=30,
                 message="the launcher reports the job running")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    output = (tmp_path / "launcher.log").read_text()
    assert f"cancelled by signal SIGTERM: deleting MSJob {namespace}/kfp-cancel" in output
    wait_for(lambda: gone(client, "kfp-cancel"), timeout=30, message="the cancelled step's MSJob is deleted")
    wait_for(lambda: not client.get_pods("kfp-cancel", include_terminating=False), timeout=60,
             message="its pods go with it")
