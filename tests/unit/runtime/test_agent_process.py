"""agent_process and agent_output: the process group's start, stop and clean-up with real processes,
the output tail, the console's line discipline, and reaping every orphan as a subreaper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msjob_runtime
from msjob_runtime.agent_output import Console, OutputTail
from msjob_runtime.agent_process import Supervisor, live_children

from ...helpers import wait_for

CHILD = str(Path(__file__).parents[2] / "agent_child.py")


def exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def supervisor(tmp_path) -> tuple[Supervisor, Path]:
    path = tmp_path / "console.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return Supervisor(Console(fd, fd), reap_all=False), path


def run_child(s: Supervisor, action: str, epoch: int = 0):
    env = {**os.environ, "MSJOB_EPOCH": str(epoch), "PYTHONUNBUFFERED": "1"}
    return s.start([sys.executable, CHILD, action], env)


def helper_pid(log: Path) -> int:
    line = wait_for(lambda: [x for x in log.read_text().splitlines() if x.startswith("child: helper=")],
                    timeout=30, message="the child's helper", describe=log.read_text)[0]
    return int(line.split("=")[1])


def test_stop_escalates_to_sigkill_and_ends_the_whole_group(tmp_path):
    s, log = supervisor(tmp_path)
    p = run_child(s, "stubborn")
    helper = helper_pid(log)
    done = s.stop(0.5)
    assert done is p and p.code == 137 and p.finished_at is not None  # SIGTERM ignored: killed
    assert not exists(p.pid) and not exists(helper)
    assert "got SIGTERM, ignoring it" in log.read_text()
    assert "got SIGTERM, ignoring it" in p.output()


def test_stop_with_sigterm_gives_the_shell_code(tmp_path):
    s, log = supervisor(tmp_path)
    p = run_child(s, "hang")
    helper = helper_pid(log)
    assert s.stop(30).code == 143 and "child: got SIGTERM" in p.output()
    assert not exists(helper)


def test_own_exit_kills_what_is_left_and_keeps_the_last_output(tmp_path):
    s, log = supervisor(tmp_path)
    p = run_child(s, "exit=3")
    wait_for(lambda: s.reap() or s.exited() is not None, timeout=30, message="the child's exit")
    assert s.exited() == 3
    s.cleanup()
    assert s.exited() is None  # finished: no longer "the current process"
    out = p.output()
    # Both streams, each chunk in the order it was read (stdout's and stderr's may cross).
    assert "child: exiting with 3" in out and "child: output line 99 of epoch 0" in out
    assert len(out.encode()) <= 2048 and len(out.splitlines()) < 100
    assert all(line.startswith("child: ") for line in out.splitlines())  # cut at a line start
    text = log.read_text()
    assert "child: output line 0 of epoch 0\n" in text and text.endswith("child: exiting with 3\n")  # teed whole


def test_a_command_that_cannot_run(tmp_path):
    s, _ = supervisor(tmp_path)
    try:
        s.start(["/no/such/command"], {})
    except OSError as e:
        from msjob_runtime.agent_process import start_error_code
        assert start_error_code(e) == 127
    else:
        raise AssertionError("started a missing command")


def test_output_tail_and_console_lines(tmp_path):
    tail = OutputTail(keep=64)
    tail.add(b"a" * 100 + b"\nlast line\n")
    assert tail.text() == "last line"
    tail.add(b"x" * 30 + b"\n")
    assert tail.text(limit=35) == "x" * 30  # cut at the line start within reach
    assert tail.text(lines=1) == "x" * 30
    tail.add("é".encode()[:1])
    assert tail.text().endswith("\ufffd")  # a cut character decodes leniently

    path = tmp_path / "c.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    c = Console(fd, fd)
    c.passthrough(fd, b"progress 10%")
    c.line("msjob-agent: epoch=0 exit pid=1 code=0 at=x")
    c.passthrough(fd, b"done\n")
    c.line("msjob-agent: next")
    os.close(fd)
    assert path.read_text().splitlines() == ["progress 10%", "msjob-agent: epoch=0 exit pid=1 code=0 at=x",
                                             "done", "msjob-agent: next"]


REAPER = """
import json, os, sys, time
from msjob_runtime.agent_output import Console
from msjob_runtime.agent_process import Supervisor, become_subreaper, live_children
assert become_subreaper()
s = Supervisor(Console(), reap_all=True)
p = s.start([sys.executable, "-c", sys.argv[1]], dict(os.environ))
while s.exited() is None:
    s.reap(); time.sleep(0.05)
escaped = int(open(sys.argv[2]).read())
alive_before = os.path.exists(f"/proc/{escaped}")
s.cleanup()
def zombie_child(c):
    return open(f"/proc/{c}/stat").read().rpartition(")")[2].split()[:2] == ["Z", str(os.getpid())]
zombies = [c for c in os.listdir("/proc") if c.isdigit() and zombie_child(c)]
print(json.dumps({"code": p.code, "escaped": escaped, "alive_before": alive_before, "reaped": s.reaped_others,
                  "children": live_children(os.getpid()), "zombies": zombies}))
"""

# The child: one grandchild that leaves the group (setsid) and sleeps; one that exits at once
# and is never waited for; then the child exits 5 without waiting.
FAMILY = """
import os, subprocess, sys, time
escaped = subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)"])
subprocess.Popen([sys.executable, "-c", "pass"])
open(sys.argv[1], "w").write(str(escaped.pid))
time.sleep(0.5)
os._exit(5)
"""


def test_as_subreaper_every_orphan_is_killed_and_reaped(tmp_path):
    """In a process of its own (reaping every child of pytest would be rude): a grandchild that
    left the process group is still found and killed, and no zombie is left."""
    pid_file = tmp_path / "escaped"
    env = {**os.environ, "PYTHONPATH": str(Path(msjob_runtime.__file__).parents[1])}
    ours = set(live_children(os.getpid()))  # in a full run, pytest has children of its own (clusters, operators)
    done = subprocess.run([sys.executable, "-c", REAPER, FAMILY.replace("sys.argv[1]", repr(str(pid_file))),
                           str(pid_file)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 5 and result["alive_before"], result
    assert not exists(result["escaped"]), result
    assert result["children"] == [] and result["zombies"] == [], result
    assert result["reaped"] >= 2, result  # the quick grandchild and the escaped one
    assert set(live_children(os.getpid())) <= ours  # nothing of it became ours
