"""A node whose pods really run: each pod is a set of local processes, as a kubelet would run them.

The local cluster's other nodes are kwok's fake nodes; this one runs real MindSpore. A
``ProcessNode`` starts an agent subprocess (``python -m msjob_localcluster.processnode
run ...``) that plays the kubelet (and kube-proxy) for one Node object:

* **Node**: registered Ready with capacity cpu/memory/pods, the label
  ``msjob.test/process-node: "true"`` and the taint ``msjob.test/process-node=true:NoSchedule``
  (only pods that tolerate it and select the label land here; no kwok annotation, so kwok leaves
  it alone). Its Ready condition and its Lease in ``kube-node-lease`` are renewed every 10 s.
* **Pods** bound to it (``spec.nodeName``, by kube-scheduler) each get a network namespace with
  their own IP on a bridge (see ``netns.py``), their own host name (UTS namespace) and
  ``/etc/hosts``. Each container is the process ``command + args``, with:

  - the image replaced by this machine: ``python``/``python3``/``pythonX.Y`` (any directory) is the
    interpreter running the agent (the project's venv, with MindSpore), every other command is
    looked up on ``PATH`` (the venv's ``bin`` first); the "image" adds ``PATH``, ``HOME`` (a
    per-pod directory), ``HOSTNAME``, ``LANG=C.UTF-8``, ``PYTHONUNBUFFERED=1`` and the agent's own
    ``PYTHONPATH`` when it has one (so pods import the checkout the harness runs, e.g. a worktree's
    ``operator/`` with ``msjob_runtime``, not only the venv's install; a container's env overrides it).
    The test-only annotation ``msjob.test/image-lacks: python3`` makes the pod's containers' "image" lack
    those commands (their start fails with the runtime's StartError, exit code 128).
    A container without ``command`` runs its image's ENTRYPOINT and CMD where the node knows them
    (``IMAGE_ENTRYPOINTS``: this project's own image), combined with ``args`` as the kubelet does;
  - the environment resolved as the kubelet does: service links (``<SVC>_SERVICE_HOST`` ...),
    ``envFrom`` and ``env`` with ``$(VAR)`` expansion, ``valueFrom`` (``fieldRef`` for
    metadata.name/namespace/uid/labels/annotations, spec.nodeName/serviceAccountName,
    status.podIP(s)/hostIP(s); ``resourceFieldRef``; ``configMapKeyRef``; ``secretKeyRef``), then
    ``$(VAR)`` expansion in command and args (``$$`` escapes, unknown references stay as written);
  - volumes: ``emptyDir`` (a per-pod directory), ``hostPath``, ``configMap``, ``secret`` and
    ``downwardAPI`` (their keys written as files), bind-mounted on their ``mountPath``
    (``subPath``, ``readOnly``) in the container's private mount namespace, so different pods can
    mount different things on the same path. A mountPath missing on this machine is created
    (empty) and removed again when the node stops, if still empty and not mounted anywhere;
  - ``workingDir``; without it, a per-pod directory (not the machine's ``/``);
  - stdout and stderr to ``<root>/pods/<namespace>/<pod>/<uid>/<container>.log``
    (``ProcessNode.log``); ``kubectl logs`` is not served (no kubelet API).

  Init containers run one after the other first; a native sidecar (an init container with
  ``restartPolicy: Always``) is started in its turn, kept running (restarted when it exits) beside
  the main containers, and stopped (SIGTERM, SIGKILL after the grace period) once they have
  exited; its exit code does not count for the pod's phase. Probes, resource limits and image
  pulls are not emulated; ``restartPolicy`` OnFailure/Always restart a container (backoff 1 s
  doubling to 10 s, ``restartCount``);
  - a ServiceAccount token as the ServiceAccount admission plugin and the kubelet give it: a
    token bound to the pod (TokenRequest for ``serviceAccountName``, valid 24 h, not refreshed),
    ``ca.crt`` and ``namespace`` in ``/var/run/secrets/kubernetes.io/serviceaccount``, unless
    ``automountServiceAccountToken: false``; with the ``kubernetes`` Service's variables, so
    in-cluster clients work (the ClusterIP reaches the API server through the agent's relay).
* **Pod status** is written through the status subresource: Pending (ContainerCreating) →
  Running (podIP, hostIP, container ``running.startedAt``, Ready) → Succeeded/Failed with each
  container's ``terminated`` state (exit code; a signal N is 128+N; reason Completed, Error or
  StartError; ``message`` = the log's last 80 lines / 2048 bytes when
  ``terminationMessagePolicy: FallbackToLogsOnError`` and the exit code is not 0).
* **Deletion**: when a pod gets its ``deletionTimestamp``, its process groups get SIGTERM, then
  SIGKILL after the grace period; its namespace goes; then the pod object is deleted with
  ``gracePeriodSeconds=0`` (as the kubelet finalizes).
* **Services** (kube-proxy's part): for each Service with a ClusterIP, connections from any pod
  to ClusterIP:port go to the first ready endpoint of its EndpointSlices (kept current as
  endpoints change, e.g. a recreated scheduler pod with a new IP), and are refused while there is
  none.
* ``stop()`` kills every pod process, deletes every namespace the node created and the Node.

Test hooks on ``ProcessNode``: ``records()``/``record()`` (what ran: PIDs, IPs, namespaces, exit
codes), ``log()``, ``kill()`` (signal a container's process by the PID the node recorded).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from . import netns
from .netns import NetworkError, PodNetwork, Relay, ServiceRule, ensure_host_tools, listen_in_namespace

log = logging.getLogger("msjob_operator.processnode")

NODE_LABEL = "msjob.test/process-node"
NODE_TAINT = {"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}
# What a pod template needs to run on a process node.
TOLERATION = {"key": NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
NODE_SELECTOR = {NODE_LABEL: "true"}
# Test-only, opt-in: commands the "image" of the pod's containers (not its init containers) does not have,
# comma-separated (e.g. "python3"): starting one fails as a container runtime fails it (StartError, 128).
IMAGE_LACKS_ANNOTATION = "msjob.test/image-lacks"
DEFAULT_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 40
TERMINATION_LOG_LINES = 80  # as the kubelet: the last 80 lines ...
TERMINATION_LOG_BYTES = 2048  # ... at most 2048 bytes
PODEXEC = Path(__file__).with_name("podexec.py")
IMAGE_VERSION = "v1.37.1-processnode"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 24 * 3600  # not refreshed: longer than any test or demo run
API_RELAY_PORT = 6443  # on the pods' gateway, in the bridge namespace
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
# (ENTRYPOINT, CMD) of the images whose pods may leave out ``command``: this project's own image,
# as the Dockerfile builds it (tests/unit/test_dockerfile.py keeps the two equal).
IMAGE_ENTRYPOINTS: dict[str, tuple[list[str], list[str]]] = {"msjob-operator": (["msjob-operator"], ["run"])}


class ProcessNodeError(RuntimeError):
    pass


def now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# The API: a small dict-in, dict-out REST client (watches included) on the kubeconfig's credentials.


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Kube:
    def __init__(self, kubeconfig: Path | str):
        import urllib3
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        self.host: str = cfg.host.rstrip("/")
        self.ca_file = cfg.ssl_ca_cert  # the cluster CA, also given to pods as ca.crt
        self.headers = {"Accept": "application/json", "User-Agent": "msjob-processnode"}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if token:
            prefix = (cfg.api_key_prefix or {}).get("authorization", "")
            prefixed = prefix and not token.startswith(prefix)
            self.headers["Authorization"] = f"{prefix} {token}".strip() if prefixed else token
        self.pool = urllib3.PoolManager(
            num_pools=4, maxsize=16, block=False,
            cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE",
            ca_certs=cfg.ssl_ca_cert, cert_file=cfg.cert_file, key_file=cfg.key_file,
        )
        self._urllib3 = urllib3

    def _url(self, path: str, query: dict[str, Any] | None) -> str:
        url = self.host + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                query: dict[str, Any] | None = None, content_type: str = "application/json",
                timeout: float = 30) -> Optional[dict[str, Any]]:
        """The response object; None for 404. Raises KubeError for other failures."""
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        resp = self.pool.request(method, self._url(path, query), body=data, headers=headers,
                                 timeout=self._urllib3.Timeout(connect=10, read=timeout), retries=False)
        if resp.status == 404:
            return None
        if resp.status >= 300:
            try:
                message = json.loads(resp.data).get("message", resp.data.decode(errors="replace"))
            except ValueError:
                message = resp.data.decode(errors="replace")
            raise KubeError(resp.status, message)
        return json.loads(resp.data) if resp.data else {}

    def watch(self, path: str, query: dict[str, Any], stop: threading.Event) -> Iterator[dict[str, Any]]:
        """Events of one watch request, until the server ends it."""
        resp = self.pool.request("GET", self._url(path, {**query, "watch": "true"}), headers=self.headers,
                                 preload_content=False, retries=False,
                                 timeout=self._urllib3.Timeout(
                                     connect=10, read=int(query.get("timeoutSeconds", 300)) + 30))
        try:
            if resp.status != 200:
                raise KubeError(resp.status, resp.data.decode(errors="replace"))
            buffer = b""
            for chunk in resp.stream(amt=None, decode_content=True):
                if stop.is_set():
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release_conn()

    # Shortcuts
    def patch(self, path: str, body: dict[str, Any], kind: str = "strategic-merge-patch") -> Optional[dict[str, Any]]:
        return self.request("PATCH", path, body, content_type=f"application/{kind}+json")


class Informer(threading.Thread):
    """List, then watch; calls ``on_sync(items)`` after every (re)list and ``on_event(type, obj)``."""

    def __init__(self, kube: Kube, path: str, query: dict[str, Any], on_sync: Callable[[list[dict[str, Any]]], None],
                 on_event: Callable[[str, dict[str, Any]], None], stop: threading.Event, name: str):
        super().__init__(name=f"informer-{name}", daemon=True)
        self.kube, self.path, self.query = kube, path, query
        self.on_sync, self.on_event, self.stop = on_sync, on_event, stop
        self.synced = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                listed = self.kube.request("GET", self.path, query=self.query) or {}
                version = listed["metadata"]["resourceVersion"]
                self.on_sync(listed.get("items") or [])
                self.synced.set()
                while not self.stop.is_set():
                    query = {**self.query, "resourceVersion": version, "allowWatchBookmarks": "true",
                             "timeoutSeconds": "300"}
                    for event in self.kube.watch(self.path, query, self.stop):
                        if event["type"] == "ERROR":  # 410 Gone: list again
                            raise KubeError(event["object"].get("code", 0), event["object"].get("message", ""))
                        version = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.on_event(event["type"], event["object"])
            except Exception as exc:  # noqa: BLE001 - keep watching whatever happens
                if not self.stop.is_set():
                    log.warning("%s: %s; listing again", self.name, exc)
                    self.stop.wait(1.0)


# ---------------------------------------------------------------------------------------------
# Kubelet rules, as pure functions.


def expand(text: str, mapping: Callable[[str], Optional[str]]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (third_party/forked/golang/expansion).

    ``$(NAME)`` becomes the variable's value, or stays as written when it is not defined; ``$$``
    is an escaped ``$``; a ``$`` before anything else is kept.
    """
    out: list[str] = []
    checkpoint = cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:  # incomplete reference: keep "$(" and go on after it
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:close]
                    value = mapping(name)
                    out.append(value if value is not None else f"$({name})")
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def _format_map(values: dict[str, Any]) -> str:
    return "\n".join(f'{k}="{v}"' for k, v in sorted((values or {}).items()))


