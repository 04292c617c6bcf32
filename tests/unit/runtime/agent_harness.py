"""One agent (msjob_runtime.agent.Agent) in a thread of the test, on a FakeApi, supervising
tests/agent_child.py as a real process."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from msjob_runtime.agent import Agent
from msjob_runtime.agent_api import ApiHealth, GangWatcher, LeaseReporter
from msjob_runtime.agent_output import Console
from msjob_runtime.agent_process import Supervisor
from msjob_runtime.agent_protocol import AGENT_ANNOTATION, gang_data, member_lease_name, parse_event_line

from ...helpers import wait_for
from .fake_api import FakeApi

NS, POD, CM = "team", "demo-worker-0", "demo-gang"
LEASE, UID = member_lease_name(POD), "uid-of-demo-worker-0"
CHILD = str(Path(__file__).parents[2] / "agent_child.py")


class AgentHarness:
    def __init__(self, tmp_path: Path, plan: str, *, gang: tuple | None = (0, 0), grace: float = 0.5,
                 unreachable: float = 1.0, previous: str | None = None, previous_holder: str = UID,
                 command: list[str] | None = None, lease: bool = True, pass_uid: bool = True):
        self.api = FakeApi()
        self.api.add_pod(NS, POD, UID)
        if lease:  # the operator creates it before the pod
            self.api.add_lease(NS, LEASE, {AGENT_ANNOTATION: previous} if previous else None,
                               holder=previous_holder if previous else None)
        if gang is not None:
            self.set_gang(*gang)
        self.control = tmp_path / "control"
        self.control.mkdir()
        self.console_path = tmp_path / "console.log"
        self._fd = os.open(self.console_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.console = Console(self._fd, self._fd)
        self.health = ApiHealth()
        wakeup = threading.Event()
        self.watcher = GangWatcher(self.api.client, NS, CM, self.health, wakeup, watch_seconds=2, retry_seconds=0.1)
        self.reporter = LeaseReporter(self.api.client, NS, POD, self.health, pod_uid=UID if pass_uid else None,
                                      retry_seconds=0.1)
        self.supervisor = Supervisor(self.console, reap_all=False)
        argv = command or [sys.executable, CHILD, plan, str(self.control)]
        self.agent = Agent(argv, self.watcher, self.reporter, self.health, self.supervisor, self.console,
                           grace=grace, unreachable=unreachable, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.agent.run()), daemon=True)
        self.watcher.start()
        self.reporter.start()
        self.thread.start()

    def set_gang(self, epoch: int, released: int, final: bool = False) -> None:
        self.api.set_configmap(NS, CM, gang_data(epoch, released, final))

    def tell(self, epoch: int, code: int) -> None:
        """The ``wait`` action of epoch ``epoch`` exits with ``code``."""
        (self.control / f"exit-{epoch}").write_text(str(code))

    def report(self) -> dict | None:
        return self.api.last_report(NS, LEASE)

    def history(self) -> list[dict]:
        return self.api.report_history(NS, LEASE)

    def wait_report(self, epoch: int, state: str, timeout: float = 30) -> dict:
        return wait_for(lambda: (r := self.report()) and r["epoch"] == epoch and r["state"] == state and r,
                        timeout=timeout, message=f"report {state} for epoch {epoch}",
                        describe=lambda: (self.history(), self.output()))

    def output(self) -> str:
        return self.console_path.read_text(errors="replace")

    def events(self) -> list:
        return [e for e in map(parse_event_line, self.output().splitlines()) if e is not None]

    def exit_code(self, timeout: float = 30) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the agent is still running: {self.history()}\n{self.output()}"
        return self.result[0]

    def close(self) -> None:
        if self._fd < 0:
            return
        if self.thread.is_alive():
            self.agent.request_stop(signal.SIGKILL)  # the group is killed at once (no grace for SIGKILL)
            self.thread.join(30)
        self.watcher.stop()
        self.reporter.stop()
        self.api.down = True  # ends the watcher's open watch
        os.close(self._fd)
        self._fd = -1
