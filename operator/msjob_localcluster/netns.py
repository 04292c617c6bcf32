"""Pod networking for the process node: network namespaces, a bridge, and kube-proxy style DNAT.

Everything lives in network namespaces this module creates, all named ``<prefix>-...`` with a
prefix unique to one process node (``msjpn-<random>``); the machine's own network set-up (the
root namespace: its addresses, routes, firewall rules and sysctls) is never touched:

* ``<prefix>-br`` holds a bridge ``br0`` with the subnet's first address (the pods' gateway).
* each pod gets ``<prefix>-<n>``: loopback up, ``eth0`` (one end of a veth pair whose other end,
  ``v<n>``, is created directly inside the bridge namespace and enslaved to ``br0``), an address
  from the subnet, a default route through the bridge.
* Services: in every pod namespace an nftables table ``ip msjob_svc`` DNATs connections to a
  Service's ClusterIP:port to a ready endpoint (chain on hook ``output``: the connection tracking
  of the client's own namespace rewrites replies, so nothing is needed between the pods), and
  rejects them with a TCP reset while the Service has no ready endpoint (as kube-proxy does), so
  clients retry at once instead of waiting for a SYN timeout.

Pods reach each other directly on any port through the bridge.  Nothing in a pod namespace
reaches the machine's own network (there is no route out of the bridge namespace), except the API
server: the node agent listens on the gateway address inside the bridge namespace and relays those
connections to the API server from its own namespace (``listen_in_namespace`` + ``Relay``); the
``kubernetes`` Service's ClusterIP is DNAT'd there, so in-cluster clients work as in a real pod.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("msjob_operator.processnode")

NETNS_DIR = Path("/run/netns")
DEFAULT_SUBNET = "10.244.77.0/24"
PREFIX_BASE = "msjpn"
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
# command -> Debian package that provides it
HOST_TOOLS = {"ip": "iproute2", "nft": "nftables", "unshare": "util-linux"}
_APT_LOCK = Path("/tmp/msjob-operator-apt.lock")


class NetworkError(RuntimeError):
    pass


def which(tool: str) -> str | None:
    return shutil.which(tool, path=f"{os.environ.get('PATH', '')}:{SBIN_PATH}")


def ensure_host_tools() -> None:
    """Install ``ip``, ``nft`` and ``unshare`` with apt-get when they are missing and we are root.

    CI machines start clean: the process node needs iproute2 and nftables (Debian packages).
    """
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise NetworkError(f"the process node needs {', '.join(missing)} (not installed) and root to install them")
    apt = which("apt-get")
    if apt is None:
        raise NetworkError(f"the process node needs {', '.join(missing)}; install them (no apt-get here)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with open(_APT_LOCK, "w") as lock:  # several test sessions may start at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if which(tool) is None})
        if not missing:
            return
        log.info("installing %s with apt-get", " ".join(missing))
        for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "--no-install-recommends", *missing]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise NetworkError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    still = [tool for tool in HOST_TOOLS if which(tool) is None]
    if still:
        raise NetworkError(f"still missing after apt-get install: {', '.join(still)}")


def can_create_namespaces() -> str | None:
    """None if this process can create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "the process node needs root (network namespaces, bind mounts)"
    if which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


