"""The pieces of restartStrategy InPlace below the reconcile: the agent in a member, the agents' identity,
output rules (RE2: linear time), and the PodView of an agent's report."""

from __future__ import annotations

import json

import pytest

from msjob_operator.builders import agent
from msjob_operator.builders.runtime import INSTALL_CONTAINER, RUNTIME_DIR
from msjob_operator.reconcile.observed import view_pod
from msjob_operator.reconcile.output_rules import output_matches, valid
from msjob_runtime import agent_protocol as ap

from .jobs import job, pod


def member(**spec) -> dict:
    return {"metadata": {"name": "demo-worker-0", "labels": {"training.kubeflow.org/job-name": "demo"}},
            "spec": {"containers": [{"name": "mindspore", "image": "ms", "command": ["python", "train.py"],
                                     "args": ["--epochs", "3"], "env": [{"name": "PYTHONPATH", "value": "/code"}]}],
                     **spec}}


def test_the_agent_wraps_the_command_and_leaves_args_and_pythonpath():
    pod_dict = member(terminationGracePeriodSeconds=60, initContainers=[{"name": "user-init", "image": "x"}],
                      serviceAccountName="demo-reporter")
    agent.add_agent(pod_dict, "msjob-operator:1")
    spec = pod_dict["spec"]
    main = spec["containers"][0]
    assert main["command"][:4] == ["python3", f"{RUNTIME_DIR}/msjob_runtime/agent.py", "--grace-seconds", "55"]
    assert main["command"][4:] == ["--", "python", "train.py"] and main["args"] == ["--epochs", "3"]
    assert {"name": "PYTHONPATH", "value": "/code"} in main["env"]
    assert [c["name"] for c in spec["initContainers"]] == [INSTALL_CONTAINER, "user-init"]
    assert spec["initContainers"][0]["image"] == "msjob-operator:1"
    assert spec["serviceAccountName"] == "demo-agent"  # the reporter's needs are covered by the agents' Role
    agent.add_agent(pod_dict, "msjob-operator:1")  # idempotent apart from the command
    assert [c["name"] for c in spec["initContainers"]] == [INSTALL_CONTAINER, "user-init"]
    assert len([v for v in spec["volumes"] if v["name"] == "msjob-runtime"]) == 1


def test_a_container_without_command_cannot_run_under_the_agent():
    pod_dict = member()
    del pod_dict["spec"]["containers"][0]["command"]
    with pytest.raises(ValueError, match="no command"):
        agent.add_agent(pod_dict, "img")


def test_the_role_names_every_pod_and_refuses_to_be_unbounded():
    body = job()
    role = agent.role(body, ["demo-worker-1", "demo-worker-0"])
    assert role["rules"][0]["resourceNames"] == ["demo-worker-0", "demo-worker-1"]
    assert role["rules"][2] == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                "verbs": ["get", "patch"],
                                "resourceNames": ["demo-worker-0-agent", "demo-worker-1-agent"]}
    with pytest.raises(ValueError):
        agent.role(body, [])
    created, written = agent.prerequisites(body, ["demo-worker-0"], ["trainer", "demo-agent"])
    assert [o["kind"] for o in created] == ["ServiceAccount"] and [o["kind"] for o in written] == ["Role",
                                                                                                   "RoleBinding"]
    assert [s["name"] for s in written[1]["subjects"]] == ["demo-agent", "trainer"]


def test_output_rules_are_re2_in_linear_time():
    assert output_matches("(?i)hccl.*timeout", "... HCCL op Timeout ...")
    assert output_matches("(?m)^RuntimeError", "x\nRuntimeError: boom")
    assert not output_matches("^RuntimeError", "x\nRuntimeError: boom")
    assert not output_matches("oom", None)
    assert not valid("(a") and not output_matches("(a", "(a")  # does not compile: never matches
    assert not valid("(?=x)")  # lookaround is not RE2
    # Exponential for a backtracking engine (Python's re would not return in our lifetime); RE2 answers.
    assert not output_matches("(a+)+$", "a" * 4096 + "b")


def test_the_pod_view_carries_the_agent_s_report():
    raw = pod("demo", "Worker", 1)
    report = ap.agent_report(3, ap.EXITED, exit_code=137, output="bye")
    raw["metadata"]["annotations"] = {ap.AGENT_ANNOTATION: json.dumps(report)}
    raw["metadata"]["resourceVersion"] = "41"
    view = view_pod(raw)
    assert view.agent is not None and view.agent.epoch == 3 and view.agent.failed and view.agent.output == "bye"
    raw["metadata"]["annotations"][ap.AGENT_ANNOTATION] = "not json"
    raw["metadata"]["resourceVersion"] = "42"
    assert view_pod(raw).agent is None


def test_the_member_view_takes_the_report_on_its_lease_when_this_pod_holds_it():
    raw = pod("demo", "Worker", 1)
    raw["metadata"]["resourceVersion"] = "41"
    lease = {"metadata": {"name": "demo-worker-1-agent", "resourceVersion": "7", "annotations": {}}, "spec": {}}
    lease["metadata"]["annotations"][ap.AGENT_ANNOTATION] = json.dumps(ap.agent_report(2, ap.RUNNING, pid=9))
    assert view_pod(raw, lease).agent is None  # no holder yet
    lease = {**lease, "metadata": {**lease["metadata"], "resourceVersion": "8"},
             "spec": {"holderIdentity": raw["metadata"]["uid"]}}
    view = view_pod(raw, lease)
    assert view.agent is not None and (view.agent.epoch, view.agent.state) == (2, ap.RUNNING)
    # Held by an earlier pod of the member: the pod's own annotation (an agent of before the Leases), if any.
    raw["metadata"]["annotations"] = {ap.AGENT_ANNOTATION: json.dumps(ap.agent_report(1, ap.WAITING))}
    earlier = {**lease, "metadata": {**lease["metadata"], "resourceVersion": "9"},
               "spec": {"holderIdentity": "uid-earlier"}}
    assert view_pod(raw, earlier).agent.epoch == 1
    assert view_pod(raw, lease).agent.epoch == 2  # the Lease's, held by this pod, wins
