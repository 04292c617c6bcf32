"""The operator as a real subprocess (tests, demo): it can be killed and restarted like a real deployment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    def __init__(self, kubeconfig: Path, log_dir: Path, extra_args: list[str] | None = None, verbose: bool = True,
                 python: str = sys.executable):
        self.kubeconfig = kubeconfig
        self.verbose = verbose  # debug logs for tests; the benchmark measures the operator as deployed
        self.python = python  # another environment's interpreter runs the operator installed there
        self.log_path = log_dir / "operator.log"
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()
        self.health_port = free_port()

    def start(self, timeout: float = 60) -> "OperatorProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.python, "-m", "msjob_operator", "run", "--kubeconfig", str(self.kubeconfig),
             "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
             *(["--verbose"] if self.verbose else []), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.proc.returncode}:\n{self.tail()}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.kill()  # never leave a half-started operator behind
        raise RuntimeError(f"the operator was not ready within {timeout} s:\n{self.tail()}")

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the operator has not been started")
        return self.proc.pid

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as resp:
                return resp.status == 200 and b'"synced": true' in resp.read()
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            body: bytes = resp.read()
            return body.decode()

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
