"""Real MindSpore 2.10 jobs, created as ``kubectl apply`` would, run by the operator on the process node.

Each job runs ``examples/scripts/`` from a ConfigMap; checkpoints go to a hostPath. MindSpore's
quirks the assertions allow for: a worker sometimes exits 139 after it has finished (so the
worker restartPolicy is ExitCode: 128+ restarts the gang, which resumes from the last
checkpoint), registration is jittery, and losses differ per rank.
"""

from __future__ import annotations

import re
import signal
import time

from msjob_operator.api import naming

from ..helpers import wait_for
from .support import Stopwatch, losses, mindspore_lines, msjob

JOB_TIMEOUT = 300  # seconds: generous, the machine has 2 cores and other tests may run beside


def flake_restarts(jobs, name: str) -> int:
    """Gang restarts caused by MindSpore's SIGSEGV at exit (exit code 139), which the tests tolerate.

    Read from the operator's log, one line per restart (the job's Events aggregate repeats of a reason
    into one Event with a count, and keep only the latest message)."""
    if jobs.operator is not None:
        return sum(1 for line in restart_lines(jobs, name) if "exit code 139" in line)
    return sum(e.count or 1 for e in jobs.events(name)
               if e.reason == "MemberFailed" and "exit code 139" in (e.message or ""))


def restart_lines(jobs, name: str) -> list[str]:
    """The operator's log line of each gang restart of the job for a member failure, oldest first."""
    marker = f"[{jobs.ns}/{name}] MemberFailed: restarting all pods"
    return [line for line in jobs.operator.log_path.read_text(errors="replace").splitlines() if marker in line]


def worker_ranks(jobs, name: str, workers: int) -> dict[int, int]:
    ranks = {}
    for index in range(workers):
        for log in jobs.logs(naming.pod_name(name, "Worker", index)):
            match = re.search(r"^rank (\d+) of (\d+) \(MSJOB_REPLICA_INDEX=(\d+)\)$", log, re.M)
            if match:
                assert int(match.group(2)) == workers
                assert int(match.group(3)) == index
                ranks[index] = int(match.group(1))
    return ranks


def test_data_parallel_training_with_allreduce_and_checkpoints(jobs, tmp_path, figures):
    ckpt = tmp_path / "ckpt"
    watch = Stopwatch()
    jobs.create(msjob("dp", workers=2, ckpt_dir=ckpt, worker_args=["--epochs", "3"]))

    def timeline():
        pods = jobs.pods("dp", include_terminating=False)
        if len(pods) == 3 and all(p.status.phase == "Running" for p in pods):
            watch.mark("pods_running")
        if all("rank " in jobs.log(f"dp-worker-{i}") for i in range(2)):
            watch.mark("cluster_formed")

    status = jobs.wait_finished("dp", JOB_TIMEOUT, watch=timeline)
    watch.mark("succeeded")
    assert status["state"] == "Succeeded", jobs.state("dp")
    figures("data_parallel", to_pods_running=watch.marks.get("pods_running"),
            to_cluster_formed=watch.marks.get("cluster_formed"), to_success=watch.marks["succeeded"],
            flake_restarts=status.get("restartCount", 0))
    assert status["restartCount"] == flake_restarts(jobs, "dp"), jobs.state("dp")

    # Each worker's MindSpore rank is its replica index (MS_NODE_ID), and the collectives work.
    assert worker_ranks(jobs, "dp", 2) == {0: 0, 1: 1}
    first_run = jobs.logs("dp-worker-0")[0]
    assert "allreduce check: sum of (rank + 1) over 2 ranks = 3 (expected 3)" in first_run
    # Data-parallel training (gradients AllReduced every step): the loss goes down.
    curve = losses(first_run)
    assert len(curve) == 3 * 8, mindspore_lines(first_run)
    assert curve[-1] < curve[0] / 5, curve
    assert re.search(r"^training finished: loss [0-9.]+ -> [0-9.]+$", first_run, re.M)
    # A checkpoint per epoch, on storage that outlives the pods.
    saved = sorted(p.name for p in (ckpt / "rank_0").glob("*.ckpt"))
    assert saved[:3] == ["linreg-1_8.ckpt", "linreg-2_8.ckpt", "linreg-3_8.ckpt"], saved

    # The workers registered from their own pods: own host name and pod IP.
    scheduler_log = jobs.logs("dp-scheduler-0")[0]
    for index in range(2):
        pod = f"dp-worker-{index}"
        ip = jobs.runs(pod)[0]["ip"]
        registered = rf"The new node: {index}\(role: MS_WORKER\), rank id: {index}, .*hostname: {pod}, "
        assert re.search(registered + rf"ip: {re.escape(ip)} ", scheduler_log), scheduler_log[-3000:]
    # The job's condition says why it succeeded; the remaining pods were cleaned up (cleanPodPolicy Running).
    assert "worker 0 succeeded" in jobs.condition("dp", "Succeeded")["message"]
    wait_for(lambda: all(p.status.phase in ("Succeeded", "Failed") for p in jobs.pods("dp")), timeout=30,
             message="no pod of dp left running", describe=lambda: jobs.state("dp"))