def _run(*cmd: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def list_namespaces(prefix: str) -> list[str]:
    """Network namespaces whose name starts with ``prefix`` (e.g. one node's, or all ``msjpn-``)."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def delete_namespace(name: str) -> None:
    if not name.startswith(PREFIX_BASE):
        raise ValueError(f"refusing to delete network namespace {name!r}: not one of ours")
    _run(which("ip") or "ip", "netns", "delete", name, check=False)


def delete_namespaces(prefix: str) -> list[str]:
    """Delete every namespace named ``prefix...`` (one node's prefix); returns their names."""
    if not prefix.startswith(PREFIX_BASE + "-"):
        raise ValueError(f"refusing to delete namespaces by prefix {prefix!r}")
    names = list_namespaces(prefix)
    for name in names:
        delete_namespace(name)
    return names


@dataclasses.dataclass(frozen=True)
class ServiceRule:
    """Traffic to cluster_ip:port goes to endpoint:target_port (endpoint None: reject)."""

    cluster_ip: str
    port: int
    protocol: str  # tcp or udp
    endpoint: str | None
    target_port: int


def render_rules(rules: list[ServiceRule]) -> str:
    """An nft script that atomically replaces the table ``ip msjob_svc``."""
    nat, reject = [], []
    for r in sorted(rules, key=lambda r: (r.cluster_ip, r.port, r.protocol)):
        match = f"ip daddr {r.cluster_ip} {r.protocol} dport {r.port}"
        if r.endpoint:
            nat.append(f"    {match} dnat to {r.endpoint}:{r.target_port}")
        elif r.protocol == "tcp":
            reject.append(f"    {match} reject with tcp reset")
        else:
            reject.append(f"    {match} reject")
    return "\n".join([
        "table ip msjob_svc",
        "delete table ip msjob_svc",
        "table ip msjob_svc {",
        "  chain services {",
        "    type nat hook output priority -100; policy accept;",
        *nat,
        "  }",
        "  chain no_endpoints {",
        "    type filter hook output priority 0; policy accept;",
        *reject,
        "  }",
        "}",
        "",
    ])


class PodNetwork:
    """The bridge namespace and one namespace per pod, named ``<prefix>-...``."""

    def __init__(self, prefix: str, subnet: str = DEFAULT_SUBNET):
        if not prefix.startswith(PREFIX_BASE + "-"):
            raise ValueError(f"the namespace prefix must start with {PREFIX_BASE}-")
        self.prefix = prefix
        self.subnet = ipaddress.ip_network(subnet)
        if self.subnet.num_addresses < 8:
            raise ValueError("the pod subnet is too small")
        self.gateway = str(self.subnet.network_address + 1)
        self.bridge_ns = f"{prefix}-br"
        self._ip = which("ip") or "ip"
        self._nft = which("nft") or "nft"
        self._lock = threading.RLock()
        self._next = 0  # pod namespace counter (names and veths)
        self._last_host = 1  # addresses go round-robin, so a released one is not reused soon
        self._pods: dict[str, str] = {}  # namespace -> IP
        self._wired: set[str] = set()  # pod namespaces ready for rule updates
        self._rules = render_rules([])

    # -- lifecycle
    def setup(self) -> None:
        ip, br = self._ip, self.bridge_ns
        if br in list_namespaces(br):
            raise NetworkError(f"network namespace {br} exists already: "
                               f"is another node using the prefix {self.prefix}?")
        _run(ip, "netns", "add", br)
        try:
            _run(ip, "-n", br, "link", "set", "lo", "up")
            _run(ip, "-n", br, "link", "add", "br0", "type", "bridge")
            _run(ip, "-n", br, "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", "br0")
            _run(ip, "-n", br, "link", "set", "br0", "up")
        except BaseException:
            delete_namespace(br)
            raise

    def teardown(self) -> list[str]:
        with self._lock:
            self._pods.clear()
            self._wired.clear()
        return delete_namespaces(self.prefix + "-")

    # -- pods
    def _allocate_ip(self) -> str:
        hosts = self.subnet.num_addresses - 2  # without network and broadcast
        used = set(self._pods.values())
        for step in range(1, hosts + 1):
            candidate = (self._last_host - 2 + step) % (hosts - 1) + 2  # 2..hosts (1 is the gateway)
            address = str(self.subnet.network_address + candidate)
            if address not in used:
                self._last_host = candidate
                return address
        raise NetworkError(f"no free address left in {self.subnet}")

    def add_pod(self) -> tuple[str, str]:
        """Create a pod namespace wired to the bridge; returns (namespace, IP)."""
        ip = self._ip
        with self._lock:
            self._next += 1
            number = self._next
            address = self._allocate_ip()
            name = f"{self.prefix}-{number}"
            self._pods[name] = address
        veth = f"v{number}"
        try:
            _run(ip, "netns", "add", name)
            _run(ip, "-n", name, "link", "set", "lo", "up")
            _run(ip, "-n", self.bridge_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
            _run(ip, "-n", self.bridge_ns, "link", "set", veth, "master", "br0", "up")
            _run(ip, "-n", name, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
            _run(ip, "-n", name, "link", "set", "eth0", "up")
            _run(ip, "-n", name, "route", "add", "default", "via", self.gateway)
            with self._lock:  # from here on, rule updates reach this namespace too
                self._apply(name, self._rules)
                self._wired.add(name)
        except BaseException:
            self.remove_pod(name)
            raise
        return name, address

    def remove_pod(self, name: str) -> None:
        """Delete a pod's namespace (its veth pair goes with it) and release its address."""
        with self._lock:
            self._wired.discard(name)
        if name in list_namespaces(name):
            delete_namespace(name)
        with self._lock:
            self._pods.pop(name, None)

    # -- services
    def set_rules(self, rules: list[ServiceRule]) -> None:
        """Make every pod namespace (now and later) route Service traffic per ``rules``."""
        text = render_rules(rules)
        with self._lock:
            if text == self._rules:
                return
            self._rules = text
            for name in sorted(self._wired):
                with contextlib.suppress(NetworkError):  # a pod going away meanwhile
                    self._apply(name, text)

    def _apply(self, namespace: str, text: str) -> None:
        _run(self._ip, "netns", "exec", namespace, self._nft, "-f", "-", input=text)

    @property
    def rules_text(self) -> str:
        return self._rules


# -- the API server, seen from the pods

_CLONE_NEWNET = 0x40000000


def listen_in_namespace(namespace: str, address: str, port: int) -> socket.socket:
    """A TCP socket listening on ``address:port`` inside the network namespace ``namespace``.

    A socket belongs to the namespace it was created in, whatever thread later uses it: a
    short-lived thread enters the namespace (setns affects only the calling thread), creates and
    binds the socket, and ends; the rest of this process stays in its own namespace.
    """
    result: dict[str, Any] = {}

    def create() -> None:
        try:
            with open(NETNS_DIR / namespace) as target:
                if ctypes.CDLL(None, use_errno=True).setns(target.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
            result["socket"] = sock
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=create, name=f"listen-{namespace}")
    thread.start()
    thread.join()
    if "error" in result:
        raise NetworkError(f"cannot listen on {address}:{port} in {namespace}: {result['error']}")
    sock: socket.socket = result["socket"]
    return sock


class Relay:
    """Forwards TCP connections accepted on ``listener`` (any namespace) to ``upstream`` (host, port)
    dialled from this process's own namespace: how pods reach the API server on the machine's
    loopback without any change to the machine's network."""

    def __init__(self, listener: socket.socket, upstream: tuple[str, int], name: str = "relay"):
        self.listener = listener
        self.upstream = upstream
        self.name = name
        self._closed = threading.Event()

    def start(self) -> "Relay":
        threading.Thread(target=self._accept, name=self.name, daemon=True).start()
        return self

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self.listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError as exc:
                log.warning("%s: cannot reach %s:%d: %s", self.name, *self.upstream, exc)
                client.close()
                continue
            threading.Thread(target=self._connection, args=(client, server), name=f"{self.name}-conn",
                             daemon=True).start()

    def _connection(self, client: socket.socket, server: socket.socket) -> None:
        back = threading.Thread(target=self._pump, args=(server, client), name=f"{self.name}-pump", daemon=True)
        back.start()
        self._pump(client, server)
        back.join()
        client.close()
        server.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:  # half-close: the other direction may still be sending
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
