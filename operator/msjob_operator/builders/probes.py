"""Probes suited to training: a slow start is not a failure.

A training container may spend many minutes before its first step (importing MindSpore, forming
the cluster, compiling the graph; on Ascend, graph compilation alone can take tens of minutes).
A ``livenessProbe`` written for the steady state would have the kubelet kill it during that
time.  Kubernetes' answer is a ``startupProbe``: liveness checks begin only once it succeeds.
So a container with a liveness probe and no startup probe gets one with the same check, allowed
to fail for the start-up grace period.  A user's own startupProbe is kept as written; the
operator adds no liveness probe of its own (progress is watched by stall detection instead, see
reconcile/health.py, which also knows that a step may take minutes).
"""

from __future__ import annotations

import math
from typing import Any

from ..api.models import MSJobSpec

DEFAULT_STARTUP_GRACE_SECONDS = 1800
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def startup_grace(spec: MSJobSpec) -> int:
    """Seconds a container may take to start: ``spec.health.startupGraceSeconds`` or 30 minutes."""
    configured = spec.health.startup_grace_seconds if spec.health else None
    return DEFAULT_STARTUP_GRACE_SECONDS if configured is None else int(configured)


def tolerate_slow_start(container: dict[str, Any], grace_seconds: int) -> None:
    """Give ``container`` a startupProbe derived from its livenessProbe (see the module doc)."""
    liveness = container.get("livenessProbe")
    if not liveness or container.get("startupProbe"):
        return
    period = int(liveness.get("periodSeconds") or 10)
    probe = {key: liveness[key] for key in _HANDLERS if key in liveness}
    if not probe:
        return  # no check to repeat
    if "timeoutSeconds" in liveness:
        probe["timeoutSeconds"] = liveness["timeoutSeconds"]
    probe["periodSeconds"] = period
    probe["failureThreshold"] = max(1, math.ceil(grace_seconds / period))
    container["startupProbe"] = probe