def test_parameter_server_joins_the_cluster(jobs, figures):
    watch = Stopwatch()
    jobs.create(msjob("ps", workers=2, ps=1, script="train_ps.py", worker_args=["--epochs", "1"]))
    status = jobs.wait_finished("ps", JOB_TIMEOUT)
    watch.mark("succeeded")
    assert status["state"] == "Succeeded", jobs.state("ps")
    figures("parameter_server", to_success=watch.marks["succeeded"], flake_restarts=status.get("restartCount", 0))

    ps_log = jobs.logs("ps-ps-0")[0]
    assert "MS_PSERVER (replica index 0) joining the cluster" in ps_log
    assert "parameter server joined the cluster (role MS_PSERVER" in ps_log
    scheduler_log = jobs.logs("ps-scheduler-0")[0]
    assert re.search(r"\(role: MS_PSERVER\), rank id: 0, .*hostname: ps-ps-0, .* is registered successfully",
                     scheduler_log)
    # With a PS, MindSpore ranks the workers by host IP (see builders/env.py): one rank each.
    assert sorted(worker_ranks(jobs, "ps", 2).values()) == [0, 1]
    assert re.search(r"hostname: ps-worker-0, .* is registered successfully", scheduler_log)
    assert status["replicaStatuses"]["PS"]["failed"] == 0, (status, [log[-4000:] for log in jobs.logs("ps-ps-0")])


def test_killed_worker_restarts_the_gang_which_resumes_from_the_checkpoint(jobs, tmp_path, figures):
    ckpt = tmp_path / "ckpt"
    jobs.create(msjob("gang", workers=2, ckpt_dir=ckpt, restart_policy="OnFailure", backoff_limit=3,
                      worker_args=["--epochs", "5", "--step-delay", "0.25"]))
    jobs.wait_log("gang-worker-1", r"checkpoint saved: /ckpt/rank_1/linreg-1_8\.ckpt", timeout=JOB_TIMEOUT)
    first = {p.metadata.name: p.metadata.uid for p in jobs.pods("gang")}

    watch = Stopwatch()
    pid = jobs.node.kill(jobs.ns, "gang-worker-1", signal.SIGKILL)
    watch.mark("killed")

    def timeline():
        pods = [p for p in jobs.pods("gang", include_terminating=False)
                if p.metadata.labels.get(naming.ATTEMPT_LABEL) == "1"]
        if len(pods) == 3 and all(p.status.phase == "Running" for p in pods):
            watch.mark("replacements_running")
        if any("resumed from" in jobs.log(f"gang-worker-{i}")
               and jobs.runs(f"gang-worker-{i}")[-1]["uid"] != first[f"gang-worker-{i}"] for i in range(2)):
            watch.mark("resumed")

    status = jobs.wait_finished("gang", JOB_TIMEOUT, watch=timeline)
    watch.mark("finished")
    assert status["state"] == "Succeeded", jobs.state("gang")
    figures("worker_killed", killed_pid=pid, kill_to_replacements_running=watch.marks.get("replacements_running"),
            kill_to_resumed=watch.marks.get("resumed"), kill_to_success=watch.marks["finished"],
            restarts=status["restartCount"])

    # One gang restart for the kill (plus any for MindSpore's exit-time SIGSEGV).
    assert status["restartCount"] == 1 + flake_restarts(jobs, "gang"), jobs.state("gang")
    if jobs.operator is not None:
        assert "Worker 1 (pod gang-worker-1) failed: exit code 137" in restart_lines(jobs, "gang")[0]
    jobs.wait_event("gang", "MemberFailed", "Warning")
    assert "replacements_running" in watch.marks, "the replacement gang was never seen running"
    # Every member was replaced, and the new workers went on from the last common checkpoint.
    for index in range(2):
        runs = jobs.runs(f"gang-worker-{index}")
        assert len(runs) >= 2 and runs[0]["uid"] == first[f"gang-worker-{index}"]
        resumed = re.search(r"^resumed from /ckpt/rank_\d/\S+-(\d+)_8\.ckpt \(epoch (\d+) of 5\)$",
                            jobs.logs(f"gang-worker-{index}")[1], re.M)
        assert resumed and int(resumed.group(2)) >= 1, mindspore_lines(jobs.logs(f"gang-worker-{index}")[1])
    assert len(jobs.runs("gang-scheduler-0")) >= 2
    last_run = jobs.logs("gang-worker-0")[-1]
    assert "training finished" in last_run or "nothing left to train" in last_run


