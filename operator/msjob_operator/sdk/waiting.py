"""Waiting for an MSJob's conditions: watch the job, fall back to polling when the watch is refused or breaks.

``MSJobClient.wait_for_condition`` and ``wait_for_job`` are the way in; this module holds the loop so the
client stays a thin layer of API calls.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Union

from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from ..api.models import GROUP, PLURAL, VERSION, MSJob
from ..api.status import MSJobStatus
from .accessors import CONDITION_TYPES, has_condition, status_of
from .errors import MSJobDeletedError, MSJobFailedError, MSJobNotFoundError, MSJobTimeoutError

if TYPE_CHECKING:
    from .client import MSJobClient

log = logging.getLogger(__name__)

# Called with every new version of the job seen; returns the job once the wait is over, else None.
Observer = Callable[[MSJob], Optional[MSJob]]
# Watch failures in a row after which the wait only polls.
MAX_WATCH_FAILURES = 3


def wanted_conditions(conditions: Union[str, Iterable[str]]) -> tuple[str, ...]:
    """The conditions as a tuple, checked against the condition types a job can have."""
    wanted = (conditions,) if isinstance(conditions, str) else tuple(conditions)
    unknown = [c for c in wanted if c not in CONDITION_TYPES]
    if not wanted or unknown:
        raise ValueError(f"conditions must be among {', '.join(CONDITION_TYPES)}; got {wanted!r}")
    return wanted


def wait_for_condition(client: MSJobClient, name: str, wanted: tuple[str, ...], ns: str, timeout: float,
                       polling_interval: float, callback: Optional[Callable[[MSJob], None]]) -> MSJob:
    """The loop behind ``MSJobClient.wait_for_condition`` (which documents what it raises)."""
    deadline = time.monotonic() + timeout
    last: Optional[MSJob] = None
    seen_version: Optional[str] = None

    def observe(job: MSJob) -> Optional[MSJob]:
        nonlocal last, seen_version
        last = job
        version = job.metadata.get("resourceVersion")
        if callback is not None and (version is None or version != seen_version):
            callback(job)
        seen_version = version
        if any(has_condition(job, c) for c in wanted):
            return job
        if "Failed" not in wanted and has_condition(job, "Failed"):
            raise MSJobFailedError(job)
        return None

    def pause() -> None:
        time.sleep(max(0.0, min(polling_interval, deadline - time.monotonic())))

    watch_allowed = True
    watch_failures = 0
    while True:
        try:
            job = client.get(name, ns)
        except MSJobNotFoundError:
            if last is not None:
                raise MSJobDeletedError(
                    f"MSJob {ns}/{name} was deleted while waiting for {'/'.join(wanted)}") from None
            raise
        done = observe(job)
        if done is not None:
            return done
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if watch_allowed:
            try:
                done = watch_until(client, name, ns, job.metadata.get("resourceVersion"), remaining, observe)
                watch_failures = 0
            except ApiException as e:
                if e.status in (401, 403, 405):
                    log.debug("watching MSJob %s/%s is not allowed (%s): polling instead", ns, name, e.status)
                    watch_allowed = False
                elif e.status != 410:  # 410 Gone: the version expired; get and watch again
                    watch_failures += 1
            except _Propagate as p:  # raised by observe() or the callback: the caller's business
                raise p.error from None
            except Exception as e:  # noqa: BLE001 - connection reset, read timeout...: poll, then watch again
                log.debug("watch of MSJob %s/%s broke (%r): polling", ns, name, e)
                watch_failures += 1
            if done is not None:
                return done
            if watch_failures >= MAX_WATCH_FAILURES:
                watch_allowed = False
            if watch_failures:
                pause()
        else:
            pause()
        # Next round: read the job again (after the deadline too, so a timeout reports the newest state).
    raise MSJobTimeoutError(timeout_message(name, ns, wanted, timeout, last), last)


def timeout_message(name: str, ns: str, wanted: tuple[str, ...], timeout: float, last: Optional[MSJob]) -> str:
    st = status_of(last) if last is not None else MSJobStatus.read({})
    conds = ", ".join(f"{c.type}={c.status}" for c in st.conditions or []) or "none"
    return (f"timed out after {timeout:g} s waiting for MSJob {ns}/{name} to be {' or '.join(wanted)}; "
            f"last state: {st.state or 'Pending'}, workers {st.workers or '-'}, restarts {st.restart_count or 0}, "
            f"conditions: {conds}")


def watch_until(client: MSJobClient, name: str, ns: str, resource_version: Optional[str], remaining: float,
                observe: Observer) -> Optional[MSJob]:
    """One watch request (at most ``remaining`` seconds, server side and client side)."""
    w = k8s_watch.Watch()
    server_timeout = max(1, int(min(remaining, 300)))
    kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}", "timeout_seconds": server_timeout,
                              "_request_timeout": (10, server_timeout + 10)}
    if resource_version:
        kwargs["resource_version"] = resource_version
    try:
        for event in w.stream(client.custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, **kwargs):
            kind, obj = event.get("type"), event.get("raw_object") or event.get("object")
            if kind == "DELETED":
                raise _Propagate(MSJobDeletedError(f"MSJob {ns}/{name} was deleted while being waited for"))
            if kind in ("ADDED", "MODIFIED") and isinstance(obj, dict):
                try:
                    done = observe(MSJob.model_validate(obj))
                except Exception as e:  # noqa: BLE001 - not a watch failure: pass it on untouched
                    raise _Propagate(e) from e
                if done is not None:
                    return done
    finally:
        w.stop()
    return None


class _Propagate(Exception):
    """Carries an error out of a watch that must not count as the watch failing."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
