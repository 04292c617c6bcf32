"""Typed accessors of an MSJob's status (the API model keeps ``MSJob.status`` as a plain dict).

Each takes an ``MSJob`` or the dict the API server returns, so scripts can use them on either.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Union

from ..api.enums import ConditionType, ReplicaType
from ..api.models import MSJob
from ..api.status import Condition, MSJobStatus
from ..builders.env import replica_count

JobLike = Union[MSJob, dict[str, Any]]
# The conditions of a finished job.
FINISHED = ("Succeeded", "Failed")
# Condition types a job can have (Kubeflow's, plus Stalled and Waiting), for argument checking.
CONDITION_TYPES = tuple(c.value for c in ConditionType)


def status_of(job: JobLike) -> MSJobStatus:
    """The job's status as an ``MSJobStatus`` (empty when the operator has not written one yet)."""
    raw = job.status if isinstance(job, MSJob) else job.get("status")
    return MSJobStatus.read(raw or {})


def conditions_of(job: JobLike) -> list[Condition]:
    return list(status_of(job).conditions or [])


def condition_of(job: JobLike, ctype: str) -> Optional[Condition]:
    for cond in conditions_of(job):
        if cond.type == ctype:
            return cond
    return None


def has_condition(job: JobLike, ctype: str) -> bool:
    """True when the job's condition ``ctype`` is ``status: "True"``."""
    cond = condition_of(job, ctype)
    return cond is not None and cond.status == "True"


def state_of(job: JobLike) -> str:
    """The state ``kubectl get msj`` shows; ``Pending`` before the operator first wrote a status."""
    return status_of(job).state or "Pending"


def is_finished(job: JobLike) -> bool:
    return has_condition(job, "Succeeded") or has_condition(job, "Failed")


def total_workers(job: JobLike) -> int:
    spec = job.spec if isinstance(job, MSJob) else MSJob.model_validate(job).spec
    return replica_count(spec, ReplicaType.WORKER.value)


def to_dict(job: JobLike) -> dict[str, Any]:
    """The object as the API server takes it (camelCase keys, no unset fields)."""
    if isinstance(job, MSJob):
        return job.model_dump(by_alias=True, exclude_none=True, mode="json")
    return copy.deepcopy(job)
