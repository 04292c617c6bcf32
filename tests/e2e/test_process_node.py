"""The process node runs pods as a kubelet would (no MindSpore, no operator: plain pods)."""

from __future__ import annotations

import time

from kubernetes.client import RbacAuthorizationV1Api

from msjob_localcluster.processnode import NODE_SELECTOR, TOLERATION, expand

from ..helpers import wait_for

SERVER = """
import http.server, os, socket
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {socket.gethostname()} at {os.environ['MY_IP']}".encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
print("serving on", os.environ["MY_IP"], flush=True)
http.server.HTTPServer((os.environ["MY_IP"], 8080), Hello).serve_forever()
"""

CLIENT = """
import os, socket, sys, time, urllib.request
print("hostname", socket.gethostname(), flush=True)
print("argv", sys.argv[1:], flush=True)
print("cwd", os.getcwd(), sorted(os.listdir(".")), flush=True)
print("hosts", open("/etc/hosts").read().splitlines()[-1], flush=True)
url = f"http://{os.environ['WEB_SERVICE_HOST']}:{os.environ['WEB_SERVICE_PORT']}/"
for attempt in range(int(os.environ.get("TRIES", "100"))):
    try:
        print("answer:", urllib.request.urlopen(url, timeout=3).read().decode(), flush=True)
        break
    except Exception as exc:
        print("error:", exc, flush=True)
        if os.environ.get("UNTIL_REFUSED") and "refused" in str(exc):
            break
        time.sleep(0.3)
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def pod(name: str, command: list[str], env: list | None = None, labels: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never", "tolerations": [TOLERATION], "nodeSelector": dict(NODE_SELECTOR),
            "terminationGracePeriodSeconds": 3,
            "volumes": [{"name": "code", "configMap": {"name": "code"}}],
            "containers": [{
                "name": "main", "image": "python:3", "command": command, "env": env or [],
                "workingDir": "/code", "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "code", "mountPath": "/code"}],
            }],
            **spec,
        },
    }


def phase_of(core, ns: str, name: str, phases=("Succeeded", "Failed"), timeout: float = 30):
    return wait_for(lambda: (p := core.read_namespaced_pod(name, ns)).status.phase in phases and p,
                    timeout=timeout, message=f"pod {name} in {phases}",
                    describe=lambda: core.read_namespaced_pod(name, ns).status)


def gone(core, ns: str, name: str, timeout: float = 30) -> None:
    def check():
        return not [p for p in core.list_namespaced_pod(ns).items if p.metadata.name == name]
    wait_for(check, timeout=timeout, message=f"pod {name} deleted")


def test_expansion_follows_kubernetes_rules():
    env = {"A": "a", "B": "b"}.get
    assert expand("$(A)-$(B)", env) == "a-b"
    assert expand("$$(A)", env) == "$(A)"  # escaped
    assert expand("$(MISSING)", env) == "$(MISSING)"  # unknown: kept as written
    assert expand("$$$(A)", env) == "$a"
    assert expand("cost $5 $(A", env) == "cost $5 $(A"


def test_pods_are_processes_with_their_own_ip_hostname_env_and_services(process_node, core, namespace):
    ns = namespace
    core.create_namespaced_config_map(ns, {"metadata": {"name": "code"},
                                           "data": {"server.py": SERVER, "client.py": CLIENT}})
    core.create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    my_ip = {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    core.create_namespaced_pod(ns, pod("web", ["python", "server.py"], labels={"app": "web"}, env=[my_ip]))
    client_env = [{"name": "A", "value": "a-$(EXIT)"}, {"name": "EXIT", "value": "3"},
                  {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    core.create_namespaced_pod(ns, pod("client", ["python", "client.py", "$(A)", "$(POD)", "$$(A)", "$(NOPE)"],
                                       env=client_env))

    client = phase_of(core, ns, "client")
    web = core.read_namespaced_pod("web", ns)
    assert web.status.phase == "Running" and web.status.container_statuses[0].state.running.started_at
    assert [c.status for c in web.status.conditions if c.type == "Ready"] == ["True"]
    assert client.status.phase == "Failed"
    terminated = client.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    # FallbackToLogsOnError: the last log lines are the termination message.
    assert f"answer: hello from web at {web.status.pod_ip}" in terminated.message
    assert client.status.pod_ip != web.status.pod_ip and client.status.host_ip == web.status.host_ip

    log = process_node.log(ns, "client")
    assert "hostname client\n" in log
    # $(VAR) uses variables defined before (EXIT comes after A), $$ escapes, unknown stays.
    assert "argv ['a-$(EXIT)', 'client', '$(A)', '$(NOPE)']" in log
    assert "cwd /code ['client.py', 'server.py']" in log  # workingDir and the configMap volume
    assert f"hosts {client.status.pod_ip}\tclient" in log

    records = {r["name"]: r for r in process_node.records(ns)}
    assert records["client"]["netns"] != records["web"]["netns"]
    assert records["client"]["netnsRemoved"]  # a finished pod's sandbox goes at once
    assert records["client"]["netns"] not in process_node.namespaces()
    assert records["web"]["netns"] in process_node.namespaces()

    # Deleting a pod: SIGTERM, its namespace goes, the object is deleted by the node.
    core.delete_namespaced_pod("web", ns)
    gone(core, ns, "web")
    web_run = process_node.record(ns, "web")
    assert web_run["containers"]["main"]["exit_code"] == 143
    assert web_run["netns"] not in process_node.namespaces()

    # Without ready endpoints the ClusterIP refuses connections at once (as kube-proxy does).
    core.create_namespaced_pod(ns, pod("refused", ["python", "client.py"],
                                       env=[{"name": "UNTIL_REFUSED", "value": "1"}]))
    refused = phase_of(core, ns, "refused")
    assert refused.status.phase == "Succeeded"
    assert "Connection refused" in process_node.log(ns, "refused")


def test_grace_period_then_sigkill_and_start_errors(process_node, core, namespace):
    ns = namespace
    core.create_namespaced_config_map(ns, {"metadata": {"name": "code"}, "data": {
        "stubborn.py": "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                       "print('up', flush=True)\ntime.sleep(600)\n"}})
    core.create_namespaced_pod(ns, pod("stubborn", ["python", "stubborn.py"], terminationGracePeriodSeconds=2))
    core.create_namespaced_pod(ns, pod("typo", ["no-such-command", "--flag"]))

    typo = phase_of(core, ns, "typo")
    terminated = typo.status.container_statuses[0].state.terminated
    assert (typo.status.phase, terminated.reason, terminated.exit_code) == ("Failed", "StartError", 128)
    assert "no-such-command" in terminated.message

    wait_for(lambda: "up" in process_node.log(ns, "stubborn"), timeout=30, message="stubborn pod running")
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", ns)
    gone(core, ns, "stubborn")
    assert time.monotonic() - started >= 2  # the grace period was given (a lower bound, not a speed)
    assert process_node.record(ns, "stubborn")["containers"]["main"]["exit_code"] == 137  # then SIGKILL


SIDECAR = """
import signal, sys, time
print("sidecar up", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (print("sidecar got SIGTERM", flush=True), sys.exit(7)))
while True:
    time.sleep(0.2)
