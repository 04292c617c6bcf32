"""The agent's state machine (msjob_runtime.agent.Agent) on a FakeApi, supervising real processes:
the barrier, stops on an epoch change, final, signals, the API server failing, 410s, restarts."""

from __future__ import annotations

import json
import signal

import pytest

from msjob_runtime import agent as agent_main
from msjob_runtime.agent_protocol import AGENT_ANNOTATION, EXITED, RUNNING, STOPPED, WAITING, agent_report

from ...helpers import wait_for
from .agent_harness import CM, LEASE, NS, UID, AgentHarness


@pytest.fixture
def harness(tmp_path):
    started = []

    def start(plan: str, **kwargs) -> AgentHarness:
        h = AgentHarness(tmp_path, plan, **kwargs)
        started.append(h)
        return h

    yield start
    for h in started:
        h.close()


def assert_no_overlap(events) -> None:
    """Starts and exits alternate, epochs increase, each exit is its start's PID, times ordered."""
    assert [e.event for e in events] == ["start", "exit"] * (len(events) // 2), events
    for start, end in zip(events[::2], events[1::2], strict=False):
        assert start.epoch == end.epoch and start.pid == end.pid and start.at <= end.at
    for end, nxt in zip(events[1::2], events[2::2], strict=False):
        assert end.epoch < nxt.epoch and end.at <= nxt.at


def test_failure_waits_for_the_decision_then_the_barrier(harness):
    h = harness("exit=3,wait")
    r = h.wait_report(0, EXITED)
    assert r["exitCode"] == 3 and "child: exiting with 3" in r["output"] and len(r["output"].encode()) <= 2048
    assert r["pid"] and r["startedAt"] and r["finishedAt"]
    # The operator bumps the epoch but holds the barrier: the agent waits, starts nothing.
    h.set_gang(1, 0)
    w = h.wait_report(1, WAITING)
    assert w["pid"] is None and w["exitCode"] is None and w["output"] == ""
    assert [e.event for e in h.events()] == ["start", "exit"] and h.thread.is_alive()
    h.set_gang(1, 1)
    running = h.wait_report(1, RUNNING)
    assert running["pid"] != r["pid"] and running["finishedAt"] is None
    wait_for(lambda: "child: epoch=1 " in h.output(), message="epoch 1's process ($MSJOB_EPOCH)")
    h.tell(1, 0)
    assert h.exit_code() == 0
    assert h.report()["state"] == EXITED and h.report()["exitCode"] == 0
    assert [(r["epoch"], r["state"]) for r in h.history()] == [
        (0, WAITING), (0, RUNNING), (0, EXITED), (1, WAITING), (1, RUNNING), (1, EXITED)]
    events = h.events()
    assert [(e.epoch, e.event, e.code) for e in events] == [(0, "start", None), (0, "exit", 3),
                                                            (1, "start", None), (1, "exit", 0)]
    assert_no_overlap(events)
    # Every call on the ConfigMap names it (a Role limited by resourceNames allows nothing else).
    assert {q.get("fieldSelector") for verb, path, q in h.api.calls if "configmaps" in path} == {f"metadata.name={CM}"}


def test_an_epoch_change_stops_a_stubborn_group_before_the_ack(harness):
    h = harness("stubborn,exit=0")
    h.wait_report(0, RUNNING)
    wait_for(lambda: "child: helper=" in h.output(), message="the child's helper")
    h.set_gang(1, 0)
    h.wait_report(1, WAITING)
    out = h.output()
    assert "got SIGTERM, ignoring it" in out
    states = [(r["epoch"], r["state"], r["exitCode"]) for r in h.history()]
    # One write for the restart: Waiting(1) is the acknowledgement (no Stopped(0) before it).
    assert states[-1] == (1, WAITING, None) and all(s[1] != STOPPED for s in states), states
    events = h.events()
    assert [(e.epoch, e.event, e.code) for e in events] == [(0, "start", None), (0, "exit", 137)]
    h.set_gang(1, 1)
    assert h.exit_code() == 0
    assert_no_overlap(h.events())


def test_final_ends_the_agent_with_the_last_failure(harness):
    h = harness("exit=4")
    h.wait_report(0, EXITED)
    h.set_gang(0, 0, final=True)
    assert h.exit_code() == 4


def test_final_while_running_stops_the_process_and_exits_0(harness):
    h = harness("hang")
    h.wait_report(0, RUNNING)
    h.set_gang(0, 0, final=True)
    assert h.exit_code() == 0
    assert (h.report()["state"], h.report()["exitCode"]) == (STOPPED, 143)


def test_sigterm_is_forwarded_and_its_code_returned(harness):
    h = harness("hang")
    h.wait_report(0, RUNNING)
    wait_for(lambda: "child: helper=" in h.output(), message="the child's helper")
    h.agent.request_stop(signal.SIGTERM)
    assert h.exit_code() == 143
    assert "child: got SIGTERM" in h.output()
    assert (h.report()["state"], h.report()["exitCode"]) == (EXITED, 143)


def test_sigterm_while_waiting_for_a_decision_exits_with_the_failure(harness):
    h = harness("exit=6")
    h.wait_report(0, EXITED)
    h.agent.request_stop(signal.SIGTERM)
    assert h.exit_code() == 6


def test_waiting_through_an_outage_starts_nothing_until_the_barrier_is_read(harness):
    h = harness("exit=0", gang=(1, 0), unreachable=0.5)
    h.wait_report(1, WAITING)
    h.api.down = True
    wait_for(lambda: h.health.failing_for() > 1.0, message="the API server failing past the bound")
    assert h.thread.is_alive() and h.events() == []  # neither exits nor starts
    h.api.down = False
    h.set_gang(1, 1)
    assert h.exit_code() == 0
    assert [(e.epoch, e.event) for e in h.events()] == [(1, "start"), (1, "exit")]


def test_api_unreachable_running_process_runs_on_then_the_agent_exits_with_its_code(harness):
    h = harness("wait", unreachable=0.5)
    h.wait_report(0, RUNNING)
    h.api.down = True
    wait_for(lambda: h.health.failing_for() > 1.0, message="the API server failing past the bound")
    assert h.thread.is_alive() and h.supervisor.exited() is None  # still running
    h.tell(0, 9)
    assert h.exit_code() == 9
    assert [(e.event, e.code) for e in h.events()] == [("start", None), ("exit", 9)]


def test_a_missing_configmap_after_a_failure_counts_as_no_decision(harness):
    h = harness("exit=2", unreachable=0.5)
    h.wait_report(0, EXITED)
    h.api.delete_configmap(NS, CM)
    assert h.exit_code() == 2


def test_watch_resumes_and_lists_again_after_410(harness):
    h = harness("wait", gang=(0, 1))
    h.wait_report(0, RUNNING)
    h.api.compact()
    h.api.set_configmap(NS, CM, {"epoch": "1", "released": "1"})
    h.wait_report(1, RUNNING)
    lists = [q for verb, path, q in h.api.calls if verb == "get" and "configmaps" in path]
    watches = [q for verb, path, q in h.api.calls if verb == "watch"]
    assert len(lists) >= 2  # the first list, and one after the 410
    assert all(q["resourceVersion"] for q in watches)  # always from a version: never "from now"
    h.tell(1, 0)
    assert h.exit_code() == 0


def test_a_restarted_agent_does_not_start_an_epoch_again(harness):
    previous = json.dumps(agent_report(2, RUNNING, pid=4242))
    h = harness("exit=0", gang=(2, 2), previous=previous)
    r = h.wait_report(2, EXITED)
    assert r["exitCode"] == 137 and "restarted while epoch 2 ran" in r["output"]
    assert h.events() == [] and h.thread.is_alive()
    h.set_gang(3, 3)
    assert h.exit_code() == 0
    assert [(e.epoch, e.event) for e in h.events()] == [(3, "start"), (3, "exit")]


def test_a_restarted_agent_after_success_exits_0(harness):
    h = harness("exit=1", previous=json.dumps(agent_report(0, EXITED, exit_code=0)))
    assert h.exit_code() == 0 and h.events() == []


def test_a_command_that_cannot_run_is_an_exit_127(harness):
    h = harness("", command=["/no/such/program"])
    r = h.wait_report(0, EXITED)
    assert r["exitCode"] == 127 and "cannot run '/no/such/program'" in r["output"]
    h.set_gang(0, 0, final=True)
    assert h.exit_code() == 127


def test_waits_for_the_configmap_and_the_pod(harness):
    h = harness("exit=0", gang=None)
    wait_for(lambda: any("configmaps" in path for _, path, _ in h.api.calls), message="a list of the ConfigMap")
    assert h.report() is None and h.thread.is_alive()
    h.set_gang(0, 0)
    assert h.exit_code() == 0
    lease = h.api.leases[(NS, LEASE)]
    assert lease["spec"]["holderIdentity"] == UID and lease["metadata"]["annotations"][AGENT_ANNOTATION]


def test_a_report_held_by_an_earlier_pod_of_the_member_is_not_this_agents(harness):
    # The member's Lease outlives its pods: Running at epoch 2 held by another UID is no restarted agent's.
    previous = json.dumps(agent_report(2, RUNNING, pid=4242))
    h = harness("exit=0", gang=(2, 2), previous=previous, previous_holder="uid-of-an-earlier-pod")
    assert h.exit_code() == 0
    assert [(e.epoch, e.event) for e in h.events()] == [(2, "start"), (2, "exit")]
    assert h.api.leases[(NS, LEASE)]["spec"]["holderIdentity"] == UID


def test_without_pod_uid_the_agent_reads_it_from_its_pod(harness):
    h = harness("exit=0", pass_uid=False)
    assert h.exit_code() == 0
    assert any(verb == "get" and path.endswith("/pods/demo-worker-0") for verb, path, _ in h.api.calls)
    assert h.api.leases[(NS, LEASE)]["spec"]["holderIdentity"] == UID


def test_reports_wait_for_a_missing_lease(harness):
    # Deleted by hand (the operator creates it again): the reports fail, are retried, and land once it is back.
    h = harness("wait", lease=False, unreachable=30)
    wait_for(lambda: any(verb == "patch" and LEASE in path for verb, path, _ in h.api.calls),
             message="a report tried on the missing Lease")
    assert h.report() is None
    h.api.add_lease(NS, LEASE)
    assert h.wait_report(0, RUNNING)["epoch"] == 0
    h.tell(0, 0)
    assert h.exit_code() == 0


def test_command_line(monkeypatch):
    monkeypatch.setenv("MSJOB_NAME", "demo")
    monkeypatch.setenv("MSJOB_AGENT_GRACE_SECONDS", "7")
    args, command = agent_main.parse_args(["--unreachable-seconds", "5", "--", "python3", "train.py", "--", "x"])
    assert command == ["python3", "train.py", "--", "x"]
    assert (args.job, args.configmap, args.grace_seconds, args.unreachable_seconds) == ("demo", None, 7.0, 5.0)
    with pytest.raises(SystemExit):
        agent_main.parse_args(["--job", "demo"])  # no command
    monkeypatch.delenv("MSJOB_NAME")
    with pytest.raises(SystemExit):
        agent_main.parse_args(["--", "true"])  # no job nor ConfigMap
