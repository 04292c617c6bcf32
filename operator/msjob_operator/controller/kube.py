"""A small async Kubernetes client that speaks plain JSON dicts.

kubernetes_asyncio handles configuration, TLS and auth; we call its ``call_api`` with
``_preload_content=False`` and parse JSON ourselves, because building model objects for thousands of
pods costs more CPU than the API calls.  AlreadyExists on create and NotFound on delete are success:
they mean the world is already as we want it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
import urllib.request
from typing import Any, AsyncIterator, Optional

from kubernetes_asyncio import client, config

from msjob_runtime.agent_protocol import lease_path as lease_path  # the agents' Lease paths are the controller's

from ..api.models import GROUP, PLURAL, VERSION
from . import metrics

log = logging.getLogger(__name__)


class KubeError(Exception):
    def __init__(self, status: int, body: Any, what: str):
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)[:300]
        super().__init__(f"{what}: HTTP {status}: {message}")


def job_path(namespace: str, name: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{path}/{name}" if name else path


def core_path(kind_plural: str, namespace: Optional[str] = None, name: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/{kind_plural}" if namespace else f"/api/v1/{kind_plural}"
    return f"{path}/{name}" if name else path


async def load_configuration(kubeconfig: Optional[str] = None) -> client.Configuration:
    """An explicit kubeconfig file, else the in-cluster service account, else $KUBECONFIG or ~/.kube/config."""
    configuration = client.Configuration()
    if not kubeconfig:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except config.ConfigException:
            pass
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    await config.load_kube_config(config_file=path, client_configuration=configuration)
    return configuration


def request_kind(method: str, path: str, watch: bool = False) -> tuple[str, str]:
    """(verb, resource) of a request in the API server's own terms, e.g. ("list", "pods"),
    ("patch", "msjobs/status")."""
    parts = [p for p in path.split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]  # drop /api/v1 or /apis/<group>/<version>
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]  # a namespaced resource, not the namespace itself
    if not rest:
        return "get", "discovery"
    named = len(rest) >= 2
    resource = f"{rest[0]}/{rest[2]}" if len(rest) >= 3 else rest[0]
    if watch:
        return "watch", resource
    verb = {"GET": "get" if named else "list", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection"}.get(method.upper(), method.lower())
    return verb, resource


def _count(method: str, path: str, watch: bool = False) -> None:
    metrics.API_REQUESTS.labels(*request_kind(method, path, watch)).inc()


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``: removed keys become null,
    objects are patched key by key, lists and scalars are replaced whole."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key, _ABSENT)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif value != before:
            patch[key] = value
    return patch


_ABSENT = object()


def env_proxy(url: str) -> Optional[str]:
    """The proxy $HTTPS_PROXY / $HTTP_PROXY name for this URL, unless $NO_PROXY exempts its host."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class Kube:
    """Async JSON client; ``max_in_flight`` bounds concurrent requests (no client-side QPS throttle)."""

    def __init__(self, api_client: client.ApiClient, max_in_flight: int = 64):
        self.api = api_client
        self.limit = asyncio.Semaphore(max_in_flight)

    @classmethod
    async def connect(cls, kubeconfig: Optional[str] = None, max_in_flight: int = 64) -> "Kube":
        configuration = await load_configuration(kubeconfig)
        # The connection pool must not be the bottleneck of the bounded concurrency above.
        configuration.connection_pool_maxsize = max_in_flight + 16
        if configuration.proxy is None and configuration.host:
            configuration.proxy = env_proxy(configuration.host)
        api = client.ApiClient(configuration)
        # kubernetes_asyncio's session trusts the environment, so aiohttp reads the proxy variables and
        # ~/.netrc in a thread for every request: two thread hops per call, a hot spot when creating
        # thousands of pods. The proxy was resolved once above; netrc has nothing for the API server.
        session = api.rest_client.pool_manager
        if hasattr(session, "_trust_env"):
            session._trust_env = False
        return cls(api, max_in_flight)

    async def close(self) -> None:
        await self.api.close()

    async def request(self, method: str, path: str, body: Any = None, *, query: Optional[dict[str, Any]] = None,
                      content_type: str = "application/json", ok_statuses: tuple[int, ...] = (),
                      timeout: float = 60) -> tuple[int, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None]
        async with self.limit:
            _count(method, path)
            response = await self.api.call_api(
                path, method, query_params=params, header_params=headers, body=body,
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout,
            )
            try:
                raw = await response.read()
            finally:
                response.release()
        status = response.status
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        if 200 <= status < 300 or status in ok_statuses:
            return status, data
        raise KubeError(status, data, f"{method} {path}")

    # -- children ---------------------------------------------------------------------------
    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> Optional[dict[str, Any]]:
        """Create a core object; returns it, or None if it already existed (409)."""
        status, data = await self.request("POST", core_path(plural, namespace), body, ok_statuses=(409,))
        return None if status == 409 else data

    async def get(self, plural: str, namespace: str, name: str) -> Optional[dict[str, Any]]:
        status, data = await self.request("GET", core_path(plural, namespace, name), ok_statuses=(404,))
        return None if status == 404 else data

    async def delete_pod(self, namespace: str, name: str, uid: str,
                         grace_seconds: Optional[int] = None) -> Optional[dict[str, Any]]:
        """Delete one pod (only the incarnation with this UID); None when it is already gone."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        # 409: the UID precondition failed, i.e. this incarnation is gone and a new one took the name.
        status, data = await self.request("DELETE", core_path("pods", namespace, name), body, ok_statuses=(404, 409))
        if status in (404, 409):
            return None
        return data if isinstance(data, dict) and data.get("kind") == "Pod" else None

    async def list(self, path: str, label_selector: Optional[str] = None,
                   limit: int = 500) -> tuple[list[dict[str, Any]], str]:
        """All items (paginated) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token = None
        while True:
            _, data = await self.request("GET", path, query={"labelSelector": label_selector, "limit": limit,
                                                             "continue": token})
            items.extend(data.get("items") or [])
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return items, data["metadata"]["resourceVersion"]

    async def watch(self, path: str, resource_version: str, label_selector: Optional[str] = None,
                    timeout_seconds: int = 300, field_selector: Optional[str] = None) -> AsyncIterator[dict[str, Any]]:
        """Watch events as dicts ({type, object}), until the server ends the stream."""
        params = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                  ("timeoutSeconds", timeout_seconds)]
        if label_selector:
            params.append(("labelSelector", label_selector))
        if field_selector:
            params.append(("fieldSelector", field_selector))
        _count("GET", path, watch=True)
        response = await self.api.call_api(
            path, "GET", query_params=params, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout_seconds + 30,
        )
        try:
            if response.status != 200:
                raise KubeError(response.status, (await response.read()).decode(errors="replace"), f"watch {path}")
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.release()

    # -- the MSJob itself --------------------------------------------------------------------
    async def patch_job_status(self, namespace: str, name: str, old: dict[str, Any], new: dict[str, Any],
                               resource_version: Optional[str]) -> Optional[dict[str, Any]]:
        """Make the job's status exactly ``new``, knowing it is ``old`` at ``resource_version``.

        A JSON merge patch of the difference, with null for every key ``new`` drops, so nothing stale
        stays behind; the resourceVersion makes it conditional, so a status computed from an older
        job is never written (Conflict, raised as KubeError 409: read the job again and re-plan).
        Returns the updated job, or None if the job is gone.
        """
        body: dict[str, Any] = {"status": merge_patch(old, new) if old else new}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        code, data = await self.request(
            "PATCH", job_path(namespace, name) + "/status", body,
            content_type="application/merge-patch+json", ok_statuses=(404,),
        )
        return None if code == 404 else data

    async def get_job(self, namespace: str, name: str) -> Optional[dict[str, Any]]:
        code, data = await self.request("GET", job_path(namespace, name), ok_statuses=(404,))
        return None if code == 404 else data

    async def delete_job(self, namespace: str, name: str, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                "preconditions": {"uid": uid}}
        await self.request("DELETE", job_path(namespace, name), body, ok_statuses=(404, 409))

