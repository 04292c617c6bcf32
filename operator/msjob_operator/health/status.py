"""What the operator makes of worker 0's progress annotation: pure functions.

``read_progress`` turns the annotation ``PROGRESS_ANNOTATION`` (written by the reporter sidecar)
into a clean dict for ``status.progress``; ``stall_check`` decides whether the training has
stopped making progress.  Times are RFC 3339 UTC strings (``2026-01-02T12:00:03Z``) in the dict,
aware datetimes in the arguments.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from . import PROGRESS_ANNOTATION

# Keys of a progress dict, as the reporter writes them and status.progress carries them.
INT_KEYS = ("step", "epoch")
FLOAT_KEYS = ("loss", "stepTimeMs", "stepsPerSecond")
TIME_KEYS = ("heartbeat", "reportedAt")


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with a ``Z``, to the millisecond when there are milliseconds."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    t = t.astimezone(timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond // 1000:03d}"
    return text + "Z"


def parse_time(value: Any) -> Optional[datetime]:
    """An aware UTC datetime from an RFC 3339 string; None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
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


def _clock(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%H:%M:%SZ")


def stall_check(progress: Optional[Mapping], *, running_since: Optional[datetime], now: datetime,
                timeout_s: Optional[float], startup_s: Optional[float] = None) -> tuple[bool, Optional[float], str]:
    """Whether the training has stalled: ``(stalled, seconds until it would be, message)``.

    The rule: a slow start (MindSpore's import, forming the cluster, graph compilation) is not a
    stall until ``startup_s`` (default ``timeout_s``) after ``running_since`` (when all pods were
    running) without any heartbeat; afterwards the job is stalled when ``now - heartbeat > timeout_s``.  The stall
    clock starts at the later of the heartbeat and ``running_since``, so neither an old heartbeat
    (clock skew between nodes) nor an earlier attempt's counts against a gang just started.

    The second value is for a requeue: seconds after which, with no new heartbeat, the job would
    count as stalled (None when stalled already, when not running, or when ``timeout_s`` is not
    positive, which turns stall detection off).
    """
    heartbeat = parse_time((progress or {}).get("heartbeat"))
    step = (progress or {}).get("step")
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if running_since is not None and running_since.tzinfo is None:
        running_since = running_since.replace(tzinfo=timezone.utc)
    last = f"last step {step} at {_clock(heartbeat)}" if heartbeat is not None else ""

    if timeout_s is None or timeout_s <= 0:
        return False, None, f"stall detection off; {last}" if last else "stall detection off"
    if running_since is None and heartbeat is None:
        return False, None, "not running yet"
    starts = [t for t in (heartbeat, running_since) if t is not None]
    since = max(starts)
    idle = max(0.0, (now - since).total_seconds())
    if heartbeat is None:
        grace = timeout_s if startup_s is None else startup_s
        if idle > grace:
            return True, None, f"no training step {idle:.0f} s after all pods were running"
        return False, grace - idle, f"no training step yet ({idle:.0f} s after all pods were running)"
    if idle > timeout_s:
        age = max(idle, (now - heartbeat).total_seconds())
        return True, None, f"no training step for {age:.0f} s ({last})"
    return False, timeout_s - idle, last
