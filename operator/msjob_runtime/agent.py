"""The in-place restart agent: supervises a member's training process for the epoch the gang is at.

    python3 /opt/msjob/runtime/msjob_runtime/agent.py [flags] -- command [args...]
    python3 -m msjob_runtime.agent [flags] -- command [args...]

The protocol (docs/in-place-restart.md; names in agent_protocol.py): the operator writes the
gang ConfigMap (``epoch``, ``released``, ``final``), the agent reports on its member's Lease
(``<pod>-agent``, holder: its pod's UID).  With T the ConfigMap's epoch:

1. Waiting: nothing starts until ``released >= T``, read from the server (never from a stale view).
2. Running: the command runs in its own session for epoch T (``$MSJOB_EPOCH`` = T).
3. It exits 0: report Exited(0) and exit 0.  It exits non-zero (or by signal N: 128+N): report
   Exited(code, output) and wait for the decision: ``epoch`` beyond T (start again at 1) or
   ``final`` (exit).
4. ``epoch`` moves beyond T while it runs: SIGTERM to the group, SIGKILL after the grace period,
   reap everything, then 1: its Waiting(T') report says no process of epoch <= T runs here (one write).
5. SIGTERM or SIGINT to the agent: forwarded to the group, SIGKILL after the grace period; exit
   with the process's code (reported as Exited).
6. The API server failing for longer than ``--unreachable-seconds``: a running process runs on;
   after a failure with no decision readable, the agent exits with the process's code.
7. Every child is reaped (the agent may be PID 1) and 8. the output is passed through while its
   last lines are kept for the reports; 9. each start and exit is logged as an ``event_line``.

A restarted agent (its container restarted in the same pod) reads its previous report first and
never starts an epoch that was already started in this pod.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # A plain script: import the package from the directory that holds it (not the package's own
    # directory, whose module names could shadow others), and run its main.
    _package_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _package_dir]
    sys.path.insert(0, os.path.dirname(_package_dir))
    import importlib

    sys.exit(importlib.import_module("msjob_runtime.agent").main())

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: E402

from . import kubeapi  # noqa: E402
from .agent_api import ApiHealth, GangWatcher, LeaseReporter  # noqa: E402
from .agent_output import Console, ConsoleHandler  # noqa: E402
from .agent_process import Process, Supervisor, become_subreaper, child_env, start_error_code  # noqa: E402
from .agent_protocol import (  # noqa: E402
    CONFIGMAP_ENV,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_UNREACHABLE_SECONDS,
    EPOCH_ENV,
    EXIT,
    EXITED,
    GRACE_ENV,
    JOB_ENV,
    LOG_PREFIX,
    POD_NAME_ENV,
    POD_NAMESPACE_ENV,
    POD_UID_ENV,
    RUNNING,
    START,
    STOPPED,
    UNREACHABLE_ENV,
    WAITING,
    agent_report,
    event_line,
    gang_configmap_name,
    utc_now,
)

log = logging.getLogger("msjob.agent")

INIT = "Init"  # before the pod's previous report has been read
POLL_SECONDS = 0.1
FINAL_REPORT_SECONDS = 3.0  # for the last report before the agent exits (within GRACE_MARGIN_SECONDS)
KILLED = 128 + signal.SIGKILL


class Agent:
    """The state machine; ``run()`` returns the agent's exit code.  ``request_stop(signum)`` is
    what the signal handlers call (it only sets a flag: the loop acts on it)."""

    def __init__(self, command: Sequence[str], watcher: GangWatcher, reporter: LeaseReporter, health: ApiHealth,
                 supervisor: Supervisor, console: Console, *, grace: float, unreachable: float,
                 env: Optional[Dict[str, str]] = None):
        self.command = list(command)
        self.watcher, self.reporter, self.health = watcher, reporter, health
        self.supervisor, self.console = supervisor, console
        self.grace, self.unreachable = grace, unreachable
        self.env = dict(os.environ if env is None else env)
        self.state = INIT
        self.epoch: Optional[int] = None  # T: the epoch this agent is at
        self.code: Optional[int] = None  # the exit code of epoch T's process, once it has exited by itself
        self.last_failure: Optional[int] = None  # the last non-zero code of a process that exited by itself
        self.process: Optional[Process] = None
        self.signal: Optional[int] = None
        self.wakeup = watcher.wakeup
        self._said: set = set()

    def request_stop(self, signum: int) -> None:
        if self.signal is None:
            self.signal = signum

    def run(self) -> int:
        while True:
            code = self.step()
            if code is not None:
                return code
            self.wakeup.wait(POLL_SECONDS)
            self.wakeup.clear()

    # ----- one turn of the loop

    def step(self) -> Optional[int]:
        self.supervisor.reap()
        if self.signal is not None:
            return self._on_signal(self.signal)
        if self.state == INIT:
            if not self.reporter.loaded.is_set():
                return None
            self._resume(self.reporter.previous)
            if self.state == EXITED and self.code == 0:
                return 0  # it had succeeded: nothing more to do
        view = self.watcher.view()
        gang = view.gang
        if self.state in (RUNNING, EXITED, STOPPED):
            assert self.epoch is not None  # set by the start of every process
        if self.state == RUNNING:
            code = self.supervisor.exited()
            if code is not None:
                return self._ended_by_itself(code)
            if gang is not None and gang.final:
                self._stop_process(f"the job has ended ({self._cm()} is final)")
                return self._exit_final()
            if gang is None or gang.epoch <= (self.epoch or 0):
                if self.health.failing_for() > self.unreachable:
                    self._say_once(f"outage-{self.epoch}", f"epoch {self.epoch}: the API server has failed for more "
                                   f"than {self.unreachable:g} s; the process runs on")
                return None
            # One report for the restart: Waiting(E+1) is the acknowledgement (quiesced), so a Stopped(E)
            # before it would only double the writes every restart costs the API server.
            self._stop_process(f"{self._cm()} moved to epoch {gang.epoch}", report=False)
            self._wait_for(gang.epoch)
        if self.state in (EXITED, STOPPED):
            if gang is not None and gang.final:
                return self._exit_final()
            if gang is not None and gang.epoch > (self.epoch or 0):
                self._wait_for(gang.epoch)
            elif self.state == EXITED:
                return self._give_up_if_unreachable(view)
            else:
                return None
        if self.state == WAITING:
            if gang is None:
                self._say_once("no-gang", f"waiting for {self._cm()} to be readable")
                return None
            if gang.final:
                return self._exit_final()
            if self.epoch is None or gang.epoch > self.epoch:
                self._wait_for(gang.epoch)
            elif gang.epoch < self.epoch:
                self._say_once(f"behind-{gang.epoch}", f"{self._cm()} says epoch {gang.epoch}, behind this "
                                                       f"agent's {self.epoch}: ignored")
            if (view.synced and view.present and self.epoch is not None and gang.released >= self.epoch
                    and gang.epoch == self.epoch):
                self._start()
        return None

    # ----- transitions

    def _resume(self, previous: Optional[Dict[str, Any]]) -> None:
        """After a restart of the agent in the same pod: an epoch started before is not started again."""
        self.state = WAITING
        if previous is None or previous["state"] == WAITING:
            return
        self.epoch = previous["epoch"]
        if previous["state"] == STOPPED:
            self.state = STOPPED
            log.info("resuming after a restart: epoch %d was stopped", self.epoch)
            return
        code = previous["exitCode"] if previous["state"] == EXITED else None
        self.code = KILLED if code is None else code
        self.state = EXITED
        self.last_failure = self.code or None
        log.info("resuming after a restart: epoch %d %s (code %d); waiting for the operator's decision",
                 self.epoch, "had exited" if code is not None else "was running when the agent stopped", self.code)
        if code is None:
            self._report(EXITED, exit_code=self.code, pid=previous["pid"],
                         output=f"{LOG_PREFIX} the agent restarted while epoch {self.epoch} ran")

    def _wait_for(self, epoch: int) -> None:
        self.state, self.epoch, self.code, self.process = WAITING, epoch, None, None
        log.info("epoch %d: waiting for %s to release it", epoch, self._cm())
        self._report(WAITING)

    def _start(self) -> None:
        env = child_env(self.env, {EPOCH_ENV: str(self.epoch)})
        try:
            p = self.supervisor.start(self.command, env)
        except OSError as e:
            self.code = self.last_failure = start_error_code(e)
            self.state = EXITED
            message = f"{LOG_PREFIX} epoch={self.epoch} cannot run {self.command[0]!r}: {e}"
            self.console.line(message)
            self._report(EXITED, exit_code=self.code, output=message, started_at=utc_now(), finished_at=utc_now())
            return
        self.process, self.state = p, RUNNING
        self.console.line(event_line(self.epoch or 0, START, p.pid, p.started_at))
        self._report(RUNNING)

    def _ended(self, p: Process, state: str, report: bool = True) -> None:
        self.console.line(event_line(self.epoch or 0, EXIT, p.pid, p.finished_at or utc_now(), p.code))
        if report:
            self._report(state, exit_code=p.code, output=p.output())

    def _ended_by_itself(self, code: int) -> Optional[int]:
        p = self.supervisor.cleanup()
        self.code = code
        self._ended(p, EXITED)
        if code == 0:
            self.reporter.flush(FINAL_REPORT_SECONDS)
            return 0
        self.state, self.last_failure = EXITED, code
        log.info("epoch %d: the process exited with %d; waiting for the operator's decision", self.epoch, code)
        return None

    def _stop_process(self, why: str, report: bool = True) -> Process:
        assert self.process is not None
        log.info("epoch %d: %s: stopping process group %d (SIGTERM, SIGKILL after %g s)", self.epoch, why,
                 self.process.pid, self.grace)
        p = self.supervisor.stop(self.grace, signal.SIGTERM)
        self.state = STOPPED
        self._ended(p, STOPPED, report)
        return p

    def _exit_final(self) -> int:
        code = self.last_failure or 0
        log.info("the job has ended (%s is final): exiting with %d", self._cm(), code)
        self.reporter.flush(FINAL_REPORT_SECONDS)
        return code

    def _give_up_if_unreachable(self, view: Any) -> Optional[int]:
        failing = self.health.failing_for()
        absent = 0.0 if view.absent_since is None else time.monotonic() - view.absent_since
        if max(failing, absent) <= self.unreachable:
            return None
        why = "the API server has failed" if failing >= absent else f"{self._cm()} has been missing"
        log.warning("epoch %d: %s for more than %g s and no decision could be read: exiting with the process's "
                    "code %d", self.epoch, why, self.unreachable, self.code)
        self.reporter.flush(1.0)
        return self.code

    def _on_signal(self, signum: int) -> int:
        name = signal.Signals(signum).name
        if self.state == RUNNING and self.process is not None:
            log.info("%s: forwarding it to process group %d (SIGKILL after %g s)", name, self.process.pid, self.grace)
            p = self.supervisor.stop(self.grace, signum)
            self.code = p.code
            self._ended(p, EXITED)
            self.reporter.flush(FINAL_REPORT_SECONDS)
            return p.code if p.code is not None else 128 + signum
        code = self.code if self.state == EXITED and self.code is not None else (self.last_failure or 128 + signum)
        log.info("%s: no process runs; exiting with %d", name, code)
        return code

    # ----- helpers

    def _report(self, state: str, *, exit_code: Optional[int] = None, output: str = "", pid: Optional[int] = None,
                started_at: Any = None, finished_at: Any = None) -> None:
        p = self.process if state != WAITING else None
        self.reporter.post(agent_report(
            self.epoch if self.epoch is not None else 0, state, exit_code=exit_code, output=output,
            pid=p.pid if p is not None else pid, started_at=p.started_at if p is not None else started_at,
            finished_at=p.finished_at if p is not None else finished_at))

    def _cm(self) -> str:
        return f"ConfigMap {self.watcher.namespace}/{self.watcher.name}"

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.info("%s", message)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


def split_command(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(the agent's flags, the command) around the first ``--``."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def parse_args(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, List[str]]:
    flags, command = split_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="msjob-agent", usage="%(prog)s [flags] -- command [args...]",
                                     description="Run a command for the epoch of an MSJob's gang (in-place restart).")
    parser.add_argument("--job", default=os.environ.get(JOB_ENV), help=f"the MSJob's name (default ${JOB_ENV})")
    parser.add_argument("--configmap", default=os.environ.get(CONFIGMAP_ENV),
                        help=f"the gang ConfigMap (default ${CONFIGMAP_ENV}, else <job>-gang)")
    parser.add_argument("--grace-seconds", type=float, default=_env_float(GRACE_ENV, DEFAULT_GRACE_SECONDS),
                        help=f"SIGTERM to SIGKILL when stopping the process (default ${GRACE_ENV} or %(default)s)")
    parser.add_argument("--unreachable-seconds", type=float,
                        default=_env_float(UNREACHABLE_ENV, DEFAULT_UNREACHABLE_SECONDS),
                        help=f"how long the API server may fail (default ${UNREACHABLE_ENV} or %(default)s)")
    parser.add_argument("--watch-seconds", type=int, default=30, help="timeoutSeconds of each watch")
    parser.add_argument("--kubeconfig", help="default: the pod's ServiceAccount")
    parser.add_argument("--server", help="the API server's URL (with --token-file, --ca-file)")
    parser.add_argument("--token-file")
    parser.add_argument("--ca-file")
    parser.add_argument("--log-level", default="INFO", help=argparse.SUPPRESS)
    args = parser.parse_args(flags)
    if not command:
        parser.error("no command: give it after --")
    if not args.configmap and not args.job:
        parser.error(f"--job (or ${JOB_ENV}) or --configmap (or ${CONFIGMAP_ENV}) is needed")
    if args.grace_seconds < 0 or args.unreachable_seconds <= 0:
        parser.error("--grace-seconds must be >= 0 and --unreachable-seconds > 0")
    if (args.token_file or args.ca_file) and not args.server:
        parser.error("--token-file and --ca-file need --server")
    return args, command


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, command = parse_args(argv)
    console = Console()
    handler = ConsoleHandler(console)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    name, namespace = os.environ.get(POD_NAME_ENV), os.environ.get(POD_NAMESPACE_ENV)
    if not name or not namespace:
        log.error("%s and %s must be set (the downward API's metadata.name and metadata.namespace)",
                  POD_NAME_ENV, POD_NAMESPACE_ENV)
        return 2
    try:
        config = kubeapi.load_config(args.kubeconfig, server=args.server, token_file=args.token_file,
                                     ca_file=args.ca_file)
    except kubeapi.KubeError as e:
        log.error("no Kubernetes credentials: %s", e)
        return 2
    configmap = args.configmap or gang_configmap_name(args.job)
    subreaper = os.getpid() == 1 or become_subreaper()

    def make_client() -> kubeapi.Client:
        return kubeapi.Client(config)

    health, wakeup = ApiHealth(), threading.Event()
    watcher = GangWatcher(make_client, namespace, configmap, health, wakeup, watch_seconds=args.watch_seconds)
    reporter = LeaseReporter(make_client, namespace, name, health, pod_uid=os.environ.get(POD_UID_ENV) or None)
    agent = Agent(command, watcher, reporter, health, Supervisor(console, reap_all=True), console,
                  grace=args.grace_seconds, unreachable=args.unreachable_seconds)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: agent.request_stop(signum))
    log.info("pod %s/%s, %s, grace %g s, API bound %g s%s: %s", namespace, name, agent._cm(), args.grace_seconds,
             args.unreachable_seconds, "" if subreaper else " (not a subreaper: orphans are not reaped)",
             " ".join(command))
    watcher.start()
    reporter.start()
    try:
        code = agent.run()
    finally:
        watcher.stop()
        reporter.stop()
    log.info("exiting with %d", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
