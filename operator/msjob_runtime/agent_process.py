"""The supervised process group: start, reap, stop.  Linux; standard library only.

* The command runs in a session (and process group) of its own, so that a signal reaches every
  process it started and none of the agent's; it gets SIGKILL should the agent die
  (``PR_SET_PDEATHSIG``, where ``ctypes`` is there).
* ``reap_all``: the agent may be PID 1 of its container, and it makes itself a child subreaper,
  so every orphan of the process tree becomes its child: it reaps them all (``waitpid(-1)``), and
  counts live ones as part of the group (a process that called ``setsid`` leaves the group but not
  the tree).  Without ``reap_all`` (tests inside another process) only the group is considered.
* A process group is finished when its first process has exited and no process of the group (or,
  with ``reap_all``, no other child) is left: after the first process's own exit the rest is
  killed at once, as a container runtime kills the container's cgroup; ``stop`` gives everything
  the grace period after the signal, then SIGKILL.
* Exit codes as a shell reports them: the process's status, or 128+N after signal N.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from datetime import datetime
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from .agent_output import Console, OutputTail, Tee
from .agent_protocol import utc_now

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_SECONDS = 0.05
KILL_WAIT_SECONDS = 30.0  # after SIGKILL: only a process stuck in the kernel takes longer
DRAIN_SECONDS = 1.0  # for the output threads once the processes are gone

try:
    import ctypes

    _prctl: Optional[Callable[..., int]] = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):  # no ctypes in this image, or no prctl: best effort
    _prctl = None


def become_subreaper() -> bool:
    """Orphans of our descendants become our children (Linux 3.4+); False where not possible."""
    return bool(_prctl is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _in_child() -> None:
    """Between fork and exec in the child: SIGKILL when the agent's (main) thread dies."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def exit_code(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    return 128  # stopped or continued: waitpid without WUNTRACED does not report these


def start_error_code(error: OSError) -> int:
    """As a shell: 127 when the command is not found, 126 when it cannot be executed."""
    return 127 if error.errno in (errno.ENOENT, errno.ENOTDIR) else 126


def live_children(parent: int) -> List[int]:
    """PIDs of ``parent``'s children that are not zombies (from /proc; empty without it)."""
    found: List[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == parent and fields[0] != b"Z":
            found.append(int(entry))
    return found


class Process:
    """One run of the command: its PID (also its process group's id), times and output."""

    def __init__(self, popen: subprocess.Popen, tee: Tee, tail: OutputTail):
        self.popen = popen
        self.pid = popen.pid
        self.started_at: datetime = utc_now()
        self.finished_at: Optional[datetime] = None
        self.code: Optional[int] = None  # the first process's exit code, once reaped
        self.tee = tee
        self.tail = tail

    def output(self) -> str:
        return self.tail.text()


class Supervisor:
    """Runs one process group at a time."""

    def __init__(self, console: Console, reap_all: bool = True):
        self.console = console
        self.reap_all = reap_all
        self.current: Optional[Process] = None
        self.reaped_others = 0  # orphans reaped (for the tests and the logs)

    def start(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None) -> Process:
        """Start ``argv`` (OSError when it cannot be executed)."""
        if self.current is not None and self.current.finished_at is None:
            raise RuntimeError("a process group is still running")
        tail = OutputTail()
        popen = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                 preexec_fn=_in_child if _prctl is not None else None, close_fds=True)
        pipes = {}
        for pipe, fd in ((popen.stdout, self.console.out_fd), (popen.stderr, self.console.err_fd)):
            assert pipe is not None  # stdout and stderr are PIPEs
            pipes[os.dup(pipe.fileno())] = fd  # the tee owns (and closes) its copies
            pipe.close()
        tee = Tee(pipes, self.console, tail, f"tee-{popen.pid}")
        tee.start()
        self.current = Process(popen, tee, tail)
        return self.current

    # ----- reaping

    def reap(self) -> None:
        """Collect exit statuses: every child with ``reap_all``, else the current process only."""
        p = self.current
        if not self.reap_all:
            if p is not None and p.code is None:
                self._wait_one(p)
            return
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if p is not None and pid == p.pid and p.code is None:
                self._reaped(p, status)
            else:
                self.reaped_others += 1

    def _wait_one(self, p: Process) -> None:
        try:
            pid, status = os.waitpid(p.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: the code is lost
            p.code, p.popen.returncode = 128, 128
            return
        if pid == p.pid:
            self._reaped(p, status)

    @staticmethod
    def _reaped(p: Process, status: int) -> None:
        p.code = exit_code(status)
        p.popen.returncode = p.code  # so that subprocess never waits for it itself

    def exited(self) -> Optional[int]:
        """The current process's exit code once it has exited by itself (None while it runs)."""
        p = self.current
        return None if p is None or p.finished_at is not None else p.code

    # ----- the group

    def _group_alive(self, p: Process) -> bool:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _others(self) -> List[int]:
        return live_children(os.getpid()) if self.reap_all else []

    def _alive(self, p: Process) -> bool:
        return p.code is None or self._group_alive(p) or bool(self._others())

    def _signal_all(self, p: Process, sig: int) -> None:
        for target in [-p.pid] + self._others():
            try:
                os.kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _wait_gone(self, p: Process, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.reap()
            if not self._alive(p):
                self.reap()  # what died since the last reap is a zombie now: collect it
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    def _finish(self, p: Process) -> Process:
        p.finished_at = utc_now()
        # A process left holding a pipe (one we could not kill) would keep the tee for ever: then
        # the output read so far is what the report gets.
        p.tee.join(DRAIN_SECONDS)
        return p

    def cleanup(self) -> Process:
        """After the first process's own exit: SIGKILL whatever of the group is left, reap it."""
        p = self._require()
        if self._group_alive(p) or self._others():
            self._signal_all(p, signal.SIGKILL)
            self._wait_gone(p, KILL_WAIT_SECONDS)
        return self._finish(p)

    def stop(self, grace: float, sig: int = signal.SIGTERM) -> Process:
        """``sig`` to the group (and the orphans), up to ``grace`` s for all of them to exit, then
        SIGKILL; returns the finished process (``code``: the first process's exit code)."""
        p = self._require()
        self._signal_all(p, sig)
        if not self._wait_gone(p, grace):
            self._signal_all(p, signal.SIGKILL)
            self._wait_gone(p, KILL_WAIT_SECONDS)
        if p.code is None:  # unkillable (stuck in the kernel): report it as killed
            p.code = 128 + signal.SIGKILL
        return self._finish(p)

    def _require(self) -> Process:
        if self.current is None or self.current.finished_at is not None:
            raise RuntimeError("no process group is running")
        return self.current


def child_env(base: Mapping[str, str], extra: Dict[str, str]) -> Dict[str, str]:
    env = dict(base)
    env.update(extra)
    return env
