"""`make run`'s job: the demo's data-parallel training (a scheduler and two workers, progress reported) run by
the operator on the process node, followed as the demo follows it, with the lines a user sees."""

from __future__ import annotations

import io
import re

from msjob_localcluster import demo
from msjob_operator.sdk import MSJobClient

from .test_mindspore import JOB_TIMEOUT

LINE = re.compile(r"^\[ *(?P<t>[0-9.]+)s\] demo-train: (?P<state>\w+) workers (?P<ready>\d)/2 "
                  r"restarts (?P<restarts>\d+)"
                  r"(?:  step (?P<step>\d+)  loss (?P<loss>[0-9.e+-]+)  (?P<rate>[0-9.]+) steps/s)?$")


def test_the_demo_trains_and_shows_step_loss_and_throughput(jobs, kube, tmp_path, figures):
    demo.apply_configmap(jobs.core, jobs.ns, demo.scripts_configmap())
    body = demo.load_job(demo.TRAIN_DEMO, checkpoints=tmp_path / "ckpt")
    out = io.StringIO()
    client = MSJobClient(api_client=kube, namespace=jobs.ns)
    code = demo.submit_and_follow(client, body, jobs.ns, JOB_TIMEOUT, out)
    lines = out.getvalue().splitlines()
    assert code == 0, "\n".join(lines) + f"\n{jobs.state('demo-train')}"

    assert lines[0] == f"submitted MSJob {jobs.ns}/demo-train"
    progress = [m for m in map(LINE.match, lines[1:]) if m]
    assert progress, lines
    training = [m for m in progress if m["step"]]
    assert len(training) >= 3, lines  # live lines while it trains, every reported step a new one
    assert all(m["state"] in ("Running", "Succeeded", "Restarting") for m in training), lines
    first, last = training[0], training[-1]
    assert first["state"] == "Running" and first["ready"] == "2"
    status = jobs.get("demo-train")["status"]
    restarts = status.get("restartCount", 0)
    if restarts == 0:  # MindSpore's occasional SIGSEGV at exit restarts the gang, which resumes at a later step
        steps = [int(m["step"]) for m in training]
        assert steps == sorted(steps) and steps[-1] == 5 * 24, lines
    # The loss goes down, as reported by worker 0 through the operator's status.
    assert float(last["loss"]) < float(first["loss"]), lines
    assert float(last["rate"]) > 0
    assert lines[-2].startswith("demo-train: Succeeded: ") and "worker 0 succeeded" in lines[-2], lines
    summary = re.match(r"^final loss ([0-9.e+-]+) at step (\d+) \(([0-9.]+) steps/s\); "
                       r"first training step seen ([0-9.]+) s after submission$", lines[-1])
    assert summary, lines[-1]
    assert float(summary[1]) == float(last["loss"]) and int(summary[2]) == int(last["step"])
    assert abs(float(summary[4]) - float(first["t"])) <= 0.2  # the time of the first line with a step
    assert status["progress"]["pod"] == "demo-train-worker-0"
    figures("demo", first_step=float(summary[4]), to_success=float(progress[-1]["t"]), restarts=restarts)
    # The workers trained on the demo's own checkpoint directory, not the path written in the example.
    assert sorted(p.name for p in (tmp_path / "ckpt" / "rank_0").glob("*.ckpt"))
