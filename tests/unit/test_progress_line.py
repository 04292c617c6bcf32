"""The progress lines of `msjob wait`, the pipeline step and the demo: state, workers, restarts, training progress."""

from msjob_operator.api.models import MSJob
from msjob_operator.sdk.format import progress_line


def job(status: dict) -> MSJob:
    return MSJob.model_validate({
        "apiVersion": "mindspore.gitee.com/v1", "kind": "MSJob", "metadata": {"name": "train", "namespace": "ns"},
        "spec": {"msReplicaSpecs": {"Worker": {"replicas": 2, "template": {}}}}, "status": status})


def test_a_job_without_progress_shows_state_workers_and_restarts():
    assert progress_line(job({"state": "Running", "workers": "2/2", "restartCount": 1}), 4.12) == \
        "[  4.1s] train: Running workers 2/2 restarts 1"


def test_reported_progress_adds_step_loss_and_throughput():
    status = {"state": "Running", "workers": "2/2", "restartCount": 0,
              "progress": {"pod": "train-worker-0", "step": 37, "loss": 0.41234, "stepsPerSecond": 2.94}}
    assert progress_line(job(status), 42.1) == \
        "[ 42.1s] train: Running workers 2/2 restarts 0  step 37  loss 0.4123  2.9 steps/s"
    status["progress"] = {"step": 3}  # step times only (no ProgressCallback in the script): no loss
    assert progress_line(job(status), 42.1).endswith("restarts 0  step 3")
