"""The in-place restart agent against the real API server, in a fresh venv on the standard library
alone, authenticated as its pod would be (a bound ServiceAccount token from the TokenRequest API)
with a Role that allows only its own pod and its member's Lease (get, patch) and the gang ConfigMap
(get, list, watch), all by resourceNames.  The test plays the operator: it writes the ConfigMap's epoch, released
and final.  The agent supervises tests/agent_child.py, a real process.

The agent reaches the API server through a TCP relay of the test's own, so that a test can take
the server away (the relay closes: connections are cut and refused) while the agent runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from kubernetes.client import CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api

from msjob_runtime import kubeapi
from msjob_runtime.agent_protocol import (
    AGENT_SCRIPT,
    EXITED,
    RUNNING,
    STOPPED,
    WAITING,
    agent_report,
    gang_configmap_name,
    gang_data,
    lease_path,
    member_lease_name,
    parse_event_line,
    read_member_report,
    report_patch,
)

from ..helpers import member_report, wait_for
from .test_reporter import bare_python, fake_pod

JOB, OWN, OTHER = "demo", "demo-worker-0", "demo-worker-1"
GANG = gang_configmap_name(JOB)
OWN_LEASE, OTHER_LEASE = member_lease_name(OWN), member_lease_name(OTHER)
ACCOUNT = "demo-agent"
CHILD = Path(__file__).parents[1] / "agent_child.py"


class Relay:
    """127.0.0.1:<port> -> the API server, byte for byte (TLS passes through); ``close()`` cuts
    every connection and refuses new ones."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class AgentRun:
    """The agent in the bare venv, its console in a file."""

    def __init__(self, env: "AgentEnv", plan: str, *, unreachable: float = 60, grace: float = 2,
                 as_module: bool = False, pod_uid: bool = True):
        self.env, self.log = env, env.tmp / f"agent-{plan.replace(',', '_').replace('=', '')}.log"
        command = ["-m", "msjob_runtime.agent"] if as_module else [str(env.runtime / AGENT_SCRIPT)]
        flags = ["--job", JOB, "--server", f"https://127.0.0.1:{env.relay.port}", "--token-file", str(env.token),
                 "--ca-file", str(env.ca), "--grace-seconds", str(grace), "--unreachable-seconds", str(unreachable),
                 "--watch-seconds", "5"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [env.python, "-s", *command, *flags, "--", env.python, "-s", str(CHILD), plan, str(env.control)],
                env={**env.bare_env, "POD_NAME": OWN, "POD_NAMESPACE": env.namespace,
                     # without POD_UID the agent reads its pod's UID from the pod
                     **({"POD_UID": env.pods[OWN].metadata.uid} if pod_uid else {})},
                cwd=env.tmp, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self) -> list:
        return [e for e in map(parse_event_line, self.output().splitlines()) if e is not None]

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the agent did not exit:\n{self.output()}") from None


