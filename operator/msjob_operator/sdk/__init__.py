"""Python SDK for MSJobs: ``MSJobClient`` (create, get, list, wait, logs, delete, suspend, resume), the
``new_msjob`` builder and typed status accessors. The ``msjob`` command (``msjob_operator.sdk.cli``) is built on it.

Needs the official ``kubernetes`` client (the ``local`` extra, or ``pip install kubernetes``).

Modules: ``client`` (MSJobClient), ``waiting`` (its watch/poll loop), ``builder`` (new_msjob), ``accessors``
(status helpers), ``errors``; for the command: ``cli``, ``describe`` and ``format`` (tables, progress lines).
"""

from ..api.models import MSJob
from ..api.status import Condition, MSJobStatus, ReplicaStatus
from .accessors import (
    condition_of,
    conditions_of,
    has_condition,
    is_finished,
    state_of,
    status_of,
    to_dict,
    total_workers,
)
from .builder import new_msjob
from .client import MSJobClient
from .errors import (
    LogsUnavailableError,
    MSJobDeletedError,
    MSJobError,
    MSJobFailedError,
    MSJobNotFoundError,
    MSJobTimeoutError,
)

__all__ = [
    "Condition", "MSJob", "MSJobStatus", "ReplicaStatus",
    "MSJobClient", "new_msjob",
    "MSJobError", "MSJobNotFoundError", "MSJobFailedError", "MSJobTimeoutError", "MSJobDeletedError",
    "LogsUnavailableError",
    "status_of", "conditions_of", "condition_of", "has_condition", "state_of", "is_finished", "to_dict",
    "total_workers",
]
