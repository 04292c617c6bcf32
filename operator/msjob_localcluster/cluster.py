"""A real Kubernetes control plane on 127.0.0.1, with kwok's fake nodes.

etcd, kube-apiserver (RBAC, CEL, admission), kube-controller-manager (garbage
collection, namespaces), kube-scheduler and kwok run as plain processes; with
``volcano=True`` also Volcano's scheduler, with ``kueue=True`` Kueue's manager
(kueue.py); ``workload_api=True`` turns on Kubernetes' own gang scheduling (the
``scheduling.k8s.io/v1beta1`` Workload and PodGroup API behind the GenericWorkload
gate).  Nodes are fake: kwok plays the kubelet for the nodes annotated ``kwok.x-k8s.io/node: fake`` and drives the
pods bound to them through the stages in ``stages/`` (see ``stages/pod.yaml``
for the annotations a test pod can carry).  Fake nodes carry no taint: YAML
written for a real cluster runs on them unchanged (test-only behaviours are opt-in
annotations). Nodes whose pods really run (the process node) carry their own taint.

Everything a cluster owns lives in its root directory: ``kubeconfig``,
``state.json`` (PIDs, ports, commands: another process can stop it),
``logs/<component>.log``, ``pki/`` and ``etcd/``.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from . import binaries
from . import kueue as kueue_support
from . import volcano as volcano_support
from .certs import make_certs

STAGES_DIR = Path(__file__).parent / "stages"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
POOL_LABEL = "kwok.msjob.test/pool"  # each fake node is labelled with the prefix it was added with
DEFAULT_CAPACITY = {
    "cpu": "32", "memory": "256Gi", "pods": "110",
    "huawei.com/Ascend910": "8", "nvidia.com/gpu": "8",
}
# Start order matters: CRDs go in before the controller-manager, whose garbage
# collector only rediscovers resource types every ~30 s.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "vc-scheduler")
GRACE_SECONDS = 10.0
NODE_LEASE_SECONDS = 40  # as a kubelet's default
# Kubernetes' gang scheduling: the gate in apiserver (API), scheduler (its GangScheduling plugin joins
# the default plugins) and controller-manager (it removes the PodGroups' protection finalizer).
WORKLOAD_API_GATES = ("--feature-gates", "GenericWorkload=true")
WORKLOAD_API_VERSION = "scheduling.k8s.io/v1beta1"

T = TypeVar("T")


class ClusterError(RuntimeError):
    pass


def default_root(name: str = "default") -> Path:
    return binaries.cache_dir() / "clusters" / name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    """Does any thread of ``pid`` still run? (Not a child of ours, so no waitpid: when a
    dead process's parent never reaps it, it stays a zombie; and a zombie leader's other
    threads, which may still hold its sockets, can outlive it for a moment.)"""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            if Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()[0] not in "ZX":
                return True
        except OSError:
            pass
    return False


def _die_with_parent() -> None:
    """In the child before exec: die with the process that started it, even if that was
    SIGKILLed. (SIGKILL: without etcd, a SIGTERMed kube-apiserver hangs in its shutdown.)"""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalCluster:
    def __init__(self, root: Path | None = None, *, name: str = "default", nodes: int = 4,
                 volcano: bool = False, node_capacity: dict[str, str] | None = None,
                 crds: list[dict[str, Any]] | None = None, kueue: bool = False, workload_api: bool = False):
        self.name = name
        self._root = Path(root) if root is not None else None
        self._own_root = root is None  # a temp dir we made, removed by stop()
        self.initial_nodes = nodes
        self.volcano = volcano
        self.kueue = kueue
        self.workload_api = workload_api
        self.node_capacity = {**DEFAULT_CAPACITY, **(node_capacity or {})}
        self.crds = crds
        self.detached = False
        self.ports: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self.cmds: dict[str, list[str]] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # only those this object started
        self._kubectl_bin: str | None = None
        self._external: tuple[Path, str] | None = None  # (kubeconfig, server) of a cluster run elsewhere
        self.start_seconds: float | None = None

    # ----- paths and state
    @property
    def root(self) -> Path:
        """The cluster's directory (start() makes a temporary one when none was given)."""
        if self._root is None:
            raise ClusterError("the cluster has no directory before start()")
        return self._root

    @property
    def kubeconfig(self) -> Path:
        return self._external[0] if self._external else self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return self._external[1] if self._external else f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    @property
    def external(self) -> bool:
        """Connected to by kubeconfig only: no processes of ours to stop or restart."""
        return self._external is not None

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def log(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"

    def _save_state(self) -> None:
        state = {"name": self.name, "volcano": self.volcano, "kueue": self.kueue,
                 "workload_api": self.workload_api, "own_root": self._own_root,
                 "detached": self.detached, "ports": self.ports, "pids": self.pids, "cmds": self.cmds}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_file)

    @classmethod
    def attach(cls, root: Path) -> "LocalCluster":
        """The cluster whose state file is in ``root`` (started by this or another process)."""
        state = json.loads((Path(root) / "state.json").read_text())
        self = cls(Path(root), name=state["name"], volcano=state["volcano"], kueue=state.get("kueue", False),
                   workload_api=state.get("workload_api", False))
        self._own_root = state["own_root"]
        self.detached = state["detached"]
        self.ports, self.pids, self.cmds = state["ports"], state["pids"], state["cmds"]
        return self

    @classmethod
    def connect(cls, kubeconfig: Path) -> "LocalCluster":
        """A running cluster known by its kubeconfig: attached if a LocalCluster wrote it
        (``local up``), else usable only through the API (kubectl, add_nodes if it runs kwok)."""
        kubeconfig = Path(kubeconfig)
        if (kubeconfig.parent / "state.json").exists() and kubeconfig.name == "kubeconfig":
            return cls.attach(kubeconfig.parent)
        config = yaml.safe_load(kubeconfig.read_text())
        current = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        server = next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == current["cluster"])
        self = cls(name="external", nodes=0)
        self._root = Path(tempfile.mkdtemp(prefix="msjob-external-"))  # kubectl's cache; stop() removes it
        self._external = (kubeconfig, server)
        return self

    def running(self) -> dict[str, bool]:
        return {name: self._ours(name) for name in self.pids}

    def _ours(self, name: str) -> bool:
        """Is the recorded PID still the process we started? (PIDs get reused.)"""
        pid, proc = self.pids.get(name), self._procs.get(name)
        if proc is not None:  # our child: its PID cannot be reused before we reap it
            return proc.poll() is None
        if pid is None or not _alive(pid):
            return False
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            return False
        return argv0 in (self.cmds[name][0], "")  # empty while the kernel is still exec'ing it

    # ----- lifecycle
    def start(self, *, detached: bool = False) -> "LocalCluster":
        """Start every component and wait until the cluster is usable.

        ``detached``: the processes outlive this Python process (``local up``);
        otherwise they are killed when it dies, so a crashed test run leaks nothing.
        """
        t0 = time.monotonic()
        self.detached = detached
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix=f"msjob-cluster-{self.name}-"))
        self.root.mkdir(parents=True, exist_ok=True)
        if self.state_file.exists() and any(LocalCluster.attach(self.root).running().values()):
            raise ClusterError(f"a cluster is already running in {self.root}: stop it first")
        for stale in ("etcd", "logs", "run", "state.json"):  # every start is a fresh cluster
            p = self.root / stale
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        (self.root / "logs").mkdir()
        (self.root / "run").mkdir()

        crds = self.crds
        if crds is None:
            from msjob_operator.api.crd import build_crds  # written alongside; imported late
            crds = build_crds()
        names = [c for c in COMPONENTS if c != "vc-scheduler" or self.volcano] + ["kubectl"] + ["kueue"] * self.kueue
        bins = {k: str(v) for k, v in binaries.ensure(*names).items()}
        self._kubectl_bin = bins["kubectl"]
        pki = make_certs(self.root / "pki")
        self.ports = {"etcd": _free_port(), "kube-apiserver": _free_port()}
        if self.volcano:
            self.ports |= {"vc-scheduler": _free_port(), "vc-scheduler-healthz": _free_port()}
        if self.kueue:
            self.ports |= {p: _free_port() for p in kueue_support.PORTS}
        gates = list(WORKLOAD_API_GATES) if self.workload_api else []
        self._write_kubeconfig(pki)
        run, kc = self.root / "run", str(self.kubeconfig)
        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        try:
            self._launch("etcd", [
                bins["etcd"], "--name", "local", "--data-dir", str(self.root / "etcd"),
                "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                "--listen-peer-urls", "http://127.0.0.1:0", "--unsafe-no-fsync", "--log-level", "warn",
            ])
            self._wait("etcd", self._etcd_healthy, 30)
            self._launch("kube-apiserver", [
                bins["kube-apiserver"], "--etcd-servers", etcd_url,
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                "--secure-port", str(self.ports["kube-apiserver"]), "--cert-dir", str(run),
                "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
                "--client-ca-file", str(pki / "ca.crt"),
                "--service-account-issuer", "https://kubernetes.default.svc",
                "--service-account-key-file", str(pki / "sa.pub"),
                "--service-account-signing-key-file", str(pki / "sa.key"),
                # A /16: every MSJob takes a ClusterIP (its scheduler Service); the benchmark holds 1000 jobs.
                "--service-cluster-ip-range", "10.0.0.0/16", "--authorization-mode", "RBAC",
                # No controller fills in ServiceAccount tokens for fake pods; no need to require them.
                "--disable-admission-plugins", "ServiceAccount", "--allow-privileged=true",
                # From 1.37 the endpoint reconciler refuses a loopback advertise address.
                "--endpoint-reconciler-type", "none",
                *gates, *(["--runtime-config", f"{WORKLOAD_API_VERSION}=true"] if self.workload_api else []),
            ])
            self._wait("kube-apiserver", self._apiserver_ready, 60)
            self.install_crds((volcano_support.crds() if self.volcano else [])
                              + (kueue_support.crds(self.ports["kueue-webhook"], (pki / "ca.crt").read_bytes())
                                 if self.kueue else []) + list(crds))
            self._launch("kube-controller-manager", [
                bins["kube-controller-manager"], "--kubeconfig", kc, "--leader-elect=false",
                "--secure-port", "0", "--controllers", "*", "--use-service-account-credentials=false",
                "--service-account-private-key-file", str(pki / "sa.key"), "--root-ca-file", str(pki / "ca.crt"),
                "--cluster-signing-cert-file", str(pki / "ca.crt"), "--cluster-signing-key-file", str(pki / "ca.key"),
                *gates,
            ])
            sched_conf = run / "kube-scheduler.yaml"
            sched_conf.write_text(yaml.safe_dump({
                "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": kc}, "leaderElection": {"leaderElect": False},
            }))
            self._launch("kube-scheduler", [bins["kube-scheduler"], "--config", str(sched_conf), "--secure-port", "0",
                                            *gates])
            self._launch("kwok", [
                bins["kwok"], "--kubeconfig", kc,
                *[a for f in sorted(STAGES_DIR.glob("*.yaml")) for a in ("-c", str(f))],
                # Only fake nodes: a node whose pods really run must be left alone.
                "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", "=".join(KWOK_ANNOTATION),
                "--cidr", "10.244.0.0/16", "--node-ip", "10.254.0.1",
                # Without a lease duration kwok keeps no node Leases: the controller-manager then
                # judges the nodes by their status heartbeat alone, finds them stale after its grace
                # period (~50 s), and marks every pod on them NotReady (kwok re-readies the node,
                # not the pods). A kubelet renews its Lease every quarter of this.
                "--node-lease-duration-seconds", str(NODE_LEASE_SECONDS),
            ])
            # Deleted pods on fake nodes go away, as a kubelet would end them: by UID (see podreaper).
            self._launch("pod-reaper", [sys.executable, "-m", "msjob_localcluster.podreaper", "--kubeconfig", kc])
            if self.volcano:
                vc_conf = run / "volcano-scheduler.conf"
                vc_conf.write_text(volcano_support.SCHEDULER_CONF)
                self._launch("vc-scheduler", [
                    bins["vc-scheduler"], "--kubeconfig", kc, "--scheduler-conf", str(vc_conf),
                    "--leader-elect=false", "--listen-address", f"127.0.0.1:{self.ports['vc-scheduler']}",
                    "--enable-healthz", "--healthz-address", f"127.0.0.1:{self.ports['vc-scheduler-healthz']}",
                    "--cache-dump-dir", str(run),
                ])
            if self.kueue:
                config = kueue_support.prepare(run / "kueue", pki, self.ports)
                self._launch("kueue", kueue_support.command(bins["kueue"], config, kc))
            self._wait_ready()
        except BaseException:
            self._terminate_all()  # keeps the root, whose logs tell what went wrong
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self) -> None:
        # The controller-manager publishes the root CA to every namespace once its controllers run.
        self._wait("kube-controller-manager", lambda: self.kubectl(
            "get", "configmap", "kube-root-ca.crt", "-n", "default", check=False).returncode == 0, 60)
        if self.initial_nodes:
            self.add_nodes(self.initial_nodes)
            self._probe_pod()
        if self.volcano:
            self._wait("vc-scheduler", lambda: self._http_ok(
                f"http://127.0.0.1:{self.ports['vc-scheduler-healthz']}/healthz"), 60)
            self._open_volcano_queues()
        if self.kueue:
            kueue_support.register_webhooks(self)

    def _probe_pod(self) -> None:
        """One pod through scheduler and kwok: proves both work before anyone relies on them."""
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "localcluster-probe", "namespace": "kube-system"},
               "spec": {"containers": [{"name": "probe", "image": "probe"}],
                        "nodeSelector": {"type": "kwok"}}}
        self.kubectl("create", "-f", "-", input=json.dumps(pod))
        self._wait("kube-scheduler", lambda: self.kubectl(
            "get", "pod", "-n", "kube-system", "localcluster-probe", "-o", "jsonpath={.status.phase}",
        ).stdout == "Running", 60, watch=("kube-scheduler", "kwok"))
        self.kubectl("delete", "pod", "-n", "kube-system", "localcluster-probe", "--wait=false")

    def _open_volcano_queues(self) -> None:
        # vc-scheduler creates the queues `default` and `root`, but only Volcano's
        # controller-manager (not run here) would open them; until then it schedules nothing.
        def queues() -> list[str] | None:
            out = self.kubectl("get", "queues.scheduling.volcano.sh", "-o", "name", check=False).stdout.split()
            return out if "queue.scheduling.volcano.sh/default" in out else None
        for q in self._wait("vc-scheduler", queues, 60):
            self.kubectl("patch", q, "--subresource", "status", "--type", "merge",
                         "-p", '{"status":{"state":"Open"}}')

    def stop(self) -> None:
        """SIGTERM every process we started, SIGKILL after a grace; drop a temp root."""
        self._terminate_all()
        if self._root is not None and self._own_root:
            shutil.rmtree(self._root, ignore_errors=True)

    def _terminate_all(self) -> None:
        # Clients first: etcd takes ~7 s to close while the apiserver still holds watches, <0.1 s after.
        names = list(reversed(self.pids))
        for wave in ([n for n in names if n != "etcd"], [n for n in names if n == "etcd"]):
            self._kill([n for n in wave if self._ours(n)], signal.SIGTERM)
        self.pids.clear()
        self._procs.clear()
        if self._root is not None:
            self.state_file.unlink(missing_ok=True)

    def _kill(self, names: list[str], sig: int, grace: float = GRACE_SECONDS) -> None:
        """Send ``sig``, wait for the processes to go, SIGKILL those still there after ``grace``."""
        for name in names:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pids[name], sig)
        deadline = time.monotonic() + grace
        for name in names:
            if not self._reap(name, deadline - time.monotonic()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pids[name], signal.SIGKILL)
                self._reap(name, 5)

    def _reap(self, name: str, timeout: float) -> bool:
        """Wait until the process is gone; True if it went."""
        proc, deadline = self._procs.get(name), time.monotonic() + max(timeout, 0)
        while time.monotonic() < deadline:
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.1)
                    return True
            elif not _alive(self.pids[name]):
                return True
            else:
                time.sleep(0.1)
        return False

    def __enter__(self) -> "LocalCluster":
        return self.start() if not self.pids else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- processes
    def _launch(self, name: str, cmd: list[str]) -> None:
        with open(self.log(name), "ab") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # no terminal signals; stop() decides when it ends
                preexec_fn=None if self.detached or sys.platform != "linux" else _die_with_parent,
            )
        self._procs[name], self.pids[name], self.cmds[name] = proc, proc.pid, cmd
        self._save_state()

    def _wait(self, what: str, predicate: Callable[[], T | None], timeout: float, *, watch: tuple[str, ...] = (),
              describe: Callable[[], str] | None = None) -> T:
        """Poll ``predicate`` until truthy and return its value. Fail early if a watched
        component (default: ``what`` itself) dies; errors show the tail of its log."""
        watch = tuple(n for n in (watch or (what,)) if n in self.pids)
        deadline = time.monotonic() + timeout
        while True:
            for name in watch:
                if not self._ours(name):
                    raise ClusterError(f"{name} exited; last lines of {self.log(name)}:\n{_tail(self.log(name))}")
            with contextlib.suppress(Exception):
                if result := predicate():
                    return result
            if time.monotonic() > deadline:
                msg = f"{what}: not ready after {timeout:.0f} s"
                with contextlib.suppress(Exception):
                    msg += f" ({describe()})" if describe else ""
                for name in watch:
                    msg += f"\nlast lines of {self.log(name)}:\n{_tail(self.log(name))}"
                raise ClusterError(msg)
            time.sleep(0.2)

    def _restart(self, name: str, sig: int, grace: float) -> None:
        if name not in self.cmds:
            raise ClusterError(f"{name} is not part of this cluster")
        if self._ours(name):
            self._kill([name], sig, grace)
        self._launch(name, self.cmds[name])

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port and etcd data; wait until ready.

        SIGTERM, then SIGKILL after 2 s: with clients watching, its graceful
        shutdown otherwise hangs for 10 s and more.
        """
        self._restart("kube-apiserver", signal.SIGTERM, 2)
        self._wait("kube-apiserver", self._apiserver_ready, 60)

    def restart_etcd(self) -> None:
        """Kill and start etcd on the same port and data; wait until the apiserver is ready again.

        SIGKILL, as a crash: a graceful stop takes ~7 s while the apiserver holds watches,
        and nothing is lost (--unsafe-no-fsync data is in the page cache, not in the process).
        """
        self._restart("etcd", signal.SIGKILL, GRACE_SECONDS)
        self._wait("etcd", self._etcd_healthy, 30)
        self._wait("kube-apiserver", self._apiserver_ready, 60)

    # ----- health
    def _etcd_healthy(self) -> bool:
        return self._http_ok(f"http://127.0.0.1:{self.ports['etcd']}/health")  # 503 unless healthy

    def _apiserver_ready(self) -> bool:
        pki = self.root / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return self._http_ok(f"{self.server}/readyz", urllib.request.HTTPSHandler(context=ctx))

    @staticmethod
    def _http_ok(url: str, *handlers: urllib.request.BaseHandler) -> bool:
        # No proxy: a proxy from the environment must not see (or break) calls to 127.0.0.1.
        with urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers).open(url, timeout=2) as r:
            status: int = r.status
            return status == 200

    def _write_kubeconfig(self, pki: Path) -> None:
        def b64(name: str) -> str:
            return base64.b64encode((pki / name).read_bytes()).decode()
        ctx = f"msjob-{self.name}"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": ctx,
            "clusters": [{"name": ctx, "cluster": {"server": self.server,
                                                   "certificate-authority-data": b64("ca.crt")}}],
            "users": [{"name": ctx, "user": {"client-certificate-data": b64("admin.crt"),
                                             "client-key-data": b64("admin.key")}}],
            "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}],
        }))
        self.kubeconfig.chmod(0o600)

    # ----- API helpers (all through kubectl, so they also work from `local` CLI processes)
    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl (the version built with the cluster) against this cluster."""
        if self._kubectl_bin is None:
            self._kubectl_bin = str(binaries.ensure("kubectl")["kubectl"])
        cache = self.root / "run" / "kubectl"  # not ~/.kube/cache
        proc = subprocess.run(
            [self._kubectl_bin, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(cache), *args],
            input=input, capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def install_crds(self, crds: list[dict[str, Any]], timeout: float = 60) -> None:
        """Apply CRDs server-side (big schemas exceed client-side apply's annotation limit); wait Established."""
        if not crds:
            return
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "msjob-localcluster",
                     "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": crds}))
        self._wait_condition("crd", [c["metadata"]["name"] for c in crds], "Established", timeout,
                             watch=("kube-apiserver",))

    def _wait_condition(self, kind: str, names: list[str], condition: str, timeout: float,
                        watch: tuple[str, ...]) -> None:
        # Polled: `kubectl wait --for condition=...` errors out on an object with no conditions yet.
        def pending() -> list[str]:
            got = json.loads(self.kubectl("get", kind, *names, "-o", "json").stdout)
            items = got["items"] if "items" in got else [got]  # one name: the object itself
            true = {i["metadata"]["name"] for i in items
                    if any(c["type"] == condition and c["status"] == "True"
                           for c in i.get("status", {}).get("conditions") or [])}
            return [n for n in names if n not in true]
        self._wait(f"{kind} {condition}", lambda: not pending(), timeout, watch=watch,
                   describe=lambda: f"still not {condition}: {pending()}")

    def add_nodes(self, count: int, prefix: str = "kwok-node", capacity: dict[str, str] | None = None, *,
                  labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
                  timeout: float = 60) -> list[str]:
        """Create ``count`` fake nodes named ``prefix-N`` and wait until they are Ready.

        Each carries the label ``kwok.msjob.test/pool: <prefix>`` (to pin pods to a
        group of nodes) plus ``labels``, and ``taints`` (none by default).
        """
        existing = set(self.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout.split())
        names: list[str] = []
        i = 0
        while len(names) < count:
            if f"{prefix}-{i}" not in existing:
                names.append(f"{prefix}-{i}")
            i += 1
        cap = {**self.node_capacity, **(capacity or {})}
        nodes = [{
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": n, "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]},
                "labels": {"type": "kwok", "kubernetes.io/hostname": n, "kubernetes.io/os": "linux",
                           "kubernetes.io/arch": "amd64", POOL_LABEL: prefix, **(labels or {})},
            },
            "spec": {"taints": list(taints or [])},
            "status": {"capacity": cap, "allocatable": cap},  # kept on create: nodes register with status
        } for n in names]
        if names:
            self.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
            self._wait_condition("node", names, "Ready", timeout, watch=("kwok",))
        return names

    def delete_node(self, name: str) -> None:
        self.kubectl("delete", "node", name, "--wait=false")
