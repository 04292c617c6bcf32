"""Level-based reconcile: from the MSJob and the children that exist now, decide what to do.

``reconcile`` is pure: it reads the job, the observed pods, Services and PodGroups, the API server's
refusals, and the time, and returns a ``Plan`` (objects to create, pods to delete, Events, and the one
status to write). Everything the operator must remember between passes lives in the job's status or
in the pods' labels, so a restarted operator resumes exactly where the last one stopped.

A pass runs the phases below in order; the first that decides the pass ends it. Only pods whose
controller is the job are its members. Gang restarts and resumes bump ``status.attempt``; pods carry
the attempt they were created for, so pods of an older attempt are stale and get deleted, and the
new gang is created as the old one goes (``phases.converge``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Mapping, Optional, Sequence

from pydantic import ValidationError

from ..api.models import MSJobSpec, ReplicaSpecs
from ..config import DEFAULT, Config
from . import conditions as cond
from . import inplace
from .context import Gang, JobEvent, Observed, PassContext, Plan, PodDeletion, fmt_time  # noqa: F401 (re-exported)
from .phases import failures, lifecycle, queue, restarts, stall, startup
from .phases import inplace as in_place
from .phases.converge import converge
from .queueing import KueueObserved
from .waiting import Refusal

Phase = Callable[[PassContext, Gang], bool]

# In order; each returns True when it has decided the pass.
PHASES: tuple[Phase, ...] = (
    restarts.observe,
    queue.admission,  # Kueue-managed jobs: held (no pods) until admitted; the Workload follows the job
    lifecycle.finished,
    stall.progress,  # never decides: status.progress follows worker 0 up to the pass that ends the job
    lifecycle.over_the_cap,
    lifecycle.suspended,
    lifecycle.started,
    lifecycle.active_deadline,
    lifecycle.resized,
    lifecycle.succeeded,
    in_place.in_place,
    failures.lost_members,
    failures.scheduler_address,
    failures.failures,
    stall.stalled,
    startup.startup_deadline,
)


def reconcile(job: dict[str, Any], pods: Sequence[dict[str, Any]], services: Sequence[dict[str, Any]], now: dt.datetime,
              config: Config = DEFAULT, podgroups: Sequence[dict[str, Any]] = (), *,
              refusals: Optional[Mapping[tuple[str, str], Refusal]] = None, holders: Sequence[dict[str,
                                                                                                   Any]] = (),
              configmaps: Sequence[dict[str, Any]] = (), kueue: Optional[KueueObserved] = None,
              leases: Sequence[dict[str, Any]] = ()) -> Plan:
    observed = Observed(pods=tuple(pods), services=tuple(services), podgroups=tuple(podgroups),
                        refusals=dict(refusals or {}), holders=tuple(holders), configmaps=tuple(configmaps),
                        kueue=kueue or KueueObserved(), leases=tuple(leases))
    try:
        spec = MSJobSpec.model_validate(job.get("spec") or {})
    except ValidationError as exc:
        # The CRD rejects this at admission; an object stored before a stricter CRD can still get here.
        p = PassContext(job, MSJobSpec.model_construct(ms_replica_specs=ReplicaSpecs.model_construct()), now)
        p.finish(False, "InvalidSpec", f"the MSJob spec is invalid: {exc.errors()[0]['msg']}")
        p.status.state = cond.state(p.conditions)
        return p.done()

    p = PassContext(job, spec, now, config, observed)
    gang = Gang.of(p)
    if not any(phase(p, gang) for phase in PHASES):  # the first phase that decides the pass ends it
        converge(p, gang)
    if inplace.active(p):
        inplace.sync_gang(p)  # the gang ConfigMap follows status.gang as this pass left it
        inplace.sync_leases(p)  # and every member has the Lease its agent reports on
    return p.done()
