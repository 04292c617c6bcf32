"""Text for people: kubectl-style tables and ages, and the progress lines of a wait.

Shared by ``msjob`` (``sdk/cli.py``, ``sdk/describe.py``), the Kubeflow Pipelines launcher and the local demo.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any, Iterable, Optional, Sequence, TextIO

from ..api.models import MSJob
from .accessors import condition_of, state_of, status_of, total_workers


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> str:
    """Plain-text columns, kubectl style: left-aligned, three spaces apart, no trailing blanks."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = []
    for row in [list(headers), *cells]:
        padded = [v.ljust(w) for v, w in zip(row, widths, strict=True)]
        lines.append(indent + "   ".join(padded).rstrip())
    return "\n".join(lines)


def parse_time(value: Any) -> Optional[dt.datetime]:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def age(value: Any, now: Optional[dt.datetime] = None) -> str:
    """``40s``, ``5m``, ``3h``, ``2d`` (kubectl's short form); ``<unknown>`` without a time."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    seconds = int(((now or dt.datetime.now(dt.timezone.utc)) - when).total_seconds())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def workers_of(job: MSJob) -> str:
    """Ready/total workers as ``kubectl get msj`` shows them."""
    return status_of(job).workers or f"0/{total_workers(job)}"


def training_text(job: MSJob) -> str:
    """``step 37  loss 0.412  2.9 steps/s`` from ``status.progress`` (spec.health.reportProgress), else ""."""
    progress = status_of(job).progress
    if progress is None or progress.step is None:
        return ""
    parts = [f"step {progress.step}"]
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4g}")
    if progress.steps_per_second is not None:
        parts.append(f"{progress.steps_per_second:.1f} steps/s")
    return "  ".join(parts)


def progress_line(job: MSJob, elapsed: float) -> str:
    """``[ 12.3s] train: Running workers 4/4 restarts 0`` (plus the reason when restarting, failed or suspended,
    and ``step 37  loss 0.412  2.9 steps/s`` when the job reports its training progress)."""
    st = status_of(job)
    state = state_of(job)
    line = f"[{elapsed:5.1f}s] {job.name}: {state} workers {workers_of(job)} restarts {st.restart_count or 0}"
    cond = condition_of(job, state) if state in ("Restarting", "Failed", "Suspended") else None
    if cond is not None and cond.reason:
        line += f" ({cond.reason})"
    elif st.waiting is not None and st.waiting.reason:
        line += f" (waiting: {st.waiting.reason})"
    training = training_text(job)
    return line + (f"  {training}" if training else "")


class Progress:
    """A wait callback: one ``progress_line`` per change of state, ready workers, restarts or training step."""

    def __init__(self, out: Optional[TextIO] = None, start: Optional[float] = None):
        self.out = out if out is not None else sys.stdout
        self.start = time.monotonic() if start is None else start
        self._last: Optional[tuple[object, ...]] = None
        self.lines: list[str] = []

    def __call__(self, job: MSJob) -> None:
        st = status_of(job)
        key = (job.name, state_of(job), workers_of(job), st.restart_count or 0,
               st.waiting.reason if st.waiting else None, training_text(job))
        if key == self._last:
            return
        self._last = key
        line = progress_line(job, time.monotonic() - self.start)
        self.lines.append(line)
        print(line, file=self.out, flush=True)


def outcome_line(job: MSJob) -> str:
    """The last line of a wait: how the job ended and why."""
    for ctype in ("Failed", "Succeeded"):
        cond = condition_of(job, ctype)
        if cond is not None and cond.status == "True":
            detail = ": ".join(x for x in (cond.reason, cond.message) if x)
            return f"{job.name}: {ctype}" + (f": {detail}" if detail else "")
    return f"{job.name}: {state_of(job)}"
