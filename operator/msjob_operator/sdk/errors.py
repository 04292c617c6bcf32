"""The SDK's errors, and the readable part of an API server's refusal."""

from __future__ import annotations

import json
from typing import Optional

from kubernetes.client.exceptions import ApiException

from ..api.models import MSJob
from .accessors import condition_of


class MSJobError(RuntimeError):
    """Base class of the SDK's errors."""


class MSJobNotFoundError(MSJobError, LookupError):
    def __init__(self, name: str, namespace: str):
        super().__init__(f"MSJob {namespace}/{name} not found")
        self.name, self.namespace = name, namespace


class MSJobFailedError(MSJobError):
    """The job ended Failed: ``reason`` and ``message`` are those of its ``Failed`` condition."""

    def __init__(self, job: MSJob):
        cond = condition_of(job, "Failed")
        self.job = job
        self.reason = (cond.reason if cond else None) or "Failed"
        self.message = (cond.message if cond else None) or ""
        super().__init__(f"MSJob {job.namespace}/{job.name} failed: {self.reason}: {self.message}".rstrip(": "))


class MSJobTimeoutError(MSJobError, TimeoutError):
    """A wait ran out of time; ``job`` is the last version seen (None if it was never seen)."""

    def __init__(self, message: str, job: Optional[MSJob]):
        super().__init__(message)
        self.job = job


class MSJobDeletedError(MSJobError):
    """The job was deleted while being waited for."""


class LogsUnavailableError(MSJobError):
    """The pod's log cannot be read: no such pod, its container has not started, or its node serves no logs.

    Pods on kwok's fake nodes have no containers and no kubelet log endpoint, so reading their log always
    raises this error (with the API server's answer in ``detail``); on a real cluster it means the pod is not
    there (yet) or is still pending.
    """

    def __init__(self, message: str, pod: Optional[str] = None, node: Optional[str] = None,
                 status: Optional[int] = None, detail: str = ""):
        super().__init__(message)
        self.pod, self.node, self.status, self.detail = pod, node, status, detail


def api_message(e: ApiException) -> str:
    """The human part of an API error (the Status ``message``), else its reason."""
    body = e.body.decode(errors="replace") if isinstance(e.body, bytes) else e.body
    try:
        parsed = json.loads(body or "")
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    except (TypeError, ValueError):
        pass
    return str(body or "").strip() or str(e.reason or e.status)
