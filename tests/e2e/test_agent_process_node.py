"""The in-place restart agent as a pod's command on the process node: its own ServiceAccount token
(in-cluster credentials, through the ``kubernetes`` Service), a Role limited by resourceNames,
epoch changes and the barrier written by the test (playing the operator), and the node's own
signal handling when the pod is deleted.  The runtime comes from the harness's PYTHONPATH (the
node passes it to pods as part of "the image")."""

from __future__ import annotations

from pathlib import Path

from kubernetes.client import CoordinationV1Api, RbacAuthorizationV1Api

import msjob_runtime
from msjob_localcluster.processnode import NODE_SELECTOR, TOLERATION
from msjob_runtime.agent_protocol import (
    EXITED,
    RUNNING,
    WAITING,
    gang_configmap_name,
    gang_data,
    member_lease_name,
    parse_event_line,
)

from ..helpers import member_report, wait_for
from .test_process_node import gone, phase_of

JOB = "demo"
GANG = gang_configmap_name(JOB)
CHILD = Path(__file__).parents[1] / "agent_child.py"
AGENT_SCRIPT = Path(msjob_runtime.__file__).parent / "agent.py"


def agent_pod(name: str, agent: list[str], plan: str) -> dict:
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
           {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
           {"name": "MSJOB_NAME", "value": JOB}, {"name": "MSJOB_AGENT_GRACE_SECONDS", "value": "3"}]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never", "tolerations": [TOLERATION], "nodeSelector": dict(NODE_SELECTOR),
            "terminationGracePeriodSeconds": 8, "serviceAccountName": "demo-agent",
            "volumes": [{"name": "code", "configMap": {"name": "code"}}],
            "containers": [{
                "name": "mindspore", "image": "python:3", "env": env, "workingDir": "/code",
                "command": [*agent, "--", "python3", "/code/agent_child.py", plan],
                "volumeMounts": [{"name": "code", "mountPath": "/code"}],
            }],
        },
    }


def setup(core, kube, ns: str, pods: list[str]) -> None:
    rbac = RbacAuthorizationV1Api(kube)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "code"}, "data": {"agent_child.py": CHILD.read_text()}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": GANG}, "data": gang_data(0, 0)})
    core.create_namespaced_service_account(ns, {"metadata": {"name": "demo-agent"}})
    rbac.create_namespaced_role(ns, {"metadata": {"name": "demo-agent"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": pods},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"], "resourceNames": [GANG]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
         "resourceNames": [member_lease_name(pod) for pod in pods]}]})
    leases = CoordinationV1Api(kube)
    for pod in pods:  # as the operator creates them, before the pods
        leases.create_namespaced_lease(ns, {"metadata": {"name": member_lease_name(pod)}, "spec": {}})
    rbac.create_namespaced_role_binding(ns, {"metadata": {"name": "demo-agent"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo-agent"},
        "subjects": [{"kind": "ServiceAccount", "name": "demo-agent", "namespace": ns}]})


def report(core, ns: str, name: str) -> dict | None:
    return member_report(core, core.read_namespaced_pod(name, ns))


def wait_report(core, process_node, ns: str, name: str, epoch: int, state: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (r := report(core, ns, name)) and r["epoch"] == epoch and r["state"] == state and r,
                    timeout=timeout, message=f"{name}: the report {state} of epoch {epoch}",
                    describe=lambda: process_node.log(ns, name))


def set_gang(core, ns: str, epoch: int, released: int) -> None:
    core.replace_namespaced_config_map(GANG, ns, {"metadata": {"name": GANG}, "data": gang_data(epoch, released)})


def events(log: str) -> list:
    return [e for e in map(parse_event_line, log.splitlines()) if e is not None]


def test_agent_restarts_in_place_on_the_process_node(process_node, core, kube, namespace):
    ns = namespace
    setup(core, kube, ns, ["agent-a"])
    # As a plain script (the way the operator's pods run it from the runtime's emptyDir).
    core.create_namespaced_pod(ns, agent_pod("agent-a", ["python3", str(AGENT_SCRIPT)], "hang,exit=3,exit=0"))
    first = wait_report(core, process_node, ns, "agent-a", 0, RUNNING)
    wait_for(lambda: "child: helper=" in process_node.log(ns, "agent-a"), message="epoch 0's child")

    set_gang(core, ns, 1, 0)  # restart in place; the barrier is held
    wait_report(core, process_node, ns, "agent-a", 1, WAITING)
    log = process_node.log(ns, "agent-a")
    assert "child: got SIGTERM" in log
    assert [(e.epoch, e.event, e.code) for e in events(log)] == [(0, "start", None), (0, "exit", 143)]
    assert core.read_namespaced_pod("agent-a", ns).status.phase == "Running"  # the same pod, not recreated

    set_gang(core, ns, 1, 1)
    failed = wait_report(core, process_node, ns, "agent-a", 1, EXITED)
    assert failed["exitCode"] == 3 and "child: exiting with 3" in failed["output"] and failed["pid"] != first["pid"]
    set_gang(core, ns, 2, 2)
    done = phase_of(core, ns, "agent-a", timeout=60)
    assert done.status.phase == "Succeeded", process_node.log(ns, "agent-a")
    assert done.status.container_statuses[0].restart_count == 0
    assert report(core, ns, "agent-a")["epoch"] == 2 and report(core, ns, "agent-a")["exitCode"] == 0

    log = process_node.log(ns, "agent-a")
    seen = events(log)
    assert [(e.epoch, e.event) for e in seen] == [(0, "start"), (0, "exit"), (1, "start"), (1, "exit"),
                                                  (2, "start"), (2, "exit")], log
    for end, nxt in zip(seen[1::2], seen[2::2], strict=False):
        assert end.at <= nxt.at  # epoch e's group was gone before e+1 started
    assert "Traceback" not in log, log


def test_deleting_the_pod_stops_the_process_through_the_agent(process_node, core, kube, namespace):
    ns = namespace
    setup(core, kube, ns, ["agent-b"])
    core.create_namespaced_pod(ns, agent_pod("agent-b", ["python3", "-m", "msjob_runtime.agent"], "hang"))
    wait_report(core, process_node, ns, "agent-b", 0, RUNNING)
    wait_for(lambda: "child: helper=" in process_node.log(ns, "agent-b"), message="the child")
    core.delete_namespaced_pod("agent-b", ns)  # the node sends SIGTERM to the agent's group only
    gone(core, ns, "agent-b", timeout=60)
    log = process_node.log(ns, "agent-b")
    assert "SIGTERM: forwarding it to process group" in log and "child: got SIGTERM" in log, log
    assert [(e.event, e.code) for e in events(log)] == [("start", None), ("exit", 143)], log
    assert process_node.record(ns, "agent-b")["containers"]["mindspore"]["exit_code"] == 143