def field_value(pod: dict[str, Any], path: str) -> str:
    """A downward-API ``fieldRef``."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"), "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(a.get("ip", "") for a in status.get("hostIPs") or []),
        "status.podIPs": ",".join(a.get("ip", "") for a in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    if path == "metadata.labels":
        return _format_map(meta.get("labels") or {})
    if path == "metadata.annotations":
        return _format_map(meta.get("annotations") or {})
    raise ProcessNodeError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(container: dict[str, Any], ref: dict[str, Any], allocatable: dict[str, Any]) -> str:
    """A downward-API ``resourceFieldRef``: the container's limit/request, or the node's allocatable."""
    from kubernetes.utils.quantity import parse_quantity

    kind, _, resource = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(resource)
    if value is None:
        value = allocatable.get(resource, "0")
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    return str(math.ceil(parse_quantity(str(value)) / divisor))


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """Docker-link style variables for Services with a ClusterIP (``enableServiceLinks``)."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        name = _env_name(svc["metadata"]["name"])
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            proto = (port.get("protocol") or "TCP")
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
            prefix = f"{name}_PORT_{port['port']}_{proto.upper()}"
            env[prefix] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(port["port"])
            env[f"{prefix}_ADDR"] = ip
        first = ports[0]
        env[f"{name}_PORT"] = f"{(first.get('protocol') or 'TCP').lower()}://{ip}:{first['port']}"
    return env


class NotReady(Exception):
    """Something the pod needs is not there yet (a ConfigMap, a Secret): the kubelet keeps trying."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def resolve_env(pod: dict[str, Any], container: dict[str, Any], services_env: dict[str, str],
                allocatable: dict[str, Any], lookup: Callable[[str, str], Optional[dict[str, Any]]]) -> dict[str, str]:
    """The container's environment, as the kubelet computes it (``makeEnvironmentVariables``).

    ``lookup(kind, name)`` returns the pod namespace's ConfigMap or Secret (kind ``configmaps``
    or ``secrets``), or None.
    """
    def source(kind: str, name: str, optional: bool) -> Optional[dict[str, Any]]:
        obj = lookup(kind, name)
        if obj is None and not optional:
            raise NotReady("CreateContainerConfigError", f"{kind[:-1]} {name!r} not found")
        if obj is None:
            return None
        data = dict(obj.get("data") or {})
        if kind == "secrets":
            data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        else:
            binary = obj.get("binaryData") or {}
            data.update({k: base64.b64decode(v).decode(errors="replace") for k, v in binary.items()})
        return data

    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        prefix = item.get("prefix") or ""
        ref = item.get("configMapRef") or item.get("secretRef")
        kind = "configmaps" if item.get("configMapRef") else "secrets"
        data = source(kind, ref["name"], bool(ref.get("optional")))
        for key, value in (data or {}).items():
            if _ENV_NAME.match(prefix + key):
                env[prefix + key] = value

    def mapping(name: str) -> Optional[str]:
        if name in env:
            return env[name]
        return services_env.get(name)

    for var in container.get("env") or []:
        value = var.get("value") or ""
        if value:
            value = expand(value, mapping)
        elif var.get("valueFrom"):
            ref = var["valueFrom"]
            if "fieldRef" in ref:
                value = field_value(pod, ref["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in ref:
                value = resource_value(container, ref["resourceFieldRef"], allocatable)
            elif "configMapKeyRef" in ref or "secretKeyRef" in ref:
                key_ref = ref.get("configMapKeyRef") or ref.get("secretKeyRef")
                kind = "configmaps" if "configMapKeyRef" in ref else "secrets"
                data = source(kind, key_ref["name"], bool(key_ref.get("optional")))
                if data is None:
                    continue
                if key_ref["key"] not in data:
                    if key_ref.get("optional"):
                        continue
                    raise NotReady("CreateContainerConfigError",
                                   f"couldn't find key {key_ref['key']} in {kind[:-1]} {key_ref['name']}")
                value = data[key_ref["key"]]
        env[var["name"]] = value
    for name, value in services_env.items():
        env.setdefault(name, value)
    return env


def image_name(image: str) -> str:
    """The image's name without registry, path, tag or digest: ``reg:5000/x/msjob-operator:0.1@sha256:..``
    is ``msjob-operator``."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def container_argv(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """What the container runs, as the kubelet combines it with the image: ``command`` replaces the
    image's ENTRYPOINT (and drops its CMD), ``args`` replace CMD; ``$(VAR)`` in both is expanded from
    the container's environment."""
    mapping = env.get
    entrypoint, cmd = IMAGE_ENTRYPOINTS.get(image_name(container.get("image") or ""), ([], []))
    args = [expand(a, mapping) for a in container.get("args") or []]
    if container.get("command"):
        return [expand(a, mapping) for a in container["command"]] + args
    return list(entrypoint) + (args or list(cmd))


