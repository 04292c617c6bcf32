"""The progress dict, where it lives in the pod, and its pure helpers (reporter and operator alike).

How progress flows (only worker 0 reports: in data-parallel training every rank steps together,
and a hang anywhere stops worker 0 too)::

    MindSpore in worker 0            PERF_DUMP_* env (perf.py reads it) and/or ProgressCallback (callback.py)
      -> files in the emptyDir RUN_DIR shared by the pod's containers
      -> the reporter sidecar (reporter.py)
      -> the pod annotation PROGRESS_ANNOTATION (JSON)
      -> the operator, which watches the pods: read_progress here, then its stall check
         -> status.progress, metrics, the Stalled condition

A progress dict::

    {"step": int, "epoch": int | null, "loss": float | null, "stepTimeMs": float | null,
     "stepsPerSecond": float | null, "heartbeat": "<RFC 3339 UTC>", "reportedAt": "<RFC 3339 UTC>"}

Times are RFC 3339 UTC strings (``2026-01-02T12:00:03Z``) in the dict, aware datetimes in the
arguments.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

PROGRESS_ANNOTATION = "mindspore.gitee.com/progress"
RUN_DIR = "/var/run/msjob"
PERF_DIR = RUN_DIR + "/perf"
PROGRESS_FILE = RUN_DIR + "/progress.json"

# Keys of a progress dict, as the reporter writes them and status.progress carries them.
INT_KEYS = ("step", "epoch")
FLOAT_KEYS = ("loss", "stepTimeMs", "stepsPerSecond")
TIME_KEYS = ("heartbeat", "reportedAt")

# Before Python 3.11 fromisoformat takes only 3 or 6 fraction digits: such times are normalised.
_FRACTION = re.compile(r"^(.{10}.\d{2}:\d{2}:\d{2})\.(\d+)(.*)$")


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with a ``Z``, to the millisecond when there are milliseconds."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    t = t.astimezone(timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond // 1000:03d}"
    return text + "Z"


def _fromisoformat(text: str) -> Optional[datetime]:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    m = _FRACTION.match(text)
    if m is None:
        return None
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}{m.group(3)}")
    except ValueError:
        return None


def parse_time(value: Any) -> Optional[datetime]:
    """An aware UTC datetime from an RFC 3339 string; None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    t = _fromisoformat(text)
    if t is None or t.tzinfo is None:
        return None  # RFC 3339 requires an offset
    return t.astimezone(timezone.utc)


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    return None


def finite_float(value: Any) -> Optional[float]:
    """A finite number as float; None for anything else (bools, strings, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def clean_progress(data: Any) -> Optional[dict]:
    """A progress dict with only known keys of the right types, or None when unusable.

    ``step`` (an integer >= 0) and ``heartbeat`` (an RFC 3339 time) are required; any other key
    that is missing or malformed becomes None (``reportedAt`` is left out then); unknown keys
    are dropped.  Negative step times and rates are malformed.
    """
    if not isinstance(data, Mapping):
        return None
    step = _int(data.get("step"))
    heartbeat = parse_time(data.get("heartbeat"))
    if step is None or heartbeat is None:
        return None
    out: dict[str, Any] = {"step": step, "epoch": _int(data.get("epoch"))}
    for key in FLOAT_KEYS:
        value = finite_float(data.get(key))
        out[key] = None if value is not None and value < 0 and key != "loss" else value
    out["heartbeat"] = format_time(heartbeat)
    reported = parse_time(data.get("reportedAt"))
    if reported is not None:
        out["reportedAt"] = format_time(reported)
    return out


def read_progress(pod: Mapping) -> Optional[dict]:
    """The progress in the pod's annotation ``PROGRESS_ANNOTATION``, cleaned (``clean_progress``);
    None when the pod has no such annotation or it is not usable JSON."""
    meta = pod.get("metadata") if isinstance(pod, Mapping) else None
    annotations = (meta or {}).get("annotations") or {}
    raw = annotations.get(PROGRESS_ANNOTATION)
    if not raw or not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return clean_progress(data)
