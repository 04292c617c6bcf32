"""MSJobClient, the Python SDK, against the real local cluster with the operator running."""


import pytest

from msjob_operator.api import naming
from msjob_operator.sdk import (
    LogsUnavailableError,
    MSJob,
    MSJobFailedError,
    MSJobNotFoundError,
    MSJobStatus,
    MSJobTimeoutError,
    new_msjob,
    state_of,
    status_of,
)

from ..helpers import wait_for
from .msjobs import EXIT, KWOK_POD_SPEC, RUN, msjob

pytestmark = pytest.mark.cluster



def test_create_and_wait_reports_every_change_until_succeeded(client):
    body = new_msjob("train", "mindspore/mindspore:2.10", ["python", "train.py"], workers=2,
                     env={"EPOCHS": "1"}, node_selector=KWOK_POD_SPEC["nodeSelector"],
                     worker_annotations={EXIT: "0", RUN: "3"})
    created = client.create(body)
    assert isinstance(created, MSJob) and created.name == "train" and created.namespace == client.namespace
    assert created.spec.ms_replica_specs.worker.replicas == 2

    seen: list[MSJob] = []
    done = client.wait_for_job("train", timeout=120, polling_interval=1, callback=seen.append)

    assert state_of(done) == "Succeeded" and client.is_succeeded("train")
    assert not client.is_failed("train")
    states = [state_of(j) for j in seen]
    assert states[-1] == "Succeeded" and "Running" in states, states
    # Called once per change: every version reported is a new one, in order.
    versions = [int(j.metadata["resourceVersion"]) for j in seen]
    assert versions == sorted(set(versions)), versions
    status = client.get_status("train")
    assert isinstance(status, MSJobStatus) and status.completion_time and status.restart_count in (0, None)
    assert {c.type for c in status.conditions} >= {"Created", "Running", "Succeeded"}
    # The builder's pods ran where and how it said.
    worker = next(p for p in client.get_pods("train", replica_type="worker") if p.metadata.name == "train-worker-0")
    container = worker.spec.containers[0]
    assert container.name == "mindspore" and container.command == ["python", "train.py"]
    assert {"EPOCHS": "1"}.items() <= {e.name: e.value for e in container.env}.items()
    assert worker.spec.node_selector == {"type": "kwok"}


def test_failed_job_raises_with_its_reason(client):
    client.create(msjob("boom", workers=1, worker_annotations={EXIT: "3"}, runPolicy={"backoffLimit": 0}))
    with pytest.raises(MSJobFailedError) as err:
        client.wait_for_job("boom", timeout=120)
    assert err.value.reason == "BackoffLimitExceeded"
    assert "boom-worker-0" in err.value.message and "exit code 3" in err.value.message
    assert "BackoffLimitExceeded" in str(err.value) and state_of(err.value.job) == "Failed"
    assert client.is_failed("boom")
    assert status_of(client.get("boom")).last_failure.exit_code == 3
    # Waiting for another condition on a failed job does not wait for the timeout either: it
    # raises the failure, not MSJobTimeoutError.
    with pytest.raises(MSJobFailedError):
        client.wait_for_condition("boom", "Running", timeout=60)


def test_timeout_suspend_resume_and_logs(client):
    client.create(msjob("pause", workers=2))  # runs until told otherwise
    running = client.wait_for_condition("pause", "Running", timeout=60)
    assert client.is_running("pause") and status_of(running).workers == "2/2"

    with pytest.raises(MSJobTimeoutError) as err:
        client.wait_for_condition("pause", ("Succeeded", "Failed"), timeout=2)
    assert isinstance(err.value, TimeoutError)
    assert state_of(err.value.job) == "Running" and "last state: Running" in str(err.value)

    # Pods on kwok's fake nodes have no logs: a LogsUnavailableError naming the pod and its node.
    with pytest.raises(LogsUnavailableError) as logs:
        client.get_logs("pause", replica_type="Worker", index=1, tail_lines=10)
    assert logs.value.pod == "pause-worker-1" and logs.value.node and logs.value.node.startswith("kwok")
    assert "pause-worker-1" in str(logs.value)
    with pytest.raises(LogsUnavailableError, match="no Worker 7 pod"):
        client.get_logs("pause", index=7)

    before = {p.metadata.name: p.metadata.uid for p in client.get_pods("pause")}
    assert sorted(before) == ["pause-scheduler-0", "pause-worker-0", "pause-worker-1"]
    client.suspend("pause")
    client.wait_for_condition("pause", "Suspended", timeout=60)
    wait_for(lambda: not client.get_pods("pause"), timeout=60, message="a suspended job holds no pods")
    assert client.is_suspended("pause") and state_of(client.get("pause")) == "Suspended"

    client.resume("pause")
    client.wait_for_condition("pause", "Running", timeout=60)
    after = wait_for(lambda: {p.metadata.name: p for p in client.get_pods("pause", include_terminating=False)
                              if p.status.phase == "Running"} or None, timeout=60, message="pods back after resume")
    assert sorted(after) == sorted(before)
    assert all(after[n].metadata.uid != before[n] for n in before)  # recreated, not kept
    assert not client.is_suspended("pause")
    assert int(after["pause-worker-0"].metadata.labels[naming.ATTEMPT_LABEL]) >= 1


def test_list_get_and_delete(client):
    client.create(msjob("alpha", workers=1, runPolicy={"suspend": True}))
    beta = msjob("beta", workers=1, runPolicy={"suspend": True})
    beta["metadata"]["labels"] = {"team": "vision"}
    client.create(MSJob.model_validate(beta))  # a typed job is accepted too

    assert [j.name for j in client.list()] == ["alpha", "beta"]
    assert [j.name for j in client.list(label_selector="team=vision")] == ["beta"]
    everywhere = {(j.namespace, j.name) for j in client.list(all_namespaces=True)}
    assert {(client.namespace, "alpha"), (client.namespace, "beta")} <= everywhere
    got = client.get("beta")
    assert got.metadata["labels"] == {"team": "vision"} and got.spec.run_policy.suspend is True

    client.delete("alpha", wait=True, timeout=60)
    with pytest.raises(MSJobNotFoundError):
        client.get("alpha")
    with pytest.raises(MSJobNotFoundError):
        client.delete("alpha")
    assert [j.name for j in client.list()] == ["beta"]