def image_lacks(pod: dict[str, Any]) -> frozenset[str]:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(IMAGE_LACKS_ANNOTATION) or ""
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def local_command(argv: list[str], lacks: frozenset[str] = frozenset()) -> list[str]:
    """The image is this machine: any ``python``/``python3``/``pythonX.Y`` is our interpreter (unless the
    image lacks it)."""
    if argv and _PYTHON.match(os.path.basename(argv[0])) and os.path.basename(argv[0]) not in lacks:
        return [sys.executable, *argv[1:]]
    return list(argv)


def log_tail(path: Path, lines: int = TERMINATION_LOG_LINES, limit: int = TERMINATION_LOG_BYTES) -> str:
    """The kubelet's FallbackToLogsOnError message: the last lines of the log, at most ``limit`` bytes."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    text = b"\n".join(data.splitlines()[-lines:])
    if len(text) > limit:
        text = text[-limit:]
    return text.decode(errors="replace")


def pod_hostname(pod: dict[str, Any]) -> tuple[str, str]:
    """(host name, FQDN or host name) as the kubelet derives them."""
    spec, meta = pod.get("spec") or {}, pod["metadata"]
    hostname = (spec.get("hostname") or meta["name"])[:63].rstrip("-.")
    fqdn = hostname
    if spec.get("subdomain"):
        fqdn = f"{hostname}.{spec['subdomain']}.{meta['namespace']}.svc.cluster.local"
    return (fqdn if spec.get("setHostnameAsFQDN") else hostname), fqdn


# ---------------------------------------------------------------------------------------------
# The agent: one Node, its pods as processes.


def _proc_start_ticks(pid: int) -> Optional[int]:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Container:
    """One container's process (and its restarts)."""

    def __init__(self, runner: "PodRunner", spec: dict[str, Any], init: bool):
        self.runner = runner
        self.spec = spec
        self.name = spec["name"]
        self.init = init
        # A native sidecar: an init container that keeps running beside the main containers.
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.log_path = runner.dir / f"{self.name}.log"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.started_at: Optional[str] = None
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.restart_at: Optional[float] = None
        self.exit_code: Optional[int] = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def done(self) -> bool:
        """Terminated for good (no restart coming)."""
        return "terminated" in self.state and self.restart_at is None

    def start(self, env: dict[str, str], argv: list[str], lacks: frozenset[str] = frozenset()) -> int:
        """Start the container's process; returns its PID. ``lacks``: commands its image does not have."""
        r = self.runner
        if r.netns is None:
            raise ProcessNodeError(f"container {self.name}: the pod has no network namespace yet")
        start_error = r.dir / f"{self.name}.start-error"
        start_error.unlink(missing_ok=True)
        spec = {
            "parent_pid": os.getpid(), "hostname": r.hostname, "mounts": r.mounts_for(self.spec),
            "etc": {"/etc/hosts": str(r.dir / "etc-hosts"), "/etc/hostname": str(r.dir / "etc-hostname")},
            "workingDir": self.spec.get("workingDir"), "podWorkingDir": str(r.dir / "workdir"),
            "argv": argv, "env": env, "startErrorFile": str(start_error), "imageLacks": sorted(lacks),
        }
        spec_file = r.dir / f"{self.name}.exec.json"
        spec_file.write_text(json.dumps(spec))
        with open(self.log_path, "ab") as out:
            if self.restart_count:
                out.write(f"--- process node: restart {self.restart_count} ---\n".encode())
                out.flush()
            proc = subprocess.Popen(
                [r.agent.ip, "netns", "exec", r.netns, r.agent.unshare, "--uts", "--",
                 sys.executable, "-I", str(PODEXEC), str(spec_file)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.proc = proc
        self.started_at = now_text()
        self.exit_code = None
        self.state = {"running": {"startedAt": self.started_at}}
        r.record_container(self, pid=proc.pid, ticks=_proc_start_ticks(proc.pid), started=self.started_at,
                           exit_code=None, finished=None)
        return proc.pid

    def poll(self) -> bool:
        """True when the process has just exited."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        code = self.proc.poll()
        if code is None:
            return False
        # The container is gone: so is everything it started (a runtime kills the whole cgroup).
        _signal_group(self.proc.pid, signal.SIGKILL)
        code = 128 - code if code < 0 else code
        self.exit_code = code
        start_error = self.runner.dir / f"{self.name}.start-error"
        terminated = {"exitCode": code, "startedAt": self.started_at, "finishedAt": now_text(),
                      "containerID": f"process://{self.proc.pid}"}
        if start_error.exists():
            terminated.update(reason="StartError", message=start_error.read_text()[:TERMINATION_LOG_BYTES])
        else:
            terminated["reason"] = "Completed" if code == 0 else "Error"
            if code != 0 and self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                message = log_tail(self.log_path)
                if message:
                    terminated["message"] = message
        self.state = {"terminated": terminated}
        self.runner.record_container(self, exit_code=code, finished=terminated["finishedAt"])
        return True

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            _signal_group(self.proc.pid, sig)

    def status(self) -> dict[str, Any]:
        running = "running" in self.state
        return {
            "name": self.name, "image": self.spec.get("image", ""), "imageID": "",
            **({"containerID": f"process://{self.proc.pid}"} if self.proc else {}),
            "ready": running and (self.sidecar or not self.init), "started": running,
            "restartCount": self.restart_count,
            "state": self.state, "lastState": self.last_state,
        }


class PodRunner(threading.Thread):
    """Runs one pod from binding to deletion."""

    def __init__(self, agent: "Agent", pod: dict[str, Any]):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.uid = meta["uid"]
        self.namespace, self.pod_name = meta["namespace"], meta["name"]
        self.dir = agent.root / "pods" / self.namespace / self.pod_name / self.uid
        self.hostname, self.fqdn = pod_hostname(pod)
        self.netns: Optional[str] = None
        self.ip: Optional[str] = None
        self.volumes: dict[str, Path] = {}
        self.claimed: list[str] = []
        self.containers: list[Container] = []
        self.init_containers: list[Container] = []
        self.sidecars: list[Container] = []  # started native sidecars, in start order
        self.service_account_dir: Optional[Path] = None
        self.deletion_requested = threading.Event()
        self.kill_deadline: Optional[float] = None
        self.gone = threading.Event()  # the pod object no longer exists
        self.finished = False
        self.finalized = False
        self.phase = "Pending"
        self.start_time = now_text()
        self._transitions: dict[str, tuple[str, str]] = {}
        self._record: dict[str, Any] = {"namespace": self.namespace, "name": self.pod_name, "uid": self.uid,
                              "node": agent.name, "createdAt": time.time(), "containers": {}}

    # -- inputs from the agent
    def update(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and not self.deletion_requested.is_set():
            grace = meta.get("deletionGracePeriodSeconds")
            grace = 30 if grace is None else int(grace)
            self.kill_deadline = time.monotonic() + grace
            self.deletion_requested.set()
            log.info("%s/%s: deletion requested (grace %d s)", self.namespace, self.pod_name, grace)
        self.pod = pod

    def vanish(self) -> None:
        """The pod object is gone (force-deleted, or finalized): kill everything now."""
        self.gone.set()
        self.deletion_requested.set()
        self.kill_deadline = time.monotonic()

    # -- the records tests read
    def save_record(self, **fields: Any) -> None:
        self._record.update(fields)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self._record, indent=1))
        tmp.replace(self.dir / "state.json")

    def record_container(self, c: Container, **fields: Any) -> None:
        entry = self._record["containers"].setdefault(c.name, {"log": str(c.log_path), "init": c.init})
        entry.update(fields)
        entry["restartCount"] = c.restart_count
        self.save_record()

    # -- status
    def _condition(self, ctype: str, status: bool, reason: Optional[str] = None) -> dict[str, Any]:
        text = "True" if status else "False"
        old = self._transitions.get(ctype)
        if old is None or old[0] != text:
            self._transitions[ctype] = (text, now_text())
        cond = {"type": ctype, "status": text, "lastProbeTime": None, "lastTransitionTime": self._transitions[ctype][1]}
        if reason:
            cond["reason"] = reason
        return cond

    def write_status(self, phase: str, *, reason: Optional[str] = None, message: Optional[str] = None) -> None:
        if self.gone.is_set():
            return
        self.phase = phase
        terminal = phase in ("Succeeded", "Failed")
        inits_done = all(c.running if c.sidecar else (c.done and c.exit_code == 0) for c in self.init_containers)
        ready = phase == "Running" and all(c.running for c in self.containers)
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.agent.host_ip, "hostIPs": [{"ip": self.agent.host_ip}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers",
                                self.ip is not None and not (terminal and self.netns is None)),
                self._condition("Initialized", inits_done),
                self._condition("ContainersReady", ready, "PodCompleted" if terminal else None),
                self._condition("Ready", ready, "PodCompleted" if terminal else None),
            ],
            "containerStatuses": [c.status() for c in self.containers],
            "reason": reason, "message": message,
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if self.ip:
            status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        body = {"metadata": {"uid": self.uid}, "status": status}
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}/status"
        error: Optional[Exception] = None
        for attempt in range(10):
            try:
                self.agent.kube.patch(path, body)  # None: the pod is gone
                break
            except KubeError as exc:
                if 400 <= exc.status < 500:  # 409: a new pod of the same name (uid precondition)
                    log.warning("%s/%s: status not written: %s", self.namespace, self.pod_name, exc)
                    break
                error = exc
            except Exception as exc:  # noqa: BLE001 - connection trouble: try again
                error = exc
            if self.gone.wait(min(0.2 * 2 ** attempt, 3.0)):
                break
        else:
            log.warning("%s/%s: status not written: %s", self.namespace, self.pod_name, error)
        self.save_record(phase=phase)

    # -- the pod's life
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - the pod fails, the node goes on
            log.exception("%s/%s: failed to run", self.namespace, self.pod_name)
            for c in self.containers + self.init_containers:
                c.signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.write_status("Failed", reason="ProcessNodeError", message=str(exc)[:TERMINATION_LOG_BYTES])
        finally:
            self._cleanup()
            self.finished = True
            self.agent.runner_finished(self)

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "home").mkdir(exist_ok=True)
        (self.dir / "workdir").mkdir(exist_ok=True)
        spec = self.pod.get("spec") or {}
        self.init_containers = [Container(self, c, True) for c in spec.get("initContainers") or []]
        self.containers = [Container(self, c, False) for c in spec.get("containers") or []]
        self.save_record(phase="Pending")
        self.write_status("Pending")

        self.netns, self.ip = self.agent.network.add_pod()
        self.save_record(netns=self.netns, ip=self.ip, hostname=self.hostname)
        log.info("%s/%s: network namespace %s, IP %s", self.namespace, self.pod_name, self.netns, self.ip)
        self.pod.setdefault("status", {}).update(podIP=self.ip, podIPs=[{"ip": self.ip}],
                                                 hostIP=self.agent.host_ip, hostIPs=[{"ip": self.agent.host_ip}])
        self._write_etc(spec)

        # Volumes and environments: retried while something is missing, as the kubelet does.
        plans: dict[str, tuple[dict[str, Any], list[str], frozenset[str]]] = {}
        while True:
            if self.deletion_requested.is_set():
                return
            try:
                self._prepare_volumes(spec)
                self._prepare_service_account(spec)
                for c in self.init_containers + self.containers:
                    env = self._environment(c.spec)
                    lacks = image_lacks(self.pod) if c in self.containers else frozenset()
                    plans[c.name] = (env, local_command(container_argv(c.spec, env), lacks), lacks)
                break
            except NotReady as exc:
                for c in self.init_containers + self.containers:
                    c.state = {"waiting": {"reason": exc.reason, "message": str(exc)}}
                self.write_status("Pending")
                self.deletion_requested.wait(2.0)

        for c in self.init_containers + self.containers:
            if not plans[c.name][1]:
                raise ProcessNodeError(f"container {c.name} has no command, and the process node does not know the "
                                       f"entrypoint of image {c.spec.get('image')!r} "
                                       f"(it knows {sorted(IMAGE_ENTRYPOINTS)})")

        restart = spec.get("restartPolicy") or "Always"
        for c in self.init_containers:
            c.state = {"waiting": {"reason": "PodInitializing"}}
        for c in self.init_containers:
            if c.sidecar:  # started, then kept running (and restarted) beside what follows
                pid = c.start(*plans[c.name])
                self.sidecars.append(c)
                log.info("%s/%s: sidecar %s started, PID %d", self.namespace, self.pod_name, c.name, pid)
                continue
            if not self._supervise([c], plans, "OnFailure" if restart != "Never" else "Never", phase="Pending"):
                self._stop_sidecars()
                return self._finish()
        self._supervise(self.containers, plans, restart, phase="Running")
        self._stop_sidecars()
        self._finish()

    def _supervise(self, containers: list[Container], plans: dict[str, Any], restart: str, phase: str) -> bool:
        """Run ``containers`` until all are done (or the pod is deleted); True if all exited 0.

        Started sidecars are restarted meanwhile (``restartPolicy: Always``) but not waited for."""
        for c in containers:
            pid = c.start(*plans[c.name])
            log.info("%s/%s: container %s started, PID %d", self.namespace, self.pod_name, c.name, pid)
        self.write_status(phase)
        terminating = False
        while True:
            changed = False
            for c, policy in [(c, restart) for c in containers] + [(s, "Always") for s in self.sidecars]:
                if c.poll():
                    changed = True
                    log.info("%s/%s: container %s exited %d", self.namespace, self.pod_name, c.name, c.exit_code)
                    again = not terminating and (policy == "Always" or (policy == "OnFailure" and c.exit_code != 0))
                    if again:
                        c.restart_at = time.monotonic() + min(10.0, 2.0 ** c.restart_count)
                elif c.restart_at is not None and time.monotonic() >= c.restart_at and not terminating:
                    c.restart_at = None
                    c.last_state, c.restart_count = c.state, c.restart_count + 1
                    c.start(*plans[c.name])
                    changed = True
            if self.deletion_requested.is_set():
                if not terminating:
                    terminating = True
                    for c in containers + self.sidecars:
                        c.restart_at = None
                    for c in containers:  # sidecars are stopped after the main containers
                        c.signal(signal.SIGTERM)
                if time.monotonic() >= (self.kill_deadline or 0):
                    for c in containers + self.sidecars:
                        c.signal(signal.SIGKILL)
            if all(c.done for c in containers):
                return all(c.exit_code == 0 for c in containers)
            if changed:
                self.write_status(phase)
            time.sleep(0.1)

    def _stop_sidecars(self) -> None:
        """After the main containers: SIGTERM the sidecars (last started first), SIGKILL at the
        grace period's end (or the deletion's deadline, if sooner)."""
        grace = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        deadline = time.monotonic() + (30 if grace is None else int(grace))
        if self.kill_deadline is not None:
            deadline = min(deadline, self.kill_deadline)
        for c in reversed(self.sidecars):
            c.restart_at = None
            c.signal(signal.SIGTERM)
        while not all(c.done or c.proc is None for c in self.sidecars):
            for c in self.sidecars:
                c.poll()
            if time.monotonic() >= deadline:
                for c in self.sidecars:
                    c.signal(signal.SIGKILL)
            time.sleep(0.1)

    def _finish(self) -> None:
        everything = [c for c in self.init_containers if not c.sidecar] + self.containers
        if not any(c.proc for c in self.init_containers + self.containers):
            return  # deleted before anything started: nothing to report
        ok = all(c.done and c.exit_code == 0 for c in everything)  # a sidecar's exit does not count
        self.write_status("Succeeded" if ok else "Failed")

    def _cleanup(self) -> None:
        for c in self.init_containers + self.containers:
            c.signal(signal.SIGKILL)
            if c.proc is not None:
                with contextlib.suppress(Exception):
                    c.proc.wait(10)
        if self.netns:
            with contextlib.suppress(Exception):
                self.agent.network.remove_pod(self.netns)
            self.save_record(netnsRemoved=True)

    # -- what the containers see
    def _write_etc(self, spec: dict[str, Any]) -> None:
        lines = ["# Kubernetes-managed hosts file (msjob process node).", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix",
                 "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters",
                 f"{self.ip}\t{self.fqdn}\t{self.hostname}" if self.fqdn != self.hostname
                 else f"{self.ip}\t{self.hostname}"]
        for alias in spec.get("hostAliases") or []:
            lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []))
        (self.dir / "etc-hosts").write_text("\n".join(lines) + "\n")
        (self.dir / "etc-hostname").write_text(self.hostname + "\n")

    def _environment(self, container: dict[str, Any]) -> dict[str, str]:
        spec = self.pod.get("spec") or {}
        services = self.agent.services_for_env(self.namespace, spec.get("enableServiceLinks", True) is not False)
        env = {
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.dir / "home"), "HOSTNAME": self.hostname, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
        }
        if os.environ.get("PYTHONPATH"):  # part of "the image": the code the harness itself runs
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env.update(resolve_env(self.pod, container, services, self.agent.allocatable,
                               lambda kind, name: self.agent.get_object(kind, self.namespace, name)))
        return env

    def _prepare_service_account(self, spec: dict[str, Any]) -> None:
        """What the ServiceAccount admission plugin and the kubelet give a pod: a token bound to
        the pod (TokenRequest), the cluster CA and the namespace in ``SERVICE_ACCOUNT_DIR``,
        mounted in every container; unless ``automountServiceAccountToken: false`` or the pod
        mounts something there itself."""
        if self.service_account_dir is not None or spec.get("automountServiceAccountToken") is False:
            return
        containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
        mount_paths = [m["mountPath"] for c in containers for m in c.get("volumeMounts") or []]
        if any(os.path.normpath(path) == SERVICE_ACCOUNT_DIR for path in mount_paths):
            return
        named = spec.get("serviceAccountName") or spec.get("serviceAccount")
        account = named or "default"
        request: dict[str, Any] = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                   "spec": {"expirationSeconds": TOKEN_SECONDS}}
        if named:  # without the admission plugin (off here) an unnamed pod cannot be bound to "default"
            request["spec"]["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": self.pod_name,
                                                 "uid": self.uid}
        token_path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
        issued = self.agent.kube.request("POST", token_path, request)
        if issued is None:
            raise NotReady("ContainerCreating", f'serviceaccount "{account}" not found')
        files = {"token": issued["status"]["token"].encode(), "namespace": self.namespace.encode(),
                 "ca.crt": Path(self.agent.kube.ca_file).read_bytes() if self.agent.kube.ca_file else b""}
        base = self.dir / "serviceaccount"
        self._write_files(base, files, None, 0o644)
        self.service_account_dir = base

    def _prepare_volumes(self, spec: dict[str, Any]) -> None:
        for volume in spec.get("volumes") or []:
            name = volume["name"]
            if name in self.volumes:
                continue
            base = self.dir / "volumes" / name
            if "emptyDir" in volume:
                base.mkdir(parents=True, exist_ok=True)
                self.volumes[name] = base
            elif "hostPath" in volume:
                path = Path(volume["hostPath"]["path"])
                kind = volume["hostPath"].get("type") or ""
                if kind == "DirectoryOrCreate":
                    path.mkdir(parents=True, exist_ok=True)
                elif kind == "FileOrCreate" and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                elif kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice") and not path.exists():
                    raise NotReady("ContainerCreating", f"MountVolume.SetUp failed for volume {name!r}: "
                                                        f"hostPath {path} does not exist")
                self.volumes[name] = path
            elif "configMap" in volume or "secret" in volume:
                if "configMap" in volume:
                    kind, ref = "configmaps", volume["configMap"]
                else:
                    kind, ref = "secrets", volume["secret"]
                obj_name = ref.get("name") or ref.get("secretName")
                obj = self.agent.get_object(kind, self.namespace, obj_name)
                if obj is None and not ref.get("optional"):
                    raise NotReady("ContainerCreating", f"MountVolume.SetUp failed for volume {name!r}: "
                                                        f'{kind[:-1]} "{obj_name}" not found')
                files = _object_files(obj or {}, secret=kind == "secrets")
                self._write_files(base, files, ref.get("items"), ref.get("defaultMode"))
                self.volumes[name] = base
            elif "downwardAPI" in volume:
                files = {}
                for item in volume["downwardAPI"].get("items") or []:
                    if "fieldRef" in item:
                        files[item["path"]] = field_value(self.pod, item["fieldRef"]["fieldPath"]).encode()
                self._write_files(base, files, None, volume["downwardAPI"].get("defaultMode"))
                self.volumes[name] = base
            else:
                kinds = sorted(k for k in volume if k != "name")
                raise NotReady("ContainerCreating",
                               f"volume {name!r}: {', '.join(kinds)} volumes are not supported by the process node")

    @staticmethod
    def _write_files(base: Path, files: dict[str, bytes], items: Optional[list[dict[str, Any]]],
                     mode: Optional[int]) -> None:
        base.mkdir(parents=True, exist_ok=True)
        chosen = {item["path"]: (files[item["key"]], item.get("mode")) for item in items if item["key"] in files} \
            if items else {key: (data, None) for key, data in files.items()}
        for rel, (data, item_mode) in chosen.items():
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(item_mode or mode or 0o644)

    def mounts_for(self, container: dict[str, Any]) -> list[dict[str, Any]]:
        mounts: list[dict[str, Any]] = []
        for m in sorted(container.get("volumeMounts") or [], key=lambda m: len(Path(m["mountPath"]).parts)):
            source = self.volumes.get(m["name"])
            if source is None:
                raise ProcessNodeError(f"container {container['name']}: volumeMount of unknown volume {m['name']!r}")
            if m.get("subPath"):
                source = source / m["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            target = os.path.normpath(m["mountPath"])
            # A target inside another of this container's mounts is created in that volume by podexec;
            # one on the machine itself is created here (and removed when the node stops).
            if not any(Path(target).is_relative_to(x["target"]) for x in mounts):
                self.agent.claim_path(target, is_dir=source.is_dir())
            mounts.append({"source": str(source), "target": target, "readOnly": bool(m.get("readOnly"))})
        if self.service_account_dir is not None:
            if not any(Path(SERVICE_ACCOUNT_DIR).is_relative_to(x["target"]) for x in mounts):
                self.agent.claim_path(SERVICE_ACCOUNT_DIR, is_dir=True)
            mounts.append({"source": str(self.service_account_dir), "target": SERVICE_ACCOUNT_DIR, "readOnly": True})
        return mounts


def _object_files(obj: dict[str, Any], secret: bool) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        files[key] = base64.b64decode(value) if secret else value.encode()
    for key, value in (obj.get("binaryData") or {}).items():
        files[key] = base64.b64decode(value)
    return files


class Agent:
    """The node agent (kubelet + kube-proxy) run by ``python -m msjob_localcluster.processnode run``."""

    def __init__(self, kube: Kube, name: str, root: Path, prefix: str, subnet: str, capacity: dict[str, Any],
                 labels: dict[str, Any] | None = None):
        self.kube = kube
        self.name = name
        self.root = Path(root)
        self.network = PodNetwork(prefix, subnet)
        self.host_ip = self.network.gateway
        self.capacity = capacity
        self.allocatable = dict(capacity)
        self.labels = labels or {}
        self.ip = netns.which("ip") or "ip"
        self.unshare = netns.which("unshare") or "unshare"
        self.stop = threading.Event()
        self.lock = threading.RLock()
        self.rules_lock = threading.Lock()
        self.runners: dict[str, PodRunner] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}
        self.created_paths: list[str] = []
        self.informers: list[Informer] = []
        self.api_relay: Optional[Relay] = None

    # -- lifecycle
    def run(self) -> int:
        ensure_host_tools()
        self.network.setup()
        try:
            api = urllib.parse.urlsplit(self.kube.host)
            if api.hostname is None:
                raise ProcessNodeError(f"the API server's URL {self.kube.host!r} names no host")
            listener = listen_in_namespace(self.network.bridge_ns, self.network.gateway, API_RELAY_PORT)
            self.api_relay = Relay(listener, (api.hostname, api.port or 443), "api-relay").start()
            self.register()
            services = Informer(self.kube, "/api/v1/services", {}, self._services_synced, self._service_event,
                                self.stop, "services")
            slices = Informer(self.kube, "/apis/discovery.k8s.io/v1/endpointslices", {}, self._slices_synced,
                              self._slice_event, self.stop, "endpointslices")
            pods = Informer(self.kube, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={self.name}"},
                            self._pods_synced, self._pod_event, self.stop, "pods")
            self.informers = [services, slices, pods]
            services.start()
            slices.start()
            for informer in (services, slices):
                if not informer.synced.wait(60):
                    raise ProcessNodeError(f"{informer.name} did not sync")
            pods.start()
            threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
            if not pods.synced.wait(60):
                raise ProcessNodeError("the pod informer did not sync")
            ready = self.root / "ready"
            ready.write_text(json.dumps({"pid": os.getpid(), "node": self.name, "prefix": self.network.prefix}))
            log.info("node %s ready (pods on %s, bridge namespace %s)", self.name, self.network.subnet,
                     self.network.bridge_ns)
            while not self.stop.wait(1.0):
                pass
            return 0
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.stop.set()
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.vanish()
        for runner in runners:
            runner.join(15)
        if self.api_relay is not None:
            self.api_relay.close()
        left = self.network.teardown()
        if left:
            log.info("removed network namespaces %s", ", ".join(left))
        remove_created_paths(self.created_paths)
        with contextlib.suppress(Exception):
            self.kube.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
                              timeout=5)
        with contextlib.suppress(Exception):
            self.kube.request("DELETE", f"/api/v1/nodes/{self.name}", timeout=5)
        log.info("node %s stopped", self.name)

    # -- the Node
    def _conditions(self) -> list[dict[str, Any]]:
        beat = now_text()
        base = [("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID"), ("Ready", "True", "KubeletReady")]
        return [{"type": t, "status": s, "reason": r, "message": f"process node: {r}", "lastHeartbeatTime": beat,
                 "lastTransitionTime": self._started} for t, s, r in base]

    def register(self) -> None:
        self._started = now_text()
        uname = platform.uname()
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": {
                "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                NODE_LABEL: "true", **self.labels}},
            "spec": {"taints": [NODE_TAINT]},
            "status": {
                "capacity": self.capacity, "allocatable": self.allocatable, "conditions": self._conditions(),
                "addresses": [{"type": "InternalIP", "address": self.host_ip},
                              {"type": "Hostname", "address": self.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": {"machineID": secrets.token_hex(16), "systemUUID": secrets.token_hex(16),
                             "bootID": secrets.token_hex(16), "kernelVersion": uname.release,
                             "osImage": "msjob process node", "containerRuntimeVersion": "process://local",
                             "kubeletVersion": IMAGE_VERSION, "kubeProxyVersion": IMAGE_VERSION,
                             "operatingSystem": "linux", "architecture": "amd64"},
            },
        }
        try:
            self.kube.request("POST", "/api/v1/nodes", node)
        except KubeError as exc:
            if exc.status != 409:
                raise
            self.kube.patch(f"/api/v1/nodes/{self.name}", {"metadata": node["metadata"], "spec": node["spec"]},
                            "merge-patch")
            self.kube.patch(f"/api/v1/nodes/{self.name}/status", {"status": node["status"]}, "merge-patch")
        self._renew_lease()

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_time()}
        if self.kube.patch(path, {"spec": spec}, "merge-patch") is None:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "namespace": "kube-node-lease"}, "spec": spec}
            with contextlib.suppress(KubeError):
                self.kube.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)

    def _heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self._renew_lease()
                self.kube.patch(f"/api/v1/nodes/{self.name}/status", {"status": {"conditions": self._conditions()}})
            except Exception as exc:  # noqa: BLE001
                log.warning("heartbeat failed: %s", exc)

    # -- pods
    def _pods_synced(self, items: list[dict[str, Any]]) -> None:
        present = {p["metadata"]["uid"] for p in items}
        for pod in items:
            self._pod_event("ADDED", pod)
        with self.lock:
            gone = [r for uid, r in self.runners.items() if uid not in present]
        for runner in gone:
            self._pod_event("DELETED", runner.pod)

    def _pod_event(self, etype: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self.lock:
            runner = self.runners.get(uid)
            if etype == "DELETED":
                log.info("%s/%s: pod object deleted", meta["namespace"], meta["name"])
                if runner is not None:
                    runner.vanish()
                    if runner.finished:
                        self.runners.pop(uid, None)
                return
            if runner is None:
                phase = (pod.get("status") or {}).get("phase")
                if meta.get("deletionTimestamp"):
                    # Finished before we knew it (or never started): nothing to stop.
                    threading.Thread(target=self._finalize, args=(meta["namespace"], meta["name"], uid),
                                     daemon=True).start()
                    return
                if phase in ("Succeeded", "Failed") or self.stop.is_set():
                    return
                runner = self.runners[uid] = PodRunner(self, pod)
                log.info("%s/%s: bound here; starting", meta["namespace"], meta["name"])
                runner.start()
                return
            runner.update(pod)
            log.debug("%s/%s: event %s (finished %s, deletion %s, finalized %s)", meta["namespace"], meta["name"],
                      etype, runner.finished, runner.deletion_requested.is_set(), runner.finalized)
            if runner.finished and runner.deletion_requested.is_set() and not runner.finalized:
                runner.finalized = True
                threading.Thread(target=self._finalize, args=(runner.namespace, runner.pod_name, uid),
                                 daemon=True).start()

    def runner_finished(self, runner: PodRunner) -> None:
        with self.lock:
            finalize = runner.deletion_requested.is_set() and not runner.gone.is_set() and not runner.finalized
            if finalize:
                runner.finalized = True
            if runner.gone.is_set():
                self.runners.pop(runner.uid, None)
        if finalize:
            self._finalize(runner.namespace, runner.pod_name, runner.uid)

    def _finalize(self, namespace: str, name: str, uid: str) -> None:
        """Everything of the pod is gone: delete the object for good, as the kubelet does."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body)
            log.info("%s/%s: deleted", namespace, name)
        except Exception as exc:  # noqa: BLE001 - 409: already replaced by a pod of the same name
            log.warning("%s/%s: final delete failed: %s", namespace, name, exc)

    # -- objects pods refer to
    def get_object(self, kind: str, namespace: str, name: str) -> Optional[dict[str, Any]]:
        return self.kube.request("GET", f"/api/v1/namespaces/{namespace}/{kind}/{name}")

    def services_for_env(self, namespace: str, links: bool) -> dict[str, str]:
        with self.lock:
            chosen = [s for (ns, name), s in self.services.items()
                      if (links and ns == namespace) or (ns == "default" and name == "kubernetes")]
        return service_env(chosen)

    def claim_path(self, target: str, is_dir: bool) -> None:
        """Make a mountPath exist on the machine; remember what we created, to remove it at the end."""
        with self.lock:
            path = Path(target)
            if path.exists():
                return
            missing = []
            parent = path
            while not parent.exists():
                missing.append(parent)
                parent = parent.parent
            for p in reversed(missing):
                if p == path and not is_dir:
                    p.touch()
                else:
                    p.mkdir(exist_ok=True)
                self.created_paths.append(str(p))
            (self.root / "created-paths.json").write_text(json.dumps(self.created_paths))

    # -- services (kube-proxy)
    def _services_synced(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in items}
        self._sync_rules()

    def _service_event(self, etype: str, svc: dict[str, Any]) -> None:
        key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
        with self.lock:
            if etype == "DELETED":
                self.services.pop(key, None)
            else:
                self.services[key] = svc
        self._sync_rules()

    def _slices_synced(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.slices = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in items}
        self._sync_rules()

    def _slice_event(self, etype: str, eps: dict[str, Any]) -> None:
        key = (eps["metadata"]["namespace"], eps["metadata"]["name"])
        with self.lock:
            if etype == "DELETED":
                self.slices.pop(key, None)
            else:
                self.slices[key] = eps
        self._sync_rules()

    def _sync_rules(self) -> None:
        with self.rules_lock:  # compute and apply in one go: an older view never wins
            with self.lock:
                rules = service_rules(list(self.services.values()), list(self.slices.values()),
                                      api_server=(self.network.gateway, API_RELAY_PORT))
            try:
                self.network.set_rules(rules)
            except NetworkError as exc:
                log.warning("service rules not applied: %s", exc)


def service_rules(services: list[dict[str, Any]], slices: list[dict[str, Any]],
                  api_server: tuple[str, int] | None = None) -> list[ServiceRule]:
    """kube-proxy's view: ClusterIP:port → the first ready endpoint (by address) of the Service.

    ``api_server``: where the ``default/kubernetes`` Service goes (the agent's relay; the local
    API server runs without an endpoint reconciler, so that Service has no endpoints)."""
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for eps in slices:
        owner = (eps["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if owner and eps.get("addressType", "IPv4") == "IPv4":
            by_service.setdefault((eps["metadata"]["namespace"], owner), []).append(eps)
    rules = []
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or ":" in ip:
            continue
        key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
        for port in spec.get("ports") or []:
            protocol = (port.get("protocol") or "TCP").lower()
            if protocol not in ("tcp", "udp"):
                continue
            target = api_server if key == ("default", "kubernetes") and protocol == "tcp" else None
            for eps in [] if target else by_service.get(key, []):
                number = next((p.get("port") for p in eps.get("ports") or []
                               if (p.get("name") or "") == (port.get("name") or "")), None)
                if number is None:
                    continue
                for endpoint in eps.get("endpoints") or []:
                    if (endpoint.get("conditions") or {}).get("ready") is False:
                        continue
                    for address in endpoint.get("addresses") or []:
                        if target is None or address < target[0]:
                            target = (address, number)
            rules.append(ServiceRule(ip, int(port["port"]), protocol, target[0] if target else None,
                                     int(target[1]) if target else int(port["port"])))
    return rules


def remove_created_paths(paths: list[str]) -> None:
    """Remove mountpoints the node created, deepest first, when empty and mounted nowhere."""
    mounted = _mount_points()
    for path in sorted(set(paths), key=lambda p: len(Path(p).parts), reverse=True):
        # mountinfo has resolved paths (/var/run/... is /run/... there); an rmdir of a path that is a
        # mount point in another namespace detaches that mount there: another node's running pods.
        if path in mounted or os.path.realpath(path) in mounted:
            continue
        with contextlib.suppress(OSError):
            p = Path(path)
            if p.is_dir() and not p.is_symlink():
                p.rmdir()  # only if empty
            elif p.is_file() and p.stat().st_size == 0:
                p.unlink()


def _mount_points() -> set[str]:
    """Mount points of every mount namespace on the machine (other pods may still use a path)."""
    points: set[str] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{entry}/mountinfo").read_text().splitlines():
                    fields = line.split()
                    if len(fields) > 4:
                        points.add(fields[4].encode().decode("unicode_escape"))
    return points


# ---------------------------------------------------------------------------------------------
# The handle tests and tools use.


class ProcessNodeUnavailable(ProcessNodeError):
    """This machine cannot run a process node (not root, no network namespaces)."""


STATE_FILE = "node.json"  # in the node's root: what another process needs to stop a detached node


def _is_agent(pid: int) -> bool:
    """Is ``pid`` (still) a process node agent? (PIDs get reused.)"""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in "ZX" and "msjob_localcluster.processnode" in argv and "run" in argv


class ProcessNode:
    """A process node agent running as a subprocess; see the module docstring.

    ``detached``: the agent outlives this Python process (``local up --process-node``); its PID and
    namespace prefix go to ``<root>/node.json``, from which ``ProcessNode.attach(root).stop()``
    stops it from another process. Otherwise it dies with the process that started it.
    """

    def __init__(self, kubeconfig: Path | str, name: str = "process-node-0", root_dir: Path | str | None = None, *,
                 prefix: str | None = None, subnet: str = netns.DEFAULT_SUBNET, capacity: dict[str, Any] | None = None,
                 labels: dict[str, Any] | None = None, detached: bool = False):
        self.kubeconfig = Path(kubeconfig)
        self.detached = detached
        self._attached_pid: Optional[int] = None
        self.name = name
        self._own_root = root_dir is None
        self._root = Path(root_dir) if root_dir is not None else None
        self.prefix = prefix or f"{netns.PREFIX_BASE}-{secrets.token_hex(3)}"
        self.subnet = subnet
        self.capacity = {**DEFAULT_CAPACITY, **(capacity or {})}
        self.labels = labels or {}
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.start_seconds: Optional[float] = None

    @property
    def root(self) -> Path:
        """The node's directory (start() makes a temporary one when none was given)."""
        if self._root is None:
            raise ProcessNodeError("the process node has no directory before start()")
        return self._root

    @property
    def log_path(self) -> Path:
        return self.root / "agent.log"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else self._attached_pid

    @classmethod
    def attach(cls, root: Path | str) -> "ProcessNode":
        """The detached node whose state is in ``root`` (started by another process)."""
        state = json.loads((Path(root) / STATE_FILE).read_text())
        node = cls(state["kubeconfig"], state["name"], root, prefix=state["prefix"], subnet=state["subnet"],
                   detached=True)
        node._own_root = False
        node._attached_pid = state["pid"]
        return node

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self._attached_pid is not None and _is_agent(self._attached_pid)

    def start(self, timeout: float = 120) -> "ProcessNode":
        t0 = time.monotonic()
        ensure_host_tools()
        problem = netns.can_create_namespaces()
        if problem:
            raise ProcessNodeUnavailable(problem)
        if self._root is None:
            import tempfile
            self._root = Path(tempfile.mkdtemp(prefix=f"msjob-{self.name}-"))
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "ready").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "msjob_localcluster.processnode", "run",
               "--kubeconfig", str(self.kubeconfig), "--name", self.name, "--root", str(self.root),
               "--prefix", self.prefix, "--subnet", self.subnet, "--capacity", json.dumps(self.capacity),
               "--labels", json.dumps(self.labels)]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=None if self.detached else _die_with_parent,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
        if self.detached:
            (self.root / STATE_FILE).write_text(json.dumps({
                "pid": self.proc.pid, "name": self.name, "prefix": self.prefix, "subnet": self.subnet,
                "kubeconfig": str(self.kubeconfig)}))
        deadline = time.monotonic() + timeout
        while not (self.root / "ready").exists():
            if self.proc.poll() is not None:
                raise ProcessNodeError(f"the process node exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessNodeError(f"the process node was not ready within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 60) -> list[str]:
        """Stop the agent (it kills its pods and removes its namespaces); returns namespaces it left behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        elif self.proc is None and self._attached_pid is not None and self.running():
            pid = self._attached_pid  # detached, started by another process: stopped by its PID
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _is_agent(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _is_agent(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        left = netns.list_namespaces(self.prefix + "-")
        if left:  # the agent died without cleaning up: do it here
            for proc_pid in self._pod_pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc_pid, signal.SIGKILL)
            netns.delete_namespaces(self.prefix + "-")
        if self._root is not None:
            with contextlib.suppress(OSError, ValueError):
                remove_created_paths(json.loads((self.root / "created-paths.json").read_text()))
            with contextlib.suppress(Exception):
                Kube(self.kubeconfig).request("DELETE", f"/api/v1/nodes/{self.name}", timeout=5)
            (self.root / STATE_FILE).unlink(missing_ok=True)
        return left

    def cleanup(self) -> None:
        """stop(), then remove the root directory if this object made it."""
        self.stop()
        if self._own_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> "ProcessNode":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def namespaces(self) -> list[str]:
        """This node's network namespaces that exist now."""
        return netns.list_namespaces(self.prefix + "-")

    # -- what ran
    def records(self, namespace: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Every pod this node ran (oldest first): uid, netns, ip, phase, containers {pid, log, exit_code, ...}."""
        found: list[dict[str, Any]] = []
        if self._root is None:
            return found
        for state in (self.root / "pods").glob(f"{namespace or '*'}/{name or '*'}/*/state.json"):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(state.read_text()))
        return sorted(found, key=lambda r: r.get("createdAt", 0))

    def record(self, namespace: str, name: str, uid: str | None = None) -> Optional[dict[str, Any]]:
        """The newest run of pod ``name`` (or the one with ``uid``)."""
        runs = [r for r in self.records(namespace, name) if uid is None or r["uid"] == uid]
        return runs[-1] if runs else None

    def log(self, namespace: str, name: str, container: str | None = None, uid: str | None = None) -> str:
        """The container log of the newest run of pod ``name`` (first container by default)."""
        rec = self.record(namespace, name, uid)
        if rec is None or not rec["containers"]:
            return ""
        entries = rec["containers"]
        entry = entries[container] if container else next((e for e in entries.values() if not e.get("init")), None)
        if entry is None:
            return ""
        try:
            return Path(entry["log"]).read_text(errors="replace")
        except OSError:
            return ""

    def kill(self, namespace: str, name: str, sig: int = signal.SIGKILL, container: str | None = None) -> int:
        """Send ``sig`` to the running container process of pod ``name`` (as a crash would); returns the PID."""
        rec = self.record(namespace, name)
        if rec is None:
            raise ProcessNodeError(f"pod {namespace}/{name} has not run here")
        entries = rec["containers"]
        cname = container or next(n for n, e in entries.items() if not e.get("init"))
        entry = entries[cname]
        pid = entry.get("pid")
        if pid is None or entry.get("exit_code") is not None or _proc_start_ticks(pid) != entry.get("ticks"):
            raise ProcessNodeError(f"container {cname} of {namespace}/{name} is not running")
        os.kill(pid, sig)
        return int(pid)

    def _pod_pids(self) -> list[int]:
        pids = []
        for rec in self.records():
            for entry in rec["containers"].values():
                pid = entry.get("pid")
                if pid and entry.get("exit_code") is None and _proc_start_ticks(pid) == entry.get("ticks"):
                    pids.append(pid)
        return pids


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msjob_localcluster.processnode",
                                     description="Run a process node (pods as local processes) for a cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the node agent in the foreground")
    run.add_argument("--kubeconfig", required=True)
    run.add_argument("--name", default="process-node-0")
    run.add_argument("--root", required=True, help="directory for pod logs, volumes and records")
    run.add_argument("--prefix", default=None, help="network namespace prefix (msjpn-...)")
    run.add_argument("--subnet", default=netns.DEFAULT_SUBNET)
    run.add_argument("--capacity", default=json.dumps(DEFAULT_CAPACITY), help="JSON map of the node's capacity")
    run.add_argument("--labels", default="{}", help="JSON map of extra node labels")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s: %(message)s")
    agent = Agent(Kube(args.kubeconfig), args.name, Path(args.root),
                  args.prefix or f"{netns.PREFIX_BASE}-{secrets.token_hex(3)}", args.subnet,
                  json.loads(args.capacity), json.loads(args.labels))

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        agent.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
