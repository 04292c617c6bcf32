"""The first phase of every pass (it never decides one): the phases of the latest gang restart as they
are reached (``status.lastRestart``, a histogram per phase, Events), and, with restartStrategy InPlace,
``status.gang.final`` once the job has ended (the pass's end writes the gang ConfigMap from it).

Times of ``status.lastRestart`` (RFC 3339, ms): ``failureDetected`` when the restart is decided;
``membersStopped`` when no process (InPlace) or pod (Recreate) of the old gang is left;
``barrierLifted`` (InPlace) when the new epoch is released; ``membersRunning`` when every member runs
again; ``firstStep`` at the first training step after that (worker 0's progress reports).  Each time is
set once, by the first pass that sees it reached, and reported as the transition
``restart-phase:<strategy>:<phase>:<seconds since failureDetected>`` (the controller's histogram).
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from msjob_runtime.progress import parse_time, read_progress

from ...api.enums import RestartStrategy
from ...api.status import RestartRecord
from .. import conditions as cond
from .. import health, inplace
from ..context import Gang, PassContext, ms_time

STOPPED, RELEASED, RUNNING, FIRST_STEP = "stopped", "released", "running", "first_step"
_FIELDS = {STOPPED: "members_stopped", RELEASED: "barrier_lifted", RUNNING: "members_running",
           FIRST_STEP: "first_step"}
PHASE_TRANSITION = "restart-phase"


def observe(p: PassContext, gang: Gang) -> bool:
    if inplace.active(p) and cond.finished(p.conditions) and inplace.final_due(p, gang):
        inplace.state(p).final = True
    record = p.status.last_restart
    if record is None or record.failure_detected is None or cond.finished(p.conditions):
        return False
    if record.strategy == RestartStrategy.IN_PLACE.value:
        _in_place(p, gang, record)
    elif record.attempt == p.attempt:
        _recreate(p, gang, record)
    return False


def reach(p: PassContext, record: RestartRecord, phase: str, when: Optional[dt.datetime] = None) -> bool:
    """Set the phase's time once (``when``, default now); True when it is new."""
    field = _FIELDS[phase]
    if getattr(record, field) is not None:
        return False
    moment = when or p.now
    setattr(record, field, ms_time(moment))
    began = parse_time(record.failure_detected)
    seconds = max((moment - began).total_seconds(), 0.0) if began is not None else 0.0
    p.plan.transitions.append(f"{PHASE_TRANSITION}:{record.strategy}:{phase}:{seconds:.3f}")
    return True


def _recreate(p: PassContext, gang: Gang, record: RestartRecord) -> None:
    if not gang.stale:
        reach(p, record, STOPPED)
    if record.members_stopped and all(key in gang.current and (gang.current[key].running or gang.current[key].succeeded)
                                      for key in gang.expected):
        reach(p, record, RUNNING)
    _first_step(p, record, record.failure_detected)


def _in_place(p: PassContext, gang: Gang, record: RestartRecord) -> None:
    at = record.epoch or 0
    if inplace.released(p) < at:
        return
    if all(key in gang.current and inplace.member_runs(gang.current[key], at) for key in gang.expected):
        if reach(p, record, RUNNING):
            p.event("Normal", "GangRunning", f"every member runs epoch {at} again, in place "
                                             f"({_since(record, p.now)} after the failure)")
    _first_step(p, record, record.barrier_lifted)


def _first_step(p: PassContext, record: RestartRecord, after: Optional[str]) -> None:
    if not health.enabled(p.spec) or record.first_step is not None or not record.members_running:
        return
    worker0 = p.raw_pods.get(health.reporter_pod(p.name))
    progress = read_progress(worker0) if worker0 is not None else None
    step_at = parse_time((progress or {}).get("heartbeat"))
    since = parse_time(after)
    if step_at is not None and since is not None and step_at > since:
        reach(p, record, FIRST_STEP, step_at)


def _since(record: RestartRecord, now: dt.datetime) -> str:
    began = parse_time(record.failure_detected)
    return f"{(now - began).total_seconds():.1f} s" if began is not None else "?"
