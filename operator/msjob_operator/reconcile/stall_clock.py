"""The operator's stall check on worker 0's progress: a pure function.

The progress dict and ``read_progress`` (the annotation written by the reporter sidecar) are
``msjob_runtime.progress``'s, shared with the sidecar; here the operator decides whether the
training has stopped making progress.  Times are aware datetimes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from msjob_runtime.progress import parse_time


def _clock(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%H:%M:%SZ")


def stall_check(progress: Optional[Mapping[str, Any]], *, running_since: Optional[datetime], now: datetime,
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
