"""msjob_runtime.progress: the annotation the operator reads, and the time helpers."""

from __future__ import annotations

import datetime as dt
import json

from msjob_runtime import progress
from msjob_runtime.progress import PROGRESS_ANNOTATION

from .steptimes import UTC


def pod_with(value) -> dict:
    return {"metadata": {"name": "demo-worker-0", "annotations": {PROGRESS_ANNOTATION: value}}}


GOOD = {"step": 1240, "epoch": 3, "loss": 0.25, "stepTimeMs": 80.0, "stepsPerSecond": 12.5,
        "heartbeat": "2026-11-22T12:00:03Z", "reportedAt": "2026-11-22T12:00:05.5Z"}


def test_read_progress_good():
    p = progress.read_progress(pod_with(json.dumps(GOOD)))
    assert p == {**GOOD, "reportedAt": "2026-11-22T12:00:05.500Z"}


def test_read_progress_absent_or_malformed():
    assert progress.read_progress({"metadata": {"name": "x"}}) is None
    assert progress.read_progress({"metadata": {"annotations": None}}) is None
    assert progress.read_progress({}) is None
    for bad in ["", "{", "[1]", "null", "3", json.dumps({**GOOD, "step": -1}), json.dumps({**GOOD, "step": "7"}),
                json.dumps({**GOOD, "step": True}), json.dumps({**GOOD, "step": 1.5}),
                json.dumps({k: v for k, v in GOOD.items() if k != "heartbeat"}),
                json.dumps({**GOOD, "heartbeat": "yesterday"}),
                json.dumps({**GOOD, "heartbeat": "2026-11-22T12:00:03"}),
                json.dumps({**GOOD, "heartbeat": 1795325382})]:
        assert progress.read_progress(pod_with(bad)) is None, bad


def test_read_progress_cleans_optional_fields():
    raw = {"step": 7.0, "epoch": "x", "loss": "NaN", "stepTimeMs": -3, "stepsPerSecond": True,
           "heartbeat": "2026-11-22T13:00:03+01:00", "reportedAt": "?", "extra": {"a": 1}}
    p = progress.read_progress(pod_with(json.dumps(raw)))
    assert p == {"step": 7, "epoch": None, "loss": None, "stepTimeMs": None, "stepsPerSecond": None,
                 "heartbeat": "2026-11-22T12:00:03Z"}
    p = progress.read_progress(pod_with(json.dumps({**GOOD, "loss": -0.5})))
    assert p["loss"] == -0.5  # a loss may be negative


def test_time_helpers():
    assert progress.format_time(dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert progress.format_time(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    assert progress.parse_time("2026-01-02T03:04:05.678Z") == dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert progress.parse_time("2026-01-02T03:04:05") is None and progress.parse_time(None) is None


def test_parse_time_takes_any_number_of_fraction_digits():
    # RFC 3339 allows any; fromisoformat before Python 3.11 took 3 or 6 only (user images vary).
    assert progress.parse_time("2026-11-22T12:00:05.5Z") == dt.datetime(2026, 11, 22, 12, 0, 5, 500000, tzinfo=UTC)
    assert progress.parse_time("2026-11-22T12:00:05.1234567+01:00") == dt.datetime(2026, 11, 22, 11, 0, 5, 123456,
                                                                                 tzinfo=UTC)
    assert progress.parse_time("2026-11-22t12:00:05z") == dt.datetime(2026, 11, 22, 12, 0, 5, tzinfo=UTC)
    assert progress.parse_time("2026-11-22T12:00:05.5") is None  # no offset
    assert progress.parse_time("2026-11-22T12:00:05.x+00:00") is None
