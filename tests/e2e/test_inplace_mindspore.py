"""restartStrategy InPlace with real MindSpore 2.10 on the process node: the operator and the agent together.

Each member's command runs under the agent, which the operator's init container copies into the pod.
What every test checks from the agents' own event lines (``agent_protocol.parse_event_line``, each with
its microsecond wall-clock time, all pods on one machine): no process of an epoch started before every
process of the previous epoch, in every pod, had ended. The figure beside Recreate: seconds from the
SIGKILL of a worker's training process to the first training step of the new attempt.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

from msjob_localcluster.processnode import IMAGE_LACKS_ANNOTATION
from msjob_operator.api import naming
from msjob_runtime.agent_protocol import EXIT, START, AgentEvent, parse_event_line, quiesced

from ..helpers import member_report, wait_for
from .support import Stopwatch, msjob
from .test_mindspore import JOB_TIMEOUT

STEP = re.compile(r"^step \d+ epoch \d+ loss ", re.M)
EPOCH1_START = re.compile(r"^msjob-agent: epoch=1 start ", re.M)


def in_place(body: dict, **failure_policy) -> dict:
    body["spec"]["failurePolicy"] = {"restartStrategy": "InPlace", **failure_policy}
    return body


def members(name: str, workers: int = 2, scheduler: bool = True) -> list[str]:
    pods = [naming.pod_name(name, "Scheduler", 0)] if scheduler else []
    return pods + [naming.pod_name(name, "Worker", i) for i in range(workers)]


def report(jobs, pod: str) -> dict | None:
    return member_report(jobs.core, jobs.core.read_namespaced_pod(pod, jobs.ns))


def process_pid(jobs, pod: str, epoch: int = 0) -> int:
    """The PID of the member's training process (the agent's child) running ``epoch``."""
    found = wait_for(lambda: (r := report(jobs, pod)) and r["epoch"] == epoch and r["state"] == "Running" and r,
                     timeout=JOB_TIMEOUT, message=f"{pod} reports epoch {epoch} running",
                     describe=lambda: jobs.log(pod)[-2000:])
    return int(found["pid"])


def runs_of(jobs, pods: list[str]) -> list[tuple[str, int, datetime, datetime | None]]:
    """(pod, epoch, start, end) of every process the agents ran, from their event lines; a process whose
    agent was killed (no exit line) ends when its container ended (PR_SET_PDEATHSIG killed it then), a
    time the node keeps to the second: taken at the end of that second."""
    out = []
    for pod in pods:
        for record, log in zip(jobs.runs(pod), jobs.logs(pod), strict=True):
            events: list[AgentEvent] = [e for e in map(parse_event_line, log.splitlines()) if e is not None]
            starts = {(e.epoch, e.pid): e.at for e in events if e.event == START}
            ends = {(e.epoch, e.pid): e.at for e in events if e.event == EXIT}
            container = next(c for c in record["containers"].values() if not c.get("init"))
            died = container.get("finished")
            for key, at in starts.items():
                end = ends.get(key)
                if end is None and died:
                    end = datetime.fromisoformat(died.replace("Z", "+00:00")).astimezone(timezone.utc) + \
                        timedelta(seconds=1)
                out.append((pod, key[0], at, end))
    return out


def assert_no_overlap(jobs, pods: list[str]) -> dict[int, int]:
    """No process of epoch e+1 started before every process of epoch e had ended; processes per epoch."""
    runs = runs_of(jobs, pods)
    epochs = sorted({epoch for _, epoch, _, _ in runs})
    for old, new in itertools.pairwise(epochs):
        ends = [end for _, epoch, _, end in runs if epoch == old]
        starts = [start for _, epoch, start, _ in runs if epoch == new]
        assert all(end is not None for end in ends), f"a process of epoch {old} never ended: {runs}"
        assert max(ends) <= min(starts), f"epoch {new} started at {min(starts)} before epoch {old} ended at " \
                                         f"{max(ends)}: {runs}"
    return {epoch: sum(1 for _, e, _, _ in runs if e == epoch) for epoch in epochs}


def flake_restarts(jobs, name: str) -> int:
    """In-place restarts for MindSpore's SIGSEGV after a finished run (exit code 139), which tests allow."""
    if jobs.operator is None:
        return 0
    marker = f"[{jobs.ns}/{name}] MemberFailed: restarting every member in place"
    return sum(1 for line in jobs.operator.log_path.read_text(errors="replace").splitlines()
               if marker in line and "exit code 139" in line)


