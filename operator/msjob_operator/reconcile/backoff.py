"""Backoff between gang restarts, and the limit on restarts that backoffLimit does not count.

A member evicted on every attempt, or a node that keeps failing, must not restart the gang in a hot
loop. As the Job controller does for failed pods, the first restart is immediate and each further
one in a row waits twice as long as the one before (10 s, 20 s, ... up to 6 minutes) before its gang
is created. The streak ends once the whole gang has been running for ``HEALTHY_SECONDS``. Restarts
that backoffLimit does not count (evictions, preemptions, deletions, lost nodes or members) are
bounded by ``failurePolicy.uncountedRestartLimit`` in a row instead.
"""

from __future__ import annotations

import datetime as dt
import math

BASE_SECONDS = 10.0
MAX_SECONDS = 360.0
HEALTHY_SECONDS = 600.0


def delay(consecutive: int) -> float:
    """Seconds before the gang of the ``consecutive``-th restart in a row is created."""
    if consecutive <= 1:
        return 0.0
    return float(min(BASE_SECONDS * 2 ** min(consecutive - 2, 16), MAX_SECONDS))


def after(moment: dt.datetime, seconds: float) -> dt.datetime:
    """``moment + seconds``, saturating instead of overflowing (a stored object may predate the CRD's maxima)."""
    if not math.isfinite(seconds):
        return dt.datetime.max.replace(tzinfo=moment.tzinfo)
    try:
        return moment + dt.timedelta(seconds=seconds)
    except OverflowError:
        return (dt.datetime.max if seconds > 0 else dt.datetime.min).replace(tzinfo=moment.tzinfo)


def remaining(start: dt.datetime, seconds: float, now: dt.datetime) -> float:
    """Seconds from ``now`` until ``start + seconds`` (negative once past)."""
    return (after(start, seconds) - now).total_seconds()
