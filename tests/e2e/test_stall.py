"""Stall detection with real MindSpore: a worker that hangs is seen through the health reporter
(a native sidecar reading MindSpore's step-time dump and patching its pod through the API server)
and the gang is restarted, which then trains to the end."""

from __future__ import annotations

from .support import Stopwatch, msjob
from .test_mindspore import JOB_TIMEOUT, flake_restarts

HANG_AT_STEP = 6  # in epoch 2 of 3 (4 steps an epoch): epoch 1's checkpoint is saved by then


def test_a_hanging_worker_is_detected_as_stalled_and_the_gang_restarted(jobs, tmp_path, figures):
    body = msjob("stall", workers=2, ckpt_dir=tmp_path / "ckpt", restart_policy="OnFailure", backoff_limit=3,
                 worker_args=["--epochs", "3", "--steps-per-epoch", "4", "--step-delay", "0.3",
                              "--hang-at-step", str(HANG_AT_STEP)])
    # A short stall timeout for the test, with room for MindSpore's slow start on a busy machine.
    body["spec"]["health"] = {"reportProgress": True, "intervalSeconds": 1, "stallTimeoutSeconds": 15,
                              "startupGraceSeconds": 240, "stallAction": "RestartJob"}
    watch = Stopwatch()
    jobs.create(body)

    # Progress flows: MindSpore's step times -> the reporter sidecar -> the pod annotation -> status.
    jobs.wait_log("stall-worker-0", rf"fault injection: rank 0 stops making progress at step {HANG_AT_STEP}",
                  timeout=JOB_TIMEOUT)
    watch.mark("hung")
    stalled = jobs.wait_event("stall", "Stalled", "Warning", timeout=120)
    watch.mark("stalled")
    assert "no training step for" in stalled.message, stalled.message

    status = jobs.wait_finished("stall", JOB_TIMEOUT)
    watch.mark("succeeded")
    assert status["state"] == "Succeeded", jobs.state("stall")
    figures("stall", hang_to_stalled=watch.since("hung", "stalled"), to_success=watch.marks["succeeded"])

    # The reporter had reported the steps before the hang, from worker 0's own pod.
    assert len(jobs.runs("stall-worker-0")) >= 2  # the hung run and its replacement
    progress = status.get("progress") or {}
    assert progress.get("pod") == "stall-worker-0" and progress.get("step", 0) >= 1, status
    # One counted restart for the stall (plus any of MindSpore's exit-time crashes the suite tolerates).
    assert status["restartCount"] == 1 + flake_restarts(jobs, "stall"), jobs.state("stall")
    stalled_condition = [c for c in status["conditions"] if c["type"] == "Stalled"]
    assert stalled_condition and stalled_condition[0]["reason"] in ("NoProgress", "Progressing"), status["conditions"]
    # The restarted run resumed from the checkpoint and did not hang again.
    hung_run, *later_runs = jobs.logs("stall-worker-0")
    assert f"stops making progress at step {HANG_AT_STEP}" in hung_run
    assert any("training finished" in log and "stops making progress" not in log
               for log in later_runs), later_runs[-1][-2000:]
    assert any("resumed from /ckpt/rank_0/" in log for log in later_runs)
    # The sidecar reported through its pod's own ServiceAccount token, in-cluster.
    reporter_log = jobs.node.log(jobs.ns, "stall-worker-0", container="msjob-reporter")
    assert "Traceback" not in reporter_log, reporter_log[-2000:]