def uids(jobs, name: str) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in jobs.pods(name)}


def ran(jobs, pods: list[str]) -> dict[str, list[str]]:
    """The pod UIDs each member ran under (the node's records outlive the pods), oldest first."""
    return {pod: [r["uid"] for r in jobs.runs(pod)] for pod in pods}


def first_step_after(jobs, pod: str, marker: re.Pattern) -> bool:
    log = jobs.log(pod)
    found = marker.search(log)
    return bool(found and STEP.search(log, found.end()))


def test_killed_training_process_restarts_in_place_beside_recreate(jobs, tmp_path, figures):
    """A 2-worker data-parallel job: worker 1's training process (not its pod) is SIGKILLed. InPlace: the
    same pods, every member's process restarted, training resumes from the checkpoint. The same job with
    Recreate after it, for the figure kill -> first step of the new attempt."""
    results = {}
    for strategy, name in (("InPlace", "ipk"), ("Recreate", "rck")):
        body = msjob(name, workers=2, ckpt_dir=tmp_path / name, restart_policy="OnFailure", backoff_limit=3,
                     worker_args=["--epochs", "5", "--step-delay", "0.25"])
        if strategy == "InPlace":
            in_place(body)
        jobs.create(body)
        victim = naming.pod_name(name, "Worker", 1)
        jobs.wait_log(victim, r"checkpoint saved: /ckpt/rank_1/linreg-1_8\.ckpt", timeout=JOB_TIMEOUT)
        first = uids(jobs, name)
        pid = process_pid(jobs, victim) if strategy == "InPlace" else jobs.runs(victim)[-1]["containers"][
            "mindspore"]["pid"]
        watch = Stopwatch()
        os.kill(pid, signal.SIGKILL)  # Recreate: the container's process is the training process itself
        watch.mark("killed")

        def timeline(name=name, strategy=strategy, first=first, watch=watch):
            worker0 = naming.pod_name(name, "Worker", 0)
            if strategy == "InPlace":
                stepped = first_step_after(jobs, worker0, EPOCH1_START)
            else:
                runs = jobs.runs(worker0)
                stepped = runs[-1]["uid"] != first[worker0] and bool(STEP.search(jobs.log(worker0)))
            if stepped:
                watch.mark("first_step")

        status = jobs.wait_finished(name, JOB_TIMEOUT, watch=timeline)
        watch.mark("finished")
        assert status["state"] == "Succeeded", jobs.state(name)
        assert "first_step" in watch.marks, "the new attempt's first step was never seen"
        results[strategy] = (watch, status, first)
        restart = status["lastRestart"]
        figures("in_place_vs_recreate", **{f"{strategy}_kill_to_first_step": watch.since("killed", "first_step"),
                                           f"{strategy}_kill_to_success": watch.since("killed", "finished")},
                **{f"{strategy}_{k}": v for k, v in restart.items() if k in ("failureDetected", "membersStopped",
                                                                             "barrierLifted", "membersRunning")})

    watch, status, first = results["InPlace"]
    pods = members("ipk")
    assert {pod: [r["uid"] for r in jobs.runs(pod)] for pod in pods} == {pod: [first[pod]] for pod in pods}
    assert status["restartCount"] == 1 + flake_restarts(jobs, "ipk"), jobs.state("ipk")
    assert status["lastRestart"]["strategy"] == "InPlace" and status["lastFailure"]["exitCode"] == 137
    per_epoch = assert_no_overlap(jobs, pods)
    assert per_epoch[0] == 3 and per_epoch[1] == 3, per_epoch  # every member's process restarted
    for index in range(2):
        log = jobs.log(naming.pod_name("ipk", "Worker", index))
        after = log[EPOCH1_START.search(log).end():]
        resumed = re.search(r"^resumed from /ckpt/rank_\d/\S+-(\d+)_8\.ckpt \(epoch (\d+) of 5\)$", after, re.M)
        assert resumed and int(resumed.group(2)) >= 1, after[-3000:]
    # Recreate replaced every pod (the reference the figure compares with).
    _, rstatus, rfirst = results["Recreate"]
    assert rstatus["lastRestart"]["strategy"] == "Recreate"
    assert all(jobs.runs(pod)[-1]["uid"] != rfirst[pod] for pod in members("rck"))