def test_killed_scheduler_is_recreated_alone_under_recovery(jobs, tmp_path, figures):
    ckpt = tmp_path / "ckpt"
    jobs.create(msjob("rec", workers=2, ckpt_dir=ckpt, recovery=True,
                      worker_args=["--epochs", "5", "--step-delay", "0.25"]))
    jobs.wait_log("rec-worker-1", r"checkpoint saved: /ckpt/rank_1/linreg-1_8\.ckpt", timeout=JOB_TIMEOUT)
    old = jobs.core.read_namespaced_pod("rec-scheduler-0", jobs.ns)
    cluster_ip = next(s for s in jobs.services("rec") if s.metadata.name == "rec-scheduler").spec.cluster_ip
    workers_before = {p.metadata.name: p.metadata.uid for p in jobs.pods("rec") if "worker" in p.metadata.name}

    watch = Stopwatch()
    jobs.node.kill(jobs.ns, "rec-scheduler-0", signal.SIGKILL)
    at_recovery: dict = {}

    def timeline():
        pods = jobs.pods("rec", include_terminating=False)
        new = [p for p in pods if p.metadata.name == "rec-scheduler-0" and p.metadata.uid != old.metadata.uid]
        if new and new[0].status.phase in ("Running", "Succeeded") and "scheduler_running" not in watch.marks:
            watch.mark("scheduler_running")
            # What the operator did about the scheduler alone (later, a worker's exit-time SIGSEGV
            # may legitimately restart the gang).
            at_recovery["restartCount"] = jobs.get("rec")["status"].get("restartCount")
            at_recovery["workers"] = {p.metadata.name: p.metadata.uid for p in pods if "worker" in p.metadata.name}
        registered = re.findall(r"The new node: \d\(role: MS_WORKER\)", jobs.log("rec-scheduler-0"))
        if len(jobs.runs("rec-scheduler-0")) > 1 and len(registered) >= 2:
            watch.mark("workers_reregistered")

    status = jobs.wait_finished("rec", JOB_TIMEOUT, watch=timeline)
    watch.mark("finished")
    assert status["state"] == "Succeeded", jobs.state("rec")
    figures("scheduler_killed_recovery", kill_to_scheduler_running=watch.marks.get("scheduler_running"),
            kill_to_workers_reregistered=watch.marks.get("workers_reregistered"),
            kill_to_success=watch.marks["finished"])

    # Only the scheduler was recreated: no gang restart, the workers are the same pods (RESTARTS,
    # restartCount, counts the scheduler's restart: it counts every restart).
    assert at_recovery == {"restartCount": 1, "workers": workers_before}, at_recovery
    assert status["restartCount"] == 1 + flake_restarts(jobs, "rec"), jobs.state("rec")
    assert status["replicaStatuses"]["Scheduler"]["restarts"] == 1
    assert jobs.runs("rec-worker-0")[0]["uid"] == workers_before["rec-worker-0"]
    # The new scheduler is a new pod (with a new IP, behind the same Service address) and the
    # workers registered with it again.
    runs = jobs.runs("rec-scheduler-0")
    assert len(runs) >= 2 and runs[0]["uid"] == old.metadata.uid and runs[1]["ip"] != runs[0]["ip"]
    assert next(s for s in jobs.services("rec") if s.metadata.name == "rec-scheduler").spec.cluster_ip == cluster_ip
    new_log = jobs.logs("rec-scheduler-0")[1]
    for index in range(2):
        assert re.search(rf"The new node: {index}\(role: MS_WORKER\), rank id: {index}, "
                         rf".*hostname: rec-worker-{index}, ", new_log)
    for index in range(2):
        assert re.search(r"Successfully reconnected to the meta server|registered successfully|Reconnect",
                         jobs.logs(f"rec-worker-{index}")[0])
    assert any("training finished" in log for log in jobs.logs("rec-worker-0"))


