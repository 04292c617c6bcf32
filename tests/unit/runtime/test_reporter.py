"""msjob_runtime.reporter: the progress dict, when it patches, and its errors."""

from __future__ import annotations

import datetime as dt
import threading

from msjob_runtime import perf, reporter
from msjob_runtime.callback import write_progress
from msjob_runtime.progress import PROGRESS_ANNOTATION, format_time, read_progress

from .steptimes import HEADER, NOW, T0, UTC, steps, write


def test_reporter_reports_the_callback_when_perf_files_are_unreadable(tmp_path, monkeypatch, caplog):
    def denied(self):
        raise PermissionError(13, "Permission denied", str(self.directory))

    monkeypatch.setattr(perf.PerfReader, "read", denied)
    write_progress(str(tmp_path / "p.json"), {"step": 5, "epoch": 1, "loss": 0.5, "time": NOW.timestamp()})
    sent = []
    r = reporter.Reporter(str(tmp_path), str(tmp_path / "p.json"), lambda p, t: sent.append(p))
    with caplog.at_level("WARNING"):
        assert r.tick() is True and r.tick() is False
    assert sent[0]["step"] == 5 and sent[0]["loss"] == 0.5
    warnings = [rec.getMessage() for rec in caplog.records if "step-time files" in rec.getMessage()]
    assert len(warnings) == 1 and "training container's user" in warnings[0]


def test_progress_from_perf_only():
    s = perf.PerfSummary(steps=12, last_step_ms=80.0, steps_per_second=10.123456, last_end_ms=T0 + 1234)
    p = reporter.build_progress(s, None, NOW)
    assert p == {"step": 12, "epoch": None, "loss": None, "stepTimeMs": 80.0, "stepsPerSecond": 10.1235,
                 "heartbeat": format_time(dt.datetime.fromtimestamp((T0 + 1234) / 1000, UTC)),
                 "reportedAt": "2026-11-22T12:00:00Z"}
    assert p["heartbeat"].endswith(".234Z")


def test_progress_from_callback_only_and_combined():
    record = {"step": 40, "epoch": 3, "loss": 0.125, "time": NOW.timestamp() - 5}
    p = reporter.build_progress(None, record, NOW)
    assert (p["step"], p["epoch"], p["loss"], p["stepTimeMs"], p["stepsPerSecond"]) == (40, 3, 0.125, None, None)
    assert p["heartbeat"] == "2026-11-22T11:59:55Z"
    # Combined: the larger step, the later heartbeat.
    s = perf.PerfSummary(steps=42, last_step_ms=9.0, steps_per_second=None,
                         last_end_ms=int(NOW.timestamp() * 1000) - 1000)
    p = reporter.build_progress(s, record, NOW)
    assert (p["step"], p["epoch"], p["loss"], p["stepTimeMs"]) == (42, 3, 0.125, 9.0)
    assert p["heartbeat"] == "2026-11-22T11:59:59Z"
    resumed = {**record, "step": 1040, "time": NOW.timestamp() - 30}
    p = reporter.build_progress(s, resumed, NOW)
    assert p["step"] == 1040 and p["heartbeat"] == "2026-11-22T11:59:59Z"
    assert reporter.build_progress(None, None, NOW) is None


def test_progress_round_trips_through_read_progress():
    s = perf.PerfSummary(steps=3, last_step_ms=5.0, steps_per_second=2.5, last_end_ms=T0)
    p = reporter.build_progress(s, {"step": 3, "epoch": 1, "loss": 0.5, "time": T0 / 1000 - 1}, NOW)
    pod = {"metadata": reporter.annotation_patch(p)["metadata"]}
    assert read_progress(pod) == p


def test_load_progress_file(tmp_path):
    path = tmp_path / "p.json"
    assert reporter.load_progress_file(str(path)) is None
    for bad in ["{", "[]", '{"step": -1, "time": 1}', '{"step": 1}', '{"step": true, "time": 1}',
                '{"step": "3", "time": 1}']:
        path.write_text(bad)
        assert reporter.load_progress_file(str(path)) is None, bad
    path.write_text('{"step": 3, "epoch": "x", "loss": "nan", "time": 17.5, "extra": 1}')
    assert reporter.load_progress_file(str(path)) == {"step": 3, "epoch": None, "loss": None, "time": 17.5}


def test_reporter_patches_only_changes_and_retries_errors(tmp_path):
    sent, fail = [], []

    def patch(progress, timeout):
        if fail:
            raise fail.pop()
        sent.append(progress)

    clock = iter(NOW + dt.timedelta(seconds=i) for i in range(100))
    r = reporter.Reporter(str(tmp_path), str(tmp_path / "progress.json"), patch, now=lambda: next(clock))
    assert r.tick() is False and sent == []  # nothing before the first step
    f = tmp_path / "perf_ms_7_0.log"
    write(f, HEADER + steps(2))
    assert r.tick() is True and sent[-1]["step"] == 2
    assert r.tick() is False and len(sent) == 1  # unchanged (reportedAt aside): no patch
    write(f, steps(1, start=2))
    fail.append(ConnectionError("api down"))
    assert r.tick() is False and len(sent) == 1
    assert r.tick() is True and sent[-1]["step"] == 3


def test_reporter_run_stops_on_event(tmp_path):
    write(tmp_path / "perf_ms_7_0.log", steps(1))
    sent = []
    r = reporter.Reporter(str(tmp_path), str(tmp_path / "none.json"), lambda p, t: sent.append(p))
    stop = threading.Event()
    t = threading.Thread(target=r.run, args=(0.05, stop))
    t.start()
    stop.set()
    t.join(5)
    assert not t.is_alive() and sent and sent[0]["step"] == 1


def test_annotation_patch_is_compact_json():
    patch = reporter.annotation_patch({"step": 1, "loss": None})
    assert patch == {"metadata": {"annotations": {PROGRESS_ANNOTATION: '{"loss":null,"step":1}'}}}


def test_reporter_requires_its_pod(monkeypatch):
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert reporter.main(["--interval", "1"]) == 2
