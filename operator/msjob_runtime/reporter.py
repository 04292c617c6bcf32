"""The reporter sidecar: MindSpore's progress files -> worker 0's pod annotation.

    python -m msjob_runtime.reporter --perf-dir D --progress-file F --interval S
        [--kubeconfig K | --server URL [--token-file T] [--ca-file C]]

Every ``S`` seconds it reads the step-time files in ``D`` (perf.py, incrementally) and the
``ProgressCallback`` file ``F`` (callback.py), combines them into a progress dict::

    {"step": int, "epoch": int | null, "loss": float | null, "stepTimeMs": float | null,
     "stepsPerSecond": float | null, "heartbeat": "<RFC 3339 UTC>", "reportedAt": "<RFC 3339 UTC>"}

and, when it differs from what it last reported (``reportedAt`` aside), merge-patches it as JSON
into the annotation ``PROGRESS_ANNOTATION`` of its own pod (``$POD_NAME`` in ``$POD_NAMESPACE``,
set by the downward API).  Nothing is reported before the first step.

* ``step``: the larger of the callback's global step and the number of step-time lines (each
  alone when only one source is there); ``epoch`` and ``loss``: from the callback only;
  ``stepTimeMs`` and ``stepsPerSecond``: from the step times only; ``heartbeat``: the end of the
  last step or the last callback write, whichever is later.
* API errors, missing credentials and unreadable files are logged when they start and when they
  stop, and retried at the next interval: the reporter never exits on its own (a native sidecar
  that exits is only restarted).  SIGTERM or SIGINT: one last report (short timeout), then exit 0.
* Credentials: ``--server`` (with ``--token-file``, re-read when it changes, and ``--ca-file``)
  when given, else ``--kubeconfig``, else the pod's ServiceAccount (in-cluster), else
  ``$KUBECONFIG`` / ``~/.kube/config``.  Standard library only (kubeapi.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from datetime import datetime, timezone
from typing import Any, Callable, List, Optional
from urllib.parse import quote

from . import kubeapi
from .perf import PerfReader, PerfSummary
from .progress import PERF_DIR, PROGRESS_ANNOTATION, PROGRESS_FILE, finite_float, format_time

log = logging.getLogger("msjob.reporter")

DEFAULT_INTERVAL = 10.0
FINAL_TIMEOUT = 2.0


def load_progress_file(path: str) -> Optional[dict]:
    """``{"epoch", "step", "loss", "time"}`` from ``ProgressCallback``'s file, cleaned; None when
    the file is missing or not usable (``step`` a non-negative integer and ``time`` a number required)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    step, when = data.get("step"), finite_float(data.get("time"))
    if isinstance(step, bool) or not isinstance(step, int) or step < 0 or when is None:
        return None
    epoch = data.get("epoch")
    return {
        "step": step,
        "epoch": epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else None,
        "loss": finite_float(data.get("loss")),
        "time": when,
    }


def build_progress(perf: Optional[PerfSummary], record: Optional[dict], now: datetime) -> Optional[dict]:
    """The progress dict of the module docstring; None while neither source has a step."""
    perf_steps = perf.steps if perf is not None and perf.steps > 0 else None
    if perf_steps is None and record is None:
        return None
    steps: List[int] = [s for s in (perf_steps, record["step"] if record else None) if s is not None]
    beats = []
    if perf is not None and perf.last_end_ms is not None:
        beats.append(perf.last_end_ms / 1000.0)
    if record is not None:
        beats.append(record["time"])
    heartbeat = datetime.fromtimestamp(max(beats), tz=timezone.utc)
    return {
        "step": max(steps),
        "epoch": record["epoch"] if record else None,
        "loss": record["loss"] if record else None,
        "stepTimeMs": perf.last_step_ms if perf is not None else None,
        "stepsPerSecond": (round(perf.steps_per_second, 4)
                           if perf is not None and perf.steps_per_second is not None else None),
        "heartbeat": format_time(heartbeat),
        "reportedAt": format_time(now),
    }


def same_progress(a: Optional[dict], b: Optional[dict]) -> bool:
    """Equal apart from ``reportedAt``."""
    if a is None or b is None:
        return a is b
    return {k: v for k, v in a.items() if k != "reportedAt"} == {k: v for k, v in b.items() if k != "reportedAt"}