def test_spent_restart_budget_fails_the_job_and_names_the_member(jobs, figures):
    jobs.create(msjob("budget", workers=2, restart_policy="OnFailure", backoff_limit=0,
                      worker_args=["--epochs", "3", "--crash-at-step", "4", "--crash-rank", "1",
                                   "--crash-exit-code", "3"]))
    watch = Stopwatch()
    status = jobs.wait_finished("budget", JOB_TIMEOUT)
    watch.mark("finished")
    assert status["state"] == "Failed", jobs.state("budget")
    failed = jobs.condition("budget", "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "Worker 1 (pod budget-worker-1) failed: exit code 3, Error" in failed["message"]
    assert "runPolicy.backoffLimit=0" in failed["message"]
    last = status["lastFailure"]
    assert (last["pod"], last["replicaType"], last["index"], last["exitCode"], last["reason"]) == \
        ("budget-worker-1", "Worker", 1, 3, "Error")
    assert "fault injection: rank 1 exits with code 3" in last["message"]  # the log's last lines
    assert status["restartCount"] == 0
    figures("budget_exhausted", to_failed=watch.marks["finished"])

    # cleanPodPolicy Running (the default): pods still running are deleted, the failed one stays.
    wait_for(lambda: [(p.metadata.name, p.status.phase) for p in jobs.pods("budget")]
             == [("budget-worker-1", "Failed")], timeout=60, message="only the failed worker is left",
             describe=lambda: jobs.state("budget"))
    # ... and their processes and network namespaces are gone.
    for pod in ("budget-scheduler-0", "budget-worker-0", "budget-worker-1"):
        run = jobs.runs(pod)[-1]
        assert all(c.get("exit_code") is not None for c in run["containers"].values()), run
        assert run["netns"] not in jobs.node.namespaces()


def test_script_failing_at_start_fails_the_job_fast_with_its_output(jobs, figures):
    started = time.monotonic()
    jobs.create(msjob("broken", workers=2, restart_policy="ExitCode",
                      worker_args=["--data-file", "/workspace/missing.npz"]))
    failed = jobs.wait_condition("broken", "Failed", timeout=120)
    figures("failing_at_start", to_failed=time.monotonic() - started)
    # Fast means no restart: exit code 1 is permanent under restartPolicy ExitCode.
    assert (jobs.get("broken").get("status") or {}).get("restartCount", 0) == 0, jobs.state("broken")
    assert failed["reason"] == "MemberFailed"
    assert re.search(r"Worker \d \(pod broken-worker-\d\) failed: exit code 1, Error", failed["message"]), failed
    assert "error: cannot read the training data '/workspace/missing.npz'" in failed["message"]
    assert "exit code 1 is permanent" in failed["message"]
    status = jobs.get("broken")["status"]
    assert status["restartCount"] == 0 and status["lastFailure"]["exitCode"] == 1
