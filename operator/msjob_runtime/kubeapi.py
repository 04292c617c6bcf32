"""A tiny Kubernetes API client: JSON over HTTPS with the standard library only.

Enough for what runs in training pods: ``get``, ``patch`` (JSON merge patch), ``request`` for
anything else, and ``watch`` (a stream of watch events).  Credentials (``Config``)::

    Config.in_cluster()                         # the pod's ServiceAccount
    Config(server, token_file=..., ca_file=...)  # explicit (tests, a sidecar given files)
    kubeconfig.load_kubeconfig(path)             # token or client-certificate users
    load_config(...)                             # the first that applies, as the reporter needs

Every call has a timeout (``Config.timeout`` unless given) on connecting and on each read, so
nothing blocks for ever.
Failures raise ``ApiError`` (the API server answered an error: HTTP status, reason and its
message) or ``TransportError`` (no answer: connection, TLS or timeout), both ``KubeError``.

A token file is read again whenever it changes (the kubelet rotates projected ServiceAccount
tokens in place), and once more after a 401.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple
from urllib.parse import urlencode, urlsplit

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TIMEOUT = 10.0
WATCH_SLACK = 30.0  # read timeout of a watch beyond its timeoutSeconds: the server ends it first
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """Anything that went wrong talking to the API server."""


class ConfigError(KubeError):
    """No usable credentials (missing files, unsupported kubeconfig)."""


class TransportError(KubeError):
    """No answer from the API server: connection refused, TLS failure, timeout, a cut stream."""


class ApiError(KubeError):
    """The API server answered with an error: ``status`` (HTTP), ``reason`` and ``message``
    (from its Status object when it sent one), ``body`` (the Status, or None)."""

    def __init__(self, status: int, reason: str, message: str, body: Optional[dict] = None):
        super().__init__(f"HTTP {status} {reason}: {message}" if message else f"HTTP {status} {reason}")
        self.status, self.reason, self.message, self.body = status, reason, message, body

    @classmethod
    def from_response(cls, status: int, http_reason: str, raw: bytes) -> "ApiError":
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            return cls(status, str(body.get("reason") or http_reason), str(body.get("message") or ""), body)
        text = raw.decode("utf-8", "replace").strip()[:500]
        return cls(status, http_reason, text, None)


@dataclass
class Config:
    """Where the API server is and how to authenticate; ``*_data`` fields hold PEM text."""

    server: str
    token: Optional[str] = None
    token_file: Optional[str] = None
    ca_file: Optional[str] = None
    ca_data: Optional[str] = None
    client_cert_file: Optional[str] = None
    client_key_file: Optional[str] = None
    client_cert_data: Optional[str] = None
    client_key_data: Optional[str] = None
    insecure_skip_tls_verify: bool = False
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def in_cluster(cls, directory: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> "Config":
        """The pod's ServiceAccount: ``KUBERNETES_SERVICE_HOST``/``PORT`` and the token and CA
        mounted in ``directory`` (default ``SERVICE_ACCOUNT_DIR``)."""
        env = os.environ if environ is None else environ
        directory = directory or SERVICE_ACCOUNT_DIR
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ConfigError("not in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
        token_file = os.path.join(directory, "token")
        if not os.path.isfile(token_file):
            raise ConfigError(f"no ServiceAccount token at {token_file}")
        ca_file = os.path.join(directory, "ca.crt")
        if ":" in host:
            host = f"[{host}]"  # IPv6
        return cls(server=f"https://{host}:{port}", token_file=token_file,
                   ca_file=ca_file if os.path.isfile(ca_file) else None)


def load_config(kubeconfig: Optional[str] = None, *, server: Optional[str] = None, token_file: Optional[str] = None,
                ca_file: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Config:
    """Explicit ``server`` (with ``token_file``/``ca_file``), else ``kubeconfig``, else in-cluster,
    else the first file of ``$KUBECONFIG``, else ``~/.kube/config``."""
    from .kubeconfig import load_kubeconfig

    env = os.environ if environ is None else environ
    if server:
        return Config(server=server, token_file=token_file, ca_file=ca_file)
    if token_file or ca_file:
        raise ConfigError("a token file or CA file needs a server URL too")
    if kubeconfig:
        return load_kubeconfig(kubeconfig)
    try:
        return Config.in_cluster(environ=env)
    except ConfigError as in_cluster:
        paths = [p for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p]
        paths.append(os.path.join(os.path.expanduser("~"), ".kube", "config"))
        for path in paths:
            if os.path.isfile(path):
                return load_kubeconfig(path)
        raise ConfigError(f"no Kubernetes credentials: {in_cluster}; and no kubeconfig file") from None


def _load_cert_chain(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """``load_cert_chain`` takes files only: write the PEM to a private file, load it, remove it."""
    fd, path = tempfile.mkstemp(prefix="msjob-client-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(cert_pem.rstrip("\n") + "\n" + key_pem.rstrip("\n") + "\n")
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


def ssl_context(config: Config) -> ssl.SSLContext:
    if config.insecure_skip_tls_verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=config.ca_file, cadata=config.ca_data)
    if config.client_cert_data or config.client_key_data:
        if not (config.client_cert_data and config.client_key_data):
            raise ConfigError("a client certificate needs its key (and the key its certificate)")
        _load_cert_chain(context, config.client_cert_data, config.client_key_data)
    elif config.client_cert_file:
        context.load_cert_chain(config.client_cert_file, config.client_key_file)
    return context


class _Token:
    """The bearer token: fixed, or a file read again when it changes."""

    def __init__(self, token: Optional[str], path: Optional[str]):
        self.value, self.path = (token.strip() if token else None), path
        self._stamp: Optional[Tuple[int, int, int]] = None

    def get(self, force: bool = False) -> Optional[str]:
        if not self.path:
            return self.value
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
            if force or stamp != self._stamp or self.value is None:
                with open(self.path, encoding="utf-8") as f:
                    self.value = f.read().strip()
                self._stamp = stamp
        except OSError as e:
            raise ConfigError(f"cannot read the token file {self.path}: {e}") from None
        return self.value


class Client:
    """Requests to one API server.  One keep-alive connection serves the plain calls (opened again
    when the server has closed it); each watch has its own.  Not thread-safe: one per thread."""

    def __init__(self, config: Config):
        url = urlsplit(config.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ConfigError(f"bad API server URL {config.server!r} (want https://host:port)")
        self.config = config
        self.scheme, self.host = url.scheme, url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.prefix = url.path.rstrip("/")
        self.context = ssl_context(config) if url.scheme == "https" else None
        self._token = _Token(config.token, config.token_file)
        self._conn: Optional[http.client.HTTPConnection] = None

    # ----- plain calls

    def get(self, path: str, query: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        return self.request("GET", path, query=query, timeout=timeout)

    def patch(self, path: str, body: Any, timeout: Optional[float] = None) -> Any:
        """A JSON merge patch (RFC 7386): maps merge, ``None`` removes a key, lists are replaced."""
        return self.request("PATCH", path, body, content_type=MERGE_PATCH, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, *, query: Optional[Mapping[str, Any]] = None,
                content_type: str = "application/json", timeout: Optional[float] = None) -> Any:
        """The decoded JSON answer (None for an empty body); ``ApiError`` for an HTTP error."""
        timeout = self.config.timeout if timeout is None else timeout
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        status, reason, raw = self._exchange(method, self._url(path, query), data, content_type, timeout)
        if status == 401 and self._token.path:  # a rotated token the file's stamp did not show?
            before = self._token.value
            if self._token.get(force=True) != before:
                status, reason, raw = self._exchange(method, self._url(path, query), data, content_type, timeout)
        if status >= 400:
            raise ApiError.from_response(status, reason, raw)
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise TransportError(f"{method} {path}: the answer is not JSON: {e}") from None

    def _exchange(self, method: str, url: str, data: Optional[bytes], content_type: str,
                  timeout: float) -> Tuple[int, str, bytes]:
        headers = self._headers(content_type if data is not None else None)
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or self._connect(timeout)
            self._conn = conn
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.request(method, url, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop()
                if reused and attempt == 1:
                    continue  # the server closed the idle keep-alive connection: once more, anew
                raise TransportError(f"{method} {url}: {type(e).__name__}: {e}") from None
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                raise TransportError(f"{method} {url}: {_describe_os_error(e, timeout)}") from None
            if response.will_close:
                self._drop()
            return response.status, response.reason, raw
        raise AssertionError("unreachable")

    # ----- watch

    def watch(self, path: str, *, resource_version: Optional[str] = None, timeout_seconds: Optional[int] = None,
              query: Optional[Mapping[str, Any]] = None, allow_bookmarks: bool = False,
              read_timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Watch events (``{"type": ADDED|MODIFIED|DELETED|BOOKMARK, "object": {...}}``) of the
        collection or object list at ``path``, as they come, until the server ends the watch
        (after ``timeout_seconds``) or the caller stops iterating.

        Start from ``resource_version`` (the list's, or the last event's object's, to resume); an
        ``ERROR`` event raises ``ApiError`` (410 Gone: that version is too old, list again).  The
        stream may stay silent up to ``read_timeout`` s (default: ``timeout_seconds`` plus
        ``WATCH_SLACK``, or ``Config.timeout`` plus it): past that, ``TransportError``.
        """
        params: Dict[str, Any] = dict(query or {})
        params["watch"] = "true"
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if timeout_seconds is not None:
            params["timeoutSeconds"] = int(timeout_seconds)
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if read_timeout is None:
            read_timeout = (timeout_seconds if timeout_seconds is not None else self.config.timeout) + WATCH_SLACK
        url = self._url(path, params)
        conn = self._connect(min(read_timeout, self.config.timeout))
        try:
            try:
                conn.request("GET", url, headers=self._headers(None))
                response = conn.getresponse()
                if conn.sock is not None:
                    conn.sock.settimeout(read_timeout)
                if response.status >= 400:
                    raise ApiError.from_response(response.status, response.reason, response.read())
            except (OSError, http.client.HTTPException) as e:
                raise TransportError(f"watch {url}: {_describe_os_error(e, read_timeout)}") from None
            yield from self._events(response, url, read_timeout)
        finally:
            conn.close()

    def _events(self, response: http.client.HTTPResponse, url: str, read_timeout: float) -> Iterator[Dict[str, Any]]:
        while True:
            try:
                line = response.readline()
            except (OSError, http.client.HTTPException) as e:
                raise TransportError(f"watch {url}: {_describe_os_error(e, read_timeout)}") from None
            if not line:
                return  # the server ended the watch
            if not line.strip():
                continue
            try:
                event = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise TransportError(f"watch {url}: not a watch event: {line[:200]!r}") from None
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                raise ApiError(int(status.get("code") or 500), str(status.get("reason") or "Error"),
                               str(status.get("message") or ""), status)
            yield event

    # ----- plumbing

    def _url(self, path: str, query: Optional[Mapping[str, Any]]) -> str:
        if not path.startswith("/"):
            path = "/" + path
        return self.prefix + path + (("?" + urlencode(query)) if query else "")

    def _headers(self, content_type: Optional[str]) -> Dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "msjob-runtime"}
        if content_type:
            headers["Content-Type"] = content_type
        token = self._token.get()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "http":
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _describe_os_error(e: BaseException, timeout: float) -> str:
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    return f"{type(e).__name__}: {e}"
