"""launchMode Msrun with real MindSpore: 2 pods x 2 processes, msrun in each pod, no Scheduler replica."""

from __future__ import annotations

import re

from .support import msjob
from .test_mindspore import JOB_TIMEOUT


def test_msrun_two_pods_with_two_processes_each_train_to_success(jobs, tmp_path, figures):
    logs, ckpt = tmp_path / "msrun-logs", tmp_path / "ckpt"
    body = msjob("mr", workers=2, ckpt_dir=ckpt, worker_args=["--epochs", "2"])
    spec = body["spec"]
    del spec["msReplicaSpecs"]["Scheduler"]  # msrun starts the scheduler in worker 0
    spec["mindspore"].update(launchMode="Msrun", processesPerPod=2)
    pod_spec = spec["msReplicaSpecs"]["Worker"]["template"]["spec"]
    container = pod_spec["containers"][0]
    # The user's msrun line: every flag comes from the operator's MSRUN_ARGS.
    container["command"] = ["bash", "-c", "exec msrun $MSRUN_ARGS /workspace/train_data_parallel.py "
                            + " ".join(container.pop("args"))]
    # Logs on the host so the test can read every process's output (msrun writes one file per rank).
    pod_spec["volumes"].append({"name": "logs", "hostPath": {"path": str(logs), "type": "DirectoryOrCreate"}})
    container["volumeMounts"].append({"name": "logs", "mountPath": "/msrun-logs"})
    container["env"] = [*container.get("env", []), {"name": "MSRUN_LOG_DIR", "value": "/msrun-logs"}]
    jobs.create(body)

    status = jobs.wait_finished("mr", JOB_TIMEOUT)
    assert status["state"] == "Succeeded", jobs.state("mr")
    pods = jobs.pods("mr")  # finished pods are kept (cleanPodPolicy Running removes only active ones)
    assert [p.metadata.name for p in pods] == ["mr-worker-0", "mr-worker-1"]
    env = {e.name: e.value for e in pods[1].spec.containers[0].env}
    assert env["MS_WORKER_NUM"] == "4" and env["MS_LOCAL_WORKER"] == "2" and env["MS_NODE_RANK"] == "1"

    # Four MindSpore processes formed one cluster across the two pods, one rank each.
    ranks = {}
    for path in sorted(logs.glob("worker_*.log")):
        text = path.read_text(errors="replace")
        match = re.search(r"^rank (\d+) of (\d+) ", text, re.M)
        assert match, f"{path.name}: {text[-2000:]}"
        assert match.group(2) == "4"
        ranks[int(match.group(1))] = text
    assert sorted(ranks) == [0, 1, 2, 3], sorted(p.name for p in logs.iterdir())
    # The collectives span both pods: every rank contributed to the AllReduce.
    assert "allreduce check: sum of (rank + 1) over 4 ranks = 10 (expected 10)" in ranks[0]
    assert re.search(r"^training finished: loss [0-9.]+ -> [0-9.]+$", ranks[0], re.M)
    figures("msrun", restarts=status.get("restartCount", 0))