class AgentEnv:
    """One namespace set up as the operator would for worker 0 of job ``demo``."""

    def __init__(self, cluster, kube, namespace: str, tmp: Path, python: str, runtime: Path):
        self.core, self.namespace, self.tmp = CoreV1Api(kube), namespace, tmp
        self.python, self.runtime = python, runtime
        self.bare_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(runtime), "PYTHONUNBUFFERED": "1"}
        self.control = tmp / "control"
        self.control.mkdir()
        rbac = RbacAuthorizationV1Api(kube)
        self.core.create_namespaced_service_account(namespace, {"metadata": {"name": ACCOUNT}})
        rbac.create_namespaced_role(namespace, {"metadata": {"name": ACCOUNT}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": [OWN]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
             "resourceNames": [GANG]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
             "resourceNames": [OWN_LEASE]}]})
        rbac.create_namespaced_role_binding(namespace, {"metadata": {"name": ACCOUNT}, "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}]})
        self.pods = {}
        for name in (OWN, OTHER):
            body = fake_pod(name)
            body["spec"]["serviceAccountName"] = ACCOUNT
            self.pods[name] = self.core.create_namespaced_pod(namespace, body)
        self.leases = CoordinationV1Api(kube)
        for name in (OWN_LEASE, OTHER_LEASE):  # as the operator creates them, before the pods run
            self.leases.create_namespaced_lease(namespace, {"metadata": {"name": name}, "spec": {}})
        self.core.create_namespaced_config_map(namespace, {"metadata": {"name": GANG}, "data": gang_data(0, 0)})
        self.core.create_namespaced_config_map(namespace, {"metadata": {"name": "other"}, "data": {}})
        request = {"spec": {"expirationSeconds": 3600, "boundObjectRef": {
            "apiVersion": "v1", "kind": "Pod", "name": OWN, "uid": self.pods[OWN].metadata.uid}}}
        self.token = tmp / "token"
        self.token.write_text(self.core.create_namespaced_service_account_token(ACCOUNT, namespace,
                                                                                request).status.token)
        self.ca = tmp / "ca.crt"
        self.ca.write_text(wait_for(lambda: self.core.read_namespaced_config_map("kube-root-ca.crt", namespace)
                                    .data["ca.crt"], timeout=60, message="the namespace's kube-root-ca.crt"))
        self.server = kubeapi.load_config(str(cluster.kubeconfig)).server
        host, port = self.server.split("//")[1].rsplit(":", 1)
        self.relay = Relay(host, int(port))

    def set_gang(self, epoch: int, released: int, final: bool = False) -> None:
        self.core.replace_namespaced_config_map(GANG, self.namespace, {
            "metadata": {"name": GANG}, "data": gang_data(epoch, released, final)})

    def report(self) -> dict | None:
        """The agent's report, as the operator reads it: on the member's Lease, held by this pod."""
        return member_report(self.core, self.pods[OWN])

    def wait_report(self, run: AgentRun, epoch: int, state: str, timeout: float = 60) -> dict:
        return wait_for(lambda: (r := self.report()) and r["epoch"] == epoch and r["state"] == state and r,
                        timeout=timeout, message=f"the report {state} of epoch {epoch}", describe=run.output)


class ReportRecorder:
    """Every agent report of the pod, in order, from a watch of its Lease (as the operator would see them)."""

    def __init__(self, cluster, namespace: str, uid: str):
        self.reports: list[dict] = []
        self.client = kubeapi.Client(kubeapi.load_config(str(cluster.kubeconfig)))
        self.path, self.uid = lease_path(namespace), uid
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        version = None
        while not self.stop:
            try:
                for event in self.client.watch(self.path, resource_version=version, timeout_seconds=5,
                                               query={"fieldSelector": f"metadata.name={OWN_LEASE}"}):
                    version = event["object"]["metadata"]["resourceVersion"]
                    report = read_member_report(event["object"], self.uid)
                    if report is not None and (not self.reports or self.reports[-1] != report):
                        self.reports.append(report)
            except kubeapi.KubeError:
                version = None

    def states(self) -> list[tuple]:
        return [(r["epoch"], r["state"], r["exitCode"]) for r in self.reports]


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    return bare_python(tmp_path_factory.mktemp("agent-venv"))


@pytest.fixture
def agent_env(cluster, kube, namespace, tmp_path, bare):
    env = AgentEnv(cluster, kube, namespace, tmp_path, *bare)
    runs: list[AgentRun] = []

    def start(plan: str, **kwargs) -> AgentRun:
        run = AgentRun(env, plan, **kwargs)
        runs.append(run)
        return run

    env.start = start
    yield env
    env.relay.close()
    for run in runs:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGKILL)
            run.proc.wait()


def assert_no_overlap(events) -> None:
    assert [e.event for e in events] == ["start", "exit"] * (len(events) // 2), events
    for start, end in zip(events[::2], events[1::2], strict=False):
        assert (start.epoch, start.pid) == (end.epoch, end.pid) and start.at <= end.at
    for end, nxt in zip(events[1::2], events[2::2], strict=False):
        assert end.epoch < nxt.epoch and end.at <= nxt.at, (end, nxt)


@pytest.mark.cluster
def test_the_role_allows_exactly_what_the_agent_needs(agent_env):
    env = agent_env
    client = kubeapi.Client(kubeapi.Config(env.server, token_file=str(env.token), ca_file=str(env.ca)))
    cms, pods = f"/api/v1/namespaces/{env.namespace}/configmaps", f"/api/v1/namespaces/{env.namespace}/pods"
    own = {"fieldSelector": f"metadata.name={GANG}"}
    wait_for(lambda: client.get(cms, query=own), timeout=30, message="the Role in effect")  # RBAC lags
    assert [i["metadata"]["name"] for i in client.get(cms, query=own)["items"]] == [GANG]
    assert client.get(f"{cms}/{GANG}")["data"] == gang_data(0, 0)
    assert client.get(f"{pods}/{OWN}")["metadata"]["name"] == OWN
    leases = lease_path(env.namespace)
    assert client.get(f"{leases}/{OWN_LEASE}")["metadata"]["name"] == OWN_LEASE
    client.request("PATCH", f"{leases}/{OWN_LEASE}", report_patch(agent_report(0, WAITING), "uid-0"),
                   content_type=kubeapi.MERGE_PATCH)
    for method, path, query, body in (
            ("GET", cms, None, None),  # a list without the name
            ("GET", cms, {"fieldSelector": "metadata.name=other"}, None),
            ("GET", f"{cms}/other", None, None),
            ("PATCH", f"{cms}/{GANG}", None, {"data": {"epoch": "9"}}),  # the operator's alone
            ("PATCH", f"{pods}/{OTHER}", None, {"metadata": {"labels": {"x": "y"}}}),
            ("GET", pods, None, None),
            ("GET", f"{leases}/{OTHER_LEASE}", None, None),  # another member's Lease
            ("PATCH", f"{leases}/{OTHER_LEASE}", None, {"spec": {"holderIdentity": "x"}}),
            ("GET", leases, None, None),
            ("POST", leases, None, {"metadata": {"name": "new"}, "spec": {}}),  # the operator's alone
            ("DELETE", f"{leases}/{OWN_LEASE}", None, None)):
        with pytest.raises(kubeapi.ApiError) as e:
            client.request(method, path, body, query=query, content_type=kubeapi.MERGE_PATCH)
        assert e.value.status == 403, (method, path, query)
    client.close()


@pytest.mark.cluster
def test_epochs_barrier_and_stop_on_the_real_api_server(cluster, agent_env):
    env = agent_env
    recorder = ReportRecorder(cluster, env.namespace, env.pods[OWN].metadata.uid)
    run = env.start("exit=3,stubborn,exit=0")  # as a plain script from the installed copy
    # Epoch 0 fails: Exited with its code and its last output; the agent waits for the decision.
    r = env.wait_report(run, 0, EXITED)
    assert r["exitCode"] == 3 and "child: exiting with 3" in r["output"] and len(r["output"].encode()) <= 2048
    assert run.proc.poll() is None

    # Restart in place: epoch 1, but not released yet. The agent acknowledges and starts nothing.
    env.set_gang(1, 0)
    env.wait_report(run, 1, WAITING)
    assert [(e.epoch, e.event) for e in run.events()] == [(0, "start"), (0, "exit")]
    env.set_gang(1, 1)
    running = env.wait_report(run, 1, RUNNING)
    wait_for(lambda: "child: helper=" in run.output(), message="epoch 1's child and its helper", describe=run.output)
    helper = int(next(x for x in run.output().splitlines() if x.startswith("child: helper=")).split("=")[1])

    # Epoch 2 while epoch 1 runs a process that ignores SIGTERM: SIGKILL after the grace, then the ack.
    env.set_gang(2, 1)
    env.wait_report(run, 2, WAITING)
    assert "got SIGTERM, ignoring it" in run.output()
    assert not os.path.exists(f"/proc/{running['pid']}") and not os.path.exists(f"/proc/{helper}")
    assert [(e.epoch, e.event, e.code) for e in run.events()][2:] == [(1, "start", None), (1, "exit", 137)]
    env.set_gang(2, 2)
    assert run.wait() == 0, run.output()
    assert env.report()["state"] == EXITED and env.report()["exitCode"] == 0

    events = run.events()
    assert [(e.epoch, e.event) for e in events][-2:] == [(2, "start"), (2, "exit")]
    assert_no_overlap(events)
    wait_for(lambda: recorder.states()[-1:] == [(2, EXITED, 0)], message="the last report watched")
    recorder.stop = True
    states = recorder.states()
    # Each restart is one report (Waiting for the next epoch is the acknowledgement), never a Stopped one.
    assert (2, WAITING, None) in states and all(s[1] != STOPPED for s in states), states
    assert [s for s in states if s[1] == RUNNING] == [(0, RUNNING, None), (1, RUNNING, None), (2, RUNNING, None)]
    assert "Traceback" not in run.output(), run.output()


@pytest.mark.cluster
def test_final_exits_with_the_failure(agent_env):
    env = agent_env
    run = env.start("exit=4", as_module=True, pod_uid=False)  # the agent reads its pod's UID
    env.wait_report(run, 0, EXITED)
    env.set_gang(0, 0, final=True)
    assert run.wait() == 4, run.output()


@pytest.mark.cluster
def test_sigterm_is_forwarded(agent_env):
    env = agent_env
    run = env.start("hang", as_module=True)
    env.wait_report(run, 0, RUNNING)
    wait_for(lambda: "child: helper=" in run.output(), message="the child", describe=run.output)
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 143, run.output()
    assert "child: got SIGTERM" in run.output()
    r = env.report()
    assert (r["epoch"], r["state"], r["exitCode"]) == (0, EXITED, 143)
    assert [(e.event, e.code) for e in run.events()] == [("start", None), ("exit", 143)]


@pytest.mark.cluster
def test_api_server_unreachable(agent_env):
    """Unreachable past the bound: the running process runs on; once it has failed with no
    decision readable, the agent exits with its code."""
    env = agent_env
    run = env.start("wait", unreachable=2)
    env.wait_report(run, 0, RUNNING)
    env.relay.close()
    wait_for(lambda: "the process runs on" in run.output(), message="the outage past the bound", describe=run.output)
    assert run.proc.poll() is None and [e.event for e in run.events()] == ["start"]
    (env.control / "exit-0").write_text("3")
    assert run.wait() == 3, run.output()
    assert "no decision could be read" in run.output()
    assert [(e.event, e.code) for e in run.events()] == [("start", None), ("exit", 3)]
    assert env.report()["state"] == RUNNING  # the Exited report never got through


@pytest.mark.cluster
def test_a_report_of_an_earlier_pod_of_the_member_is_not_the_agents_own(agent_env):
    """The member's Lease outlives its pods: a report held by an earlier pod (another UID) says nothing of
    this one, so the agent starts epoch 0 (a report held by its own pod would be a restarted agent's:
    epoch 0 would count as ended, Exited(137), and never start again here)."""
    env = agent_env
    env.leases.patch_namespaced_lease(OWN_LEASE, env.namespace, report_patch(
        agent_report(0, RUNNING, pid=7), "uid-of-an-earlier-pod"))
    assert env.report() is None  # not this pod's
    run = env.start("hang")
    r = env.wait_report(run, 0, RUNNING)
    assert r["pid"] != 7 and [e.event for e in run.events()] == ["start"], run.output()
    assert env.leases.read_namespaced_lease(OWN_LEASE, env.namespace).spec.holder_identity == \
        env.pods[OWN].metadata.uid
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 143, run.output()