def test_killed_scheduler_process_restarts_in_its_own_pod(jobs, tmp_path, figures):
    jobs.create(in_place(msjob("ips", workers=2, ckpt_dir=tmp_path / "ckpt", restart_policy="OnFailure",
                               worker_args=["--epochs", "4", "--step-delay", "0.25"])))
    jobs.wait_log("ips-worker-1", r"checkpoint saved: /ckpt/rank_1/linreg-1_8\.ckpt", timeout=JOB_TIMEOUT)
    first = uids(jobs, "ips")
    cluster_ip = next(s for s in jobs.services("ips") if s.metadata.name == "ips-scheduler").spec.cluster_ip
    watch = Stopwatch()
    os.kill(process_pid(jobs, "ips-scheduler-0"), signal.SIGKILL)
    status = jobs.wait_finished("ips", JOB_TIMEOUT)
    watch.mark("finished")
    assert status["state"] == "Succeeded", jobs.state("ips")
    figures("scheduler_process_killed_in_place", kill_to_success=watch.marks["finished"])
    # The scheduler restarted in its own pod, at the same address.
    assert ran(jobs, members("ips")) == {pod: [uid] for pod, uid in first.items()}
    assert next(s for s in jobs.services("ips") if s.metadata.name == "ips-scheduler").spec.cluster_ip == cluster_ip
    assert status["lastFailure"]["pod"] == "ips-scheduler-0"
    assert status["restartCount"] == 1 + flake_restarts(jobs, "ips"), jobs.state("ips")
    per_epoch = assert_no_overlap(jobs, members("ips"))
    assert per_epoch[1] == 3, per_epoch
    assert re.search(r"The new node: 1\(role: MS_WORKER\)", jobs.log("ips-scheduler-0")[
        EPOCH1_START.search(jobs.log("ips-scheduler-0")).end():])


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (msrun's workers, which it starts in sessions of their own)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_msrun_parent_and_children_restart_as_one_group(jobs, tmp_path, figures):
    body = in_place(msjob("imr", workers=2, ckpt_dir=tmp_path / "ckpt", restart_policy="OnFailure",
                          worker_args=["--epochs", "4", "--step-delay", "0.25"]))
    spec = body["spec"]
    del spec["msReplicaSpecs"]["Scheduler"]
    spec["mindspore"].update(launchMode="Msrun", processesPerPod=2)
    container = spec["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    container["command"] = ["bash", "-c", "exec msrun $MSRUN_ARGS /workspace/train_data_parallel.py "
                            + " ".join(container.pop("args"))]
    jobs.create(body)
    pods = members("imr", scheduler=False)
    msruns = {pod: process_pid(jobs, pod) for pod in pods}
    wait_for(lambda: list((tmp_path / "ckpt").glob("rank_*/linreg-1_8.ckpt")), timeout=JOB_TIMEOUT,
             message="a first checkpoint")
    old = {pod: children(pid) for pod, pid in msruns.items()}
    first = uids(jobs, "imr")
    workers = [pid for pid in old["imr-worker-1"] if "train_data_parallel.py" in cmdline(pid)]
    assert workers, [(pid, cmdline(pid)) for pid in old["imr-worker-1"]]
    watch = Stopwatch()
    os.kill(workers[0], signal.SIGKILL)  # one of msrun's workers in pod 1
    status = jobs.wait_finished("imr", JOB_TIMEOUT)
    watch.mark("finished")
    assert status["state"] == "Succeeded", jobs.state("imr")
    figures("msrun_worker_killed_in_place", kill_to_success=watch.marks["finished"])
    assert ran(jobs, pods) == {pod: [uid] for pod, uid in first.items()}
    assert status["restartCount"] == 1 + flake_restarts(jobs, "imr"), jobs.state("imr")
    per_epoch = assert_no_overlap(jobs, pods)
    assert per_epoch[1] == 2, per_epoch  # msrun itself, under the agent, in both pods
    # Nothing of the old groups survived, msrun's setsid'd workers included.
    assert not [pid for pids in old.values() for pid in pids if alive(pid)]


def stubborn(body: dict, index: int, grace: int) -> None:
    """Worker ``index`` ignores SIGTERM (its agent then waits its grace, ``grace`` - 5 s, and SIGKILLs it):
    a restart that takes long enough to act during it."""
    template = body["spec"]["msReplicaSpecs"]["Worker"]["template"]
    template["spec"]["terminationGracePeriodSeconds"] = grace
    container = template["spec"]["containers"][0]
    line = " ".join(["exec", *container["command"], *container.pop("args")])
    container["command"] = ["sh", "-c", f"if [ \"$MSJOB_REPLICA_INDEX\" = {index} ]; then trap '' TERM; fi; {line}"]


def test_operator_killed_mid_restart_and_a_pod_deleted_meanwhile(jobs, tmp_path):
    """The operator is SIGKILLed between moving the epoch and lifting the barrier, and the scheduler's pod
    is deleted while no operator runs: the restarted operator resumes the same restart, recreates that
    member, and releases the epoch only once the stubborn worker's old process is gone."""
    if jobs.operator is None:
        raise AssertionError("this test kills the operator: run it with the e2e package's own operator")
    body = in_place(msjob("imk", workers=2, ckpt_dir=tmp_path / "ckpt", restart_policy="OnFailure",
                          worker_args=["--epochs", "4", "--step-delay", "0.25"]))
    stubborn(body, 0, grace=20)
    jobs.create(body)
    jobs.wait_log("imk-worker-1", r"checkpoint saved: /ckpt/rank_1/linreg-1_8\.ckpt", timeout=JOB_TIMEOUT)
    first = uids(jobs, "imk")
    os.kill(process_pid(jobs, "imk-worker-1"), signal.SIGKILL)
    gang = wait_for(lambda: (g := jobs.get("imk")["status"].get("gang")) and g.get("epoch") == 1 and g,
                    timeout=60, message="the epoch moved")
    assert gang["released"] == 0
    # The status is written before the ConfigMap in a pass: kill the operator once the agents can see it.
    wait_for(lambda: jobs.core.read_namespaced_config_map("imk-gang", jobs.ns).data.get("epoch") == "1",
             timeout=60, message="the gang ConfigMap's epoch moved")
    jobs.operator.kill()
    try:
        jobs.core.delete_namespaced_pod("imk-scheduler-0", jobs.ns)
        # Stopped(0) is followed at once by Waiting(1): either proves epoch 0 is over in that pod.
        wait_for(lambda: quiesced(report(jobs, "imk-worker-0"), 0),
                 timeout=60, message="worker 0's agent stopped it (SIGKILL after its grace)")
        cm = jobs.core.read_namespaced_config_map("imk-gang", jobs.ns)
        assert cm.data["released"] == "0"  # nobody lifted the barrier
    finally:
        jobs.operator.start()
    status = jobs.wait_finished("imk", JOB_TIMEOUT)
    assert status["state"] == "Succeeded", jobs.state("imk")
    runs = ran(jobs, members("imk"))
    assert runs["imk-scheduler-0"][0] == first["imk-scheduler-0"] and len(runs["imk-scheduler-0"]) == 2
    assert {k: runs[k] for k in ("imk-worker-0", "imk-worker-1")} == \
        {k: [first[k]] for k in ("imk-worker-0", "imk-worker-1")}
    assert status["restartCount"] == 1 + flake_restarts(jobs, "imk"), jobs.state("imk")
    assert "imk-scheduler-0" in status["lastRestart"].get("recreated", []) or \
        status["lastRestart"]["epoch"] > 1  # (a flake restart after it replaces the record)
    assert "epoch=0 exit" in jobs.log("imk-worker-0") and "code=137" in jobs.log("imk-worker-0")
    per_epoch = assert_no_overlap(jobs, members("imk"))
    assert per_epoch[1] == 3, per_epoch


def test_a_killed_agent_makes_its_member_recreated_while_the_others_restart_in_place(jobs, tmp_path):
    jobs.create(in_place(msjob("iag", workers=2, ckpt_dir=tmp_path / "ckpt", restart_policy="OnFailure",
                               worker_args=["--epochs", "4", "--step-delay", "0.25"])))
    jobs.wait_log("iag-worker-1", r"checkpoint saved: /ckpt/rank_1/linreg-1_8\.ckpt", timeout=JOB_TIMEOUT)
    first = uids(jobs, "iag")
    training = process_pid(jobs, "iag-worker-1")
    jobs.node.kill(jobs.ns, "iag-worker-1", signal.SIGKILL)  # the agent: the container's own process
    wait_for(lambda: not alive(training), timeout=30, message="the training process died with its agent")
    status = jobs.wait_finished("iag", JOB_TIMEOUT)
    assert status["state"] == "Succeeded", jobs.state("iag")
    runs = ran(jobs, members("iag"))
    assert runs["iag-worker-1"][0] == first["iag-worker-1"] and len(runs["iag-worker-1"]) == 2  # recreated
    assert runs["iag-worker-0"] == [first["iag-worker-0"]] and runs["iag-scheduler-0"] == [first["iag-scheduler-0"]]
    assert status["lastFailure"]["pod"] == "iag-worker-1"
    per_epoch = assert_no_overlap(jobs, members("iag"))
    assert per_epoch[1] == 3, per_epoch


def test_an_image_without_python3_falls_back_to_recreate_and_trains(jobs):
    """The "image" has `python` but no `python3` (the process node's opt-in annotation): the agent cannot
    start (StartError), the job goes on with Recreate from a new gang without the agent, not counted,
    and trains to success."""
    body = in_place(msjob("inp", workers=2, restart_policy="OnFailure"))
    for replica in body["spec"]["msReplicaSpecs"].values():
        replica["template"]["metadata"]["annotations"] = {IMAGE_LACKS_ANNOTATION: "python3"}
    jobs.create(body)
    status = jobs.wait_finished("inp", JOB_TIMEOUT)
    assert status["state"] == "Succeeded", jobs.state("inp")
    assert "has no python3" in status["gang"]["fallback"], status["gang"]
    assert 'exec: "python3"' in status["gang"]["fallback"]  # the runtime's own words
    assert not status.get("backoffCount"), jobs.state("inp")  # the fallback uses no budget
    fell_back = jobs.wait_event("inp", "InPlaceUnavailable", "Warning")
    assert "falls back to Recreate" in fell_back.message and "has no python3" in fell_back.message
    for pod in jobs.pods("inp"):
        assert pod.metadata.labels[naming.ATTEMPT_LABEL] != "0"
        assert pod.spec.containers[0].command == ["python", "/workspace/train_data_parallel.py"]
        assert not pod.spec.init_containers
    assert "allreduce check: sum of (rank + 1) over 2 ranks = 3" in jobs.log("inp-worker-1")