def annotation_patch(progress: dict) -> dict:
    """The merge patch that puts ``progress`` into the pod's annotation."""
    value = json.dumps(progress, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return {"metadata": {"annotations": {PROGRESS_ANNOTATION: value}}}


class Reporter:
    """Reads both sources and reports a change through ``patch(progress, timeout)``."""

    def __init__(self, perf_dir: str, progress_file: str, patch: Callable[[dict, float], Any],
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.perf = PerfReader(perf_dir)
        self.progress_file = progress_file
        self.patch = patch
        self.now = now
        self.reported: Optional[dict] = None
        self._perf_error: Optional[str] = None
        self._api_error: Optional[str] = None

    def collect(self) -> Optional[dict]:
        try:
            summary = self.perf.read()
            if self._perf_error:
                log.info("step-time files in %s readable again", self.perf.directory)
            self._perf_error = None
        except OSError as e:
            summary = self.perf.summary()
            message = f"{type(e).__name__}: {e}"
            if message != self._perf_error:
                hint = (" (the reporter must run as the training container's user: MindSpore makes its "
                        "step-time files readable by their owner only)") if isinstance(e, PermissionError) else ""
                log.warning("cannot read MindSpore's step-time files in %s: %s%s", self.perf.directory, message, hint)
            self._perf_error = message
        return build_progress(summary, load_progress_file(self.progress_file), self.now())

    def tick(self, timeout: float = 10.0) -> bool:
        """Report once if there is something new; True when a patch was sent."""
        progress = self.collect()
        if progress is None or same_progress(progress, self.reported):
            log.debug("nothing new to report")
            return False
        try:
            self.patch(progress, timeout)
        except Exception as e:  # noqa: BLE001 - any API or network error: retried next interval
            message = _describe(e)
            if message != self._api_error:
                log.warning("cannot report progress (will retry): %s", message)
            self._api_error = message
            return False
        if self._api_error:
            log.info("reporting progress again")
        elif self.reported is None:
            log.info("first progress reported: step %s", progress["step"])
        self._api_error = None
        self.reported = progress
        log.debug("reported %s", progress)
        return True

    def run(self, interval: float, stop: threading.Event) -> None:
        """Report every ``interval`` s until ``stop`` is set, then once more (short timeout)."""
        request_timeout = min(10.0, max(FINAL_TIMEOUT, interval))
        while not stop.is_set():
            self._safe_tick(request_timeout)
            stop.wait(interval)
        self._safe_tick(FINAL_TIMEOUT)

    def _safe_tick(self, timeout: float) -> None:
        try:
            self.tick(timeout)
        except Exception:  # noqa: BLE001 - a bug here must not stop the reporting for good
            log.exception("reporting failed")


def _describe(e: Exception) -> str:
    if isinstance(e, kubeapi.KubeError):
        return str(e)
    return f"{type(e).__name__}: {e}"


class PodPatcher:
    """``patcher(progress, timeout)``: a JSON merge patch of the pod's progress annotation.

    The API client is made at the first call that needs it, and again after a failure to make
    it (credentials that are not there yet count as an API error: retried, never fatal).
    ``config_source()`` gives the ``kubeapi.Config`` to use.
    """

    def __init__(self, name: str, namespace: str, config_source: Callable[[], kubeapi.Config]):
        self.path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        self.config_source = config_source
        self.api: Optional[kubeapi.Client] = None

    def connect(self) -> kubeapi.Client:
        if self.api is None:
            self.api = kubeapi.Client(self.config_source())
        return self.api

    def __call__(self, progress: dict, timeout: float) -> None:
        self.connect().patch(self.path, annotation_patch(progress), timeout=timeout)

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
            self.api = None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name if __spec__ else 'reporter'}",
                                     description="Report MindSpore training progress into this pod's annotation "
                                                 f"{PROGRESS_ANNOTATION}.")
    parser.add_argument("--perf-dir", default=PERF_DIR, help="MindSpore's PERF_DUMP_PATH (default %(default)s)")
    parser.add_argument("--progress-file", default=PROGRESS_FILE,
                        help="ProgressCallback's file (default %(default)s)")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="seconds (default %(default)s)")
    parser.add_argument("--kubeconfig", help="default: in-cluster credentials")
    parser.add_argument("--server", help="the API server's URL, instead of a kubeconfig or in-cluster credentials")
    parser.add_argument("--token-file", help="with --server: a file with the bearer token (read again when it changes)")
    parser.add_argument("--ca-file", help="with --server: the CA bundle that signed the API server's certificate")
    parser.add_argument("--log-level", default="INFO", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s msjob-reporter: %(message)s")
    name, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if not name or not namespace:
        log.error("POD_NAME and POD_NAMESPACE must be set (the downward API's metadata.name and metadata.namespace)")
        return 2
    if args.interval <= 0:
        parser.error("--interval must be positive")
    if (args.token_file or args.ca_file) and not args.server:
        parser.error("--token-file and --ca-file need --server")
    if args.server and args.kubeconfig:
        parser.error("give --server or --kubeconfig, not both")

    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("%s: last report, then exit", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    patcher = PodPatcher(name, namespace, lambda: kubeapi.load_config(
        args.kubeconfig, server=args.server, token_file=args.token_file, ca_file=args.ca_file))
    try:
        patcher.connect()
    except Exception as e:  # noqa: BLE001 - a sidecar that exits would only be restarted: retry instead
        log.warning("no Kubernetes credentials yet (will retry): %s", _describe(e))
    log.info("reporting %s and %s to pod %s/%s every %g s", args.perf_dir, args.progress_file, namespace, name,
             args.interval)
    try:
        Reporter(args.perf_dir, args.progress_file, patcher).run(args.interval, stop)
    finally:
        patcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
