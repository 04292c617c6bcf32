"""agent_protocol: the gang ConfigMap's data, the report annotation, acknowledgements, event lines."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from msjob_runtime import agent_protocol as ap

T = datetime(2026, 11, 22, 12, 0, 3, 123456, tzinfo=timezone.utc)


def test_gang_data_round_trips_and_rejects_garbage():
    assert ap.gang_configmap_name("demo") == "demo-gang"
    assert ap.gang_data(2, 1) == {"epoch": "2", "released": "1"}
    assert ap.gang_data(3, 3, final=True) == {"epoch": "3", "released": "3", "final": "true"}
    assert ap.parse_gang(ap.gang_data(3, 2, True)) == ap.Gang(3, 2, True)
    assert ap.parse_gang({"epoch": " 4 ", "released": "0", "final": "TRUE"}) == ap.Gang(4, 0, True)
    assert ap.parse_gang({"epoch": "1", "released": "1", "final": "yes"}).final is False
    for bad in ({}, {"epoch": "1"}, {"epoch": "-1", "released": "0"}, {"epoch": "x", "released": "0"},
                {"epoch": 1, "released": "0"}, None):
        with pytest.raises(ValueError):
            ap.parse_gang(bad)


def test_a_report_round_trips_through_the_pod_annotation():
    report = ap.agent_report(2, ap.EXITED, exit_code=137, started_at=T, finished_at=T, output="boom\n", pid=42,
                             reported_at=T)
    assert report == {"epoch": 2, "state": "Exited", "exitCode": 137, "startedAt": "2026-11-22T12:00:03.123Z",
                      "finishedAt": "2026-11-22T12:00:03.123Z", "output": "boom\n", "pid": 42,
                      "reportedAt": "2026-11-22T12:00:03.123Z"}
    patch = ap.report_patch(report)
    assert list(patch["metadata"]["annotations"]) == [ap.AGENT_ANNOTATION]
    assert ap.read_agent_report(patch) == report
    waiting = ap.agent_report(3, ap.WAITING, reported_at=T)
    assert ap.read_agent_report(ap.report_patch(waiting)) == waiting
    assert ap.same_report(waiting, {**waiting, "reportedAt": "later"})
    assert not ap.same_report(waiting, {**waiting, "epoch": 4})
    with pytest.raises(ValueError):
        ap.agent_report(1, "Crashed")


@pytest.mark.parametrize("raw", ["", "not json", "[]", json.dumps({"epoch": 1, "state": "Crashed"}),
                                 json.dumps({"epoch": -1, "state": "Running"}),
                                 json.dumps({"epoch": True, "state": "Running"}),
                                 json.dumps({"epoch": 1, "state": "Exited", "exitCode": "1"})])
def test_invalid_reports_read_as_none(raw):
    assert ap.read_agent_report({"metadata": {"annotations": {ap.AGENT_ANNOTATION: raw}}}) is None
    assert ap.read_agent_report({"metadata": {}}) is None


def test_quiesced_is_the_acknowledgement_of_an_epoch():
    def r(epoch, state):
        return ap.agent_report(epoch, state)

    assert not ap.quiesced(None, 0)
    assert not ap.quiesced(r(1, ap.RUNNING), 1)  # epoch 1 still runs
    assert not ap.quiesced(r(0, ap.RUNNING), 1)
    for state in (ap.EXITED, ap.STOPPED):
        assert ap.quiesced(r(1, state), 1)
    # Waiting at epoch 1 is no acknowledgement of it: with epoch 1 released, that agent starts epoch 1
    # as soon as it looks, unless its view already has the next epoch.
    assert not ap.quiesced(r(1, ap.WAITING), 1)
    assert ap.quiesced(r(2, ap.WAITING), 1) and ap.quiesced(r(2, ap.RUNNING), 1)  # already at a later epoch
    assert not ap.quiesced(r(0, ap.STOPPED), 1)  # has not seen epoch 1's end


def test_event_lines_parse_back():
    start = ap.event_line(3, ap.START, 1234, T)
    assert start == "msjob-agent: epoch=3 start pid=1234 at=2026-11-22T12:00:03.123456Z"
    end = ap.event_line(3, ap.EXIT, 1234, T, 143)
    assert end == "msjob-agent: epoch=3 exit pid=1234 code=143 at=2026-11-22T12:00:03.123456Z"
    assert ap.parse_event_line(start) == ap.AgentEvent(3, "start", 1234, None, T)
    assert ap.parse_event_line(end + "\n") == ap.AgentEvent(3, "exit", 1234, 143, T)
    assert ap.parse_event_line("msjob-agent: epoch=3 cannot run 'x'") is None
    assert ap.parse_event_line("child: msjob-agent: epoch=3 start pid=1 at=" + ap.micro_time(T)) is None


def test_grace_seconds_leave_a_margin():
    assert ap.agent_grace_seconds(None) == 25.0 == ap.DEFAULT_GRACE_SECONDS
    assert ap.agent_grace_seconds(60) == 55.0
    assert ap.agent_grace_seconds(3) == 1.0