"""

IN_CLUSTER = """
import os, sys
from kubernetes import client, config
sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
if not os.path.exists(sa_dir + "/token"):
    print("no token mounted", flush=True)
    sys.exit(0)
config.load_incluster_config()
me = client.CoreV1Api().read_namespaced_pod(os.environ["POD_NAME"], open(sa_dir + "/namespace").read())
print("read my pod as", me.spec.service_account_name, "via", os.environ["KUBERNETES_SERVICE_HOST"], flush=True)
try:
    client.CoreV1Api().list_namespaced_secret(me.metadata.namespace)
    print("secrets readable", flush=True)
except client.ApiException as exc:
    print("secrets denied", exc.status, flush=True)
"""


def test_native_sidecar_and_in_cluster_api_access(process_node, core, kube, namespace):
    """A native sidecar runs beside the main container and stops after it; the pod's
    ServiceAccount token reaches the API server through the ``kubernetes`` Service, with exactly
    the rights RBAC gives that account."""
    ns = namespace
    rbac = RbacAuthorizationV1Api(kube)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "code"},
                                           "data": {"sidecar.py": SIDECAR, "api.py": IN_CLUSTER}})
    core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(ns, {"metadata": {"name": "read-pods"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding(ns, {"metadata": {"name": "reader"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})
    pod_name = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    with_sidecar = pod("api", ["python", "api.py"], env=pod_name, serviceAccountName="reader")
    with_sidecar["spec"]["initContainers"] = [{
        "name": "helper", "image": "python:3", "command": ["python", "/code/sidecar.py"], "restartPolicy": "Always",
        "volumeMounts": [{"name": "code", "mountPath": "/code"}]}]
    core.create_namespaced_pod(ns, with_sidecar)
    core.create_namespaced_pod(ns, pod("no-token", ["python", "api.py"], env=pod_name,
                                       automountServiceAccountToken=False))

    done = phase_of(core, ns, "api", timeout=60)
    assert done.status.phase == "Succeeded", process_node.log(ns, "api")
    log = process_node.log(ns, "api")
    assert "read my pod as reader via 10.0.0.1" in log, log
    assert "secrets denied 403" in log, log
    # The sidecar ran beside the main container and was stopped after it; its exit code (7, on
    # SIGTERM) does not fail the pod.
    sidecar_log = process_node.log(ns, "api", container="helper")
    assert "sidecar up" in sidecar_log and "sidecar got SIGTERM" in sidecar_log, sidecar_log
    record = process_node.record(ns, "api")["containers"]
    assert record["helper"]["exit_code"] == 7 and record["main"]["exit_code"] == 0, record
    helper = done.status.init_container_statuses[0]
    assert helper.name == "helper" and helper.state.terminated.exit_code == 7

    plain = phase_of(core, ns, "no-token", timeout=60)
    assert plain.status.phase == "Succeeded" and "no token mounted" in process_node.log(ns, "no-token")

