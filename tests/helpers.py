"""Bounded polling for tests: the only way tests wait for the cluster."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, message: str = "",
             describe: Callable[[], Any] | None = None) -> Any:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    On timeout raise AssertionError with ``message``, the last value (or exception)
    the predicate produced and, if given, ``describe()``: the state worth seeing.
    Exceptions from the predicate count as "not yet" (objects may not exist yet).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            detail = f"last value: {last!r}"
            if describe is not None:
                try:
                    detail += f"; state: {describe()!r}"
                except Exception as e:  # noqa: BLE001
                    detail += f"; describe() failed: {e!r}"
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message or predicate}; {detail}")
        time.sleep(interval)


def admin_client(cluster: Any) -> Iterator[Any]:
    """A sync ``kubernetes.client.ApiClient`` with ``cluster``'s admin credentials (for a session fixture)."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client
    client.close()


def member_report(core: Any, pod: Any) -> dict[str, Any] | None:
    """The in-place agent's report of ``pod`` (a V1Pod) as the operator reads it: on the member's Lease,
    when the Lease's holder is this pod (None otherwise, or without a Lease)."""
    from kubernetes.client import CoordinationV1Api
    from kubernetes.client.exceptions import ApiException

    from msjob_runtime.agent_protocol import member_lease_name, read_member_report

    try:
        lease = CoordinationV1Api(core.api_client).read_namespaced_lease(member_lease_name(pod.metadata.name),
                                                                         pod.metadata.namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return read_member_report(core.api_client.sanitize_for_serialization(lease), pod.metadata.uid)
