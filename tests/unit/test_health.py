"""Health and progress: perf-file parsing, the reporter's progress dict, the annotation the
operator reads, stall detection, and the reporter's RBAC and sidecar."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading

import pytest

from msjob_operator import naming
from msjob_operator.health import (PERF_DIR, PROGRESS_ANNOTATION, PROGRESS_FILE, REPORTER_CONTAINER, RUN_DIR,
                                   VOLUME_NAME, perf, rbac, reporter, sidecar, status)
from msjob_operator.health.callback import ProgressCallback, loss_value, write_progress

from .jobs import job

T0 = 1_795_325_382_000  # ms
HEADER = "UUID:10.0.0.1_2222\nFRAMEWORK:MindSpore\nGLOBAL RANKID:0\n"
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def steps(n: int, start: int = 0, every_ms: int = 100, dur_ms: int = 80) -> str:
    return "".join(f"STEPTIME:{T0 + i * every_ms},{T0 + i * every_ms + dur_ms}\n" for i in range(start, start + n))


def write(path, text: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------------
# perf.py


def test_parse_step_line():
    assert perf.parse_step_line("STEPTIME:100,180\n") == (100, 180)
    assert perf.parse_step_line(b"STEPTIME:100,100") == (100, 100)
    for line in ["UUID:x", "PP:[0, 1]", "dp:[0]", "STEPTIME:100", "STEPTIME:100,", "STEPTIME:a,b",
                 "STEPTIME:200,100", "", "STEPTIME:1,2,3"]:
        assert perf.parse_step_line(line) is None, line


def test_summary_of_a_file_ignores_other_lines():
    s = perf.parse_lines((HEADER + "PP:[0]\ndp:[0]\n" + steps(5)).splitlines())
    assert s == perf.PerfSummary(steps=5, last_step_ms=80.0, steps_per_second=pytest.approx(5 * 1000 / 480),
                                 last_end_ms=T0 + 480)
    assert perf.parse_lines(HEADER.splitlines()) is None


def test_throughput_over_the_last_20_steps_only():
    slow = steps(10, every_ms=1000, dur_ms=900)
    fast_start = T0 + 10_000
    fast = "".join(f"STEPTIME:{fast_start + i * 50},{fast_start + i * 50 + 40}\n" for i in range(20))
    s = perf.parse_lines((slow + fast).splitlines())
    assert s.steps == 30
    assert s.steps_per_second == pytest.approx(20 * 1000 / (19 * 50 + 40))
    assert s.last_step_ms == 40.0


def test_zero_ms_steps_give_no_rate():
    s = perf.parse_lines(["STEPTIME:5,5"])
    assert s.steps == 1 and s.last_step_ms == 0.0 and s.steps_per_second is None and s.last_end_ms == 5


def test_reader_is_incremental_and_tolerates_a_partial_last_line(tmp_path):
    f = tmp_path / "perf_ms_100_0.log"
    write(f, HEADER + steps(3) + "STEPTIME:9999")  # last line still being written
    reader = perf.PerfReader(tmp_path)
    assert reader.read().steps == 3
    offset = reader._offset
    assert offset == len((HEADER + steps(3)).encode())
    write(f, "99,")  # still partial
    assert reader.read().steps == 3 and reader._offset == offset
    write(f, "9999999999999\n" + steps(2, start=3))
    s = reader.read()
    assert s.steps == 6 and s.last_end_ms == T0 + 4 * 100 + 80
    # Only what was appended is read: bytes before the offset are never parsed again.
    reader._recent.clear()
    write(f, steps(1, start=5))
    s = reader.read()
    assert s.steps == 7 and s.last_end_ms == T0 + 580
    assert s.steps_per_second == pytest.approx(1000 / 80)  # the window holds only the line just read
    assert reader.read() == s  # nothing new


def test_reader_ignores_malformed_step_lines(tmp_path):
    write(tmp_path / "perf_ms_1_0.log", HEADER + "STEPTIME:x,y\nSTEPTIME:5,4\n" + steps(2))
    assert perf.read_perf_dir(tmp_path).steps == 2


def test_reader_takes_the_lowest_local_rank(tmp_path):
    write(tmp_path / "perf_ms_300_1.log", HEADER + steps(9))
    write(tmp_path / "perf_ms_200_0.log", HEADER + steps(4))
    write(tmp_path / "perf_ms_400_10.log", HEADER + steps(1))
    write(tmp_path / "other.log", steps(50))
    reader = perf.PerfReader(tmp_path)
    assert reader.read().steps == 4
    assert reader.path.name == "perf_ms_200_0.log"
    assert [r for r, _, _ in perf.perf_files(tmp_path)] == [0, 1, 10]


def test_of_two_files_of_local_rank_0_the_newest_counts(tmp_path):
    old, new = tmp_path / "perf_ms_1_0.log", tmp_path / "perf_ms_2_0.log"
    write(old, steps(7))
    write(new, steps(2))
    os.utime(old, (1, 1))
    assert perf.reference_file(tmp_path) == new


def test_reader_adds_a_replaced_file_to_the_count(tmp_path):
    f = tmp_path / "perf_ms_100_0.log"
    write(f, HEADER + steps(5))
    reader = perf.PerfReader(tmp_path)
    assert reader.read().steps == 5
    f.unlink()  # a second Model.train in the same process removes the file...
    assert reader.read().steps == 5  # ...and the summary stays while it is gone
    write(f, HEADER + steps(2, start=10))  # ...and starts a new one, shorter than the old
    s = reader.read()
    assert s.steps == 7 and s.last_end_ms == T0 + 11 * 100 + 80
    write(tmp_path / "perf_ms_101_0.log", HEADER + steps(1, start=20))  # a new process
    os.utime(f, (1, 1))
    assert reader.read().steps == 8


def test_missing_directory_gives_nothing(tmp_path):
    assert perf.read_perf_dir(tmp_path / "absent") is None
    assert perf.read_perf_dir(tmp_path) is None


def _read_as(uid: int, directory) -> str:
    """perf.PerfReader(directory).read() in a child process running as ``uid``: the exception's name."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.setgid(uid)
            os.setuid(uid)
            perf.PerfReader(directory).read()
        except PermissionError:
            code = 13
        except BaseException:
            code = 1
        os._exit(code)
    _, result = os.waitpid(pid, 0)
    return {0: "no error", 13: "PermissionError"}.get(os.waitstatus_to_exitcode(result), "other error")


def test_files_of_another_user_are_unreadable():
    """MindSpore's layout (directory 0700, files 0400, owned by the training user) read by another
    user: PermissionError, which the reporter reports (run it as the training container's user)."""
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="msjob-perf-")
    try:
        os.chmod(root, 0o755)
        perf_dir = os.path.join(root, "perf")
        os.mkdir(perf_dir, 0o700)
        f = os.path.join(perf_dir, "perf_ms_1_0.log")
        write(f, steps(1))
        os.chmod(f, 0o400)
        assert perf.read_perf_dir(perf_dir).steps == 1  # the owner reads them
        if os.geteuid() == 0:
            assert _read_as(65534, perf_dir) == "PermissionError"
            os.chmod(perf_dir, 0o755)  # even with a listable directory, the file is the owner's
            assert _read_as(65534, perf_dir) == "PermissionError"
        else:
            os.chmod(f, 0)
            with pytest.raises(PermissionError):
                perf.PerfReader(perf_dir).read()
    finally:
        shutil.rmtree(root, ignore_errors=True)


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


# ---------------------------------------------------------------------------------------------
# callback.py (without MindSpore's run loop: a fake run context)


class Params:
    def __init__(self, step, epoch, outputs):
        self.cur_step_num, self.cur_epoch_num, self.net_outputs = step, epoch, outputs


class Context:
    def __init__(self, *args):
        self.params = Params(*args)

    def original_args(self):
        return self.params


def test_callback_writes_every_n_steps_and_every_epoch_end(tmp_path):
    path = tmp_path / "run" / "progress.json"
    cb = ProgressCallback(every_n_steps=3, path=str(path))
    cb.on_train_step_end(Context(1, 1, 0.5))
    assert not path.exists()
    cb.on_train_step_end(Context(3, 1, (0.25, False, 1024.0)))
    record = json.loads(path.read_text())
    assert record["step"] == 3 and record["epoch"] == 1 and record["loss"] == 0.25 and record["time"] > 0
    cb.on_train_step_end(Context(4, 2, 0.1))
    assert json.loads(path.read_text())["step"] == 3
    cb.on_train_epoch_end(Context(4, 2, float("nan")))
    record = json.loads(path.read_text())
    assert (record["step"], record["epoch"], record["loss"]) == (4, 2, None)
    assert os.listdir(path.parent) == ["progress.json"]  # no temporary file left


def test_callback_path_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MSJOB_PROGRESS_FILE", str(tmp_path / "p.json"))
    assert ProgressCallback().path == str(tmp_path / "p.json")
    monkeypatch.delenv("MSJOB_PROGRESS_FILE")
    assert ProgressCallback().path == PROGRESS_FILE
    with pytest.raises(ValueError):
        ProgressCallback(every_n_steps=0)


def test_callback_never_breaks_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cb = ProgressCallback(path=str(blocker / "progress.json"))  # parent is a file: cannot write
    cb.on_train_step_end(Context(1, 1, 0.5))
    cb.on_train_epoch_end(Context(1, 1, 0.5))


def test_callback_of_another_rank_writes_nothing(tmp_path):
    path = tmp_path / "progress.json"
    cb = ProgressCallback(path=str(path))
    cb._is_rank0 = False
    cb.on_train_step_end(Context(1, 1, 0.5))
    assert not path.exists()


def test_loss_value():
    class T:
        def __init__(self, v):
            self.v = v

        def asnumpy(self):
            import numpy as np
            return np.array(self.v, dtype=np.float32)

    assert loss_value(T(0.5)) == 0.5
    assert loss_value((T(1.5), T(False))) == 1.5
    assert loss_value(2) == 2.0
    assert loss_value(None) is None and loss_value(()) is None and loss_value("x") is None
    assert loss_value(float("inf")) is None


def test_write_progress_is_atomic_replacement(tmp_path):
    path = tmp_path / "p.json"
    write_progress(str(path), {"step": 1})
    write_progress(str(path), {"step": 2})
    assert json.loads(path.read_text()) == {"step": 2}
    assert sorted(os.listdir(tmp_path)) == ["p.json"]


# ---------------------------------------------------------------------------------------------
# reporter.py: the progress dict


def test_progress_from_perf_only():
    s = perf.PerfSummary(steps=12, last_step_ms=80.0, steps_per_second=10.123456, last_end_ms=T0 + 1234)
    p = reporter.build_progress(s, None, NOW)
    assert p == {"step": 12, "epoch": None, "loss": None, "stepTimeMs": 80.0, "stepsPerSecond": 10.1235,
                 "heartbeat": status.format_time(dt.datetime.fromtimestamp((T0 + 1234) / 1000, UTC)),
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
    assert status.read_progress(pod) == p


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


# ---------------------------------------------------------------------------------------------
# status.py: read_progress, stall_check


def pod_with(value) -> dict:
    return {"metadata": {"name": "demo-worker-0", "annotations": {PROGRESS_ANNOTATION: value}}}


GOOD = {"step": 1240, "epoch": 3, "loss": 0.25, "stepTimeMs": 80.0, "stepsPerSecond": 12.5,
        "heartbeat": "2026-11-22T12:00:03Z", "reportedAt": "2026-11-22T12:00:05.5Z"}


def test_read_progress_good():
    p = status.read_progress(pod_with(json.dumps(GOOD)))
    assert p == {**GOOD, "reportedAt": "2026-11-22T12:00:05.500Z"}


def test_read_progress_absent_or_malformed():
    assert status.read_progress({"metadata": {"name": "x"}}) is None
    assert status.read_progress({"metadata": {"annotations": None}}) is None
    assert status.read_progress({}) is None
    for bad in ["", "{", "[1]", "null", "3", json.dumps({**GOOD, "step": -1}), json.dumps({**GOOD, "step": "7"}),
                json.dumps({**GOOD, "step": True}), json.dumps({**GOOD, "step": 1.5}),
                json.dumps({k: v for k, v in GOOD.items() if k != "heartbeat"}),
                json.dumps({**GOOD, "heartbeat": "yesterday"}),
                json.dumps({**GOOD, "heartbeat": "2026-11-22T12:00:03"}),
                json.dumps({**GOOD, "heartbeat": 1795325382})]:
        assert status.read_progress(pod_with(bad)) is None, bad


def test_read_progress_cleans_optional_fields():
    raw = {"step": 7.0, "epoch": "x", "loss": "NaN", "stepTimeMs": -3, "stepsPerSecond": True,
           "heartbeat": "2026-11-22T13:00:03+01:00", "reportedAt": "?", "extra": {"a": 1}}
    p = status.read_progress(pod_with(json.dumps(raw)))
    assert p == {"step": 7, "epoch": None, "loss": None, "stepTimeMs": None, "stepsPerSecond": None,
                 "heartbeat": "2026-11-22T12:00:03Z"}
    p = status.read_progress(pod_with(json.dumps({**GOOD, "loss": -0.5})))
    assert p["loss"] == -0.5  # a loss may be negative


def at(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def progress_at(seconds: float, step: int = 1240) -> dict:
    return {"step": step, "heartbeat": status.format_time(at(seconds))}


def test_stall_slow_start_is_not_a_stall():
    stalled, wait, msg = status.stall_check(None, running_since=NOW, now=at(100), timeout_s=600)
    assert (stalled, wait) == (False, 500) and "no training step yet" in msg
    stalled, wait, msg = status.stall_check(None, running_since=NOW, now=at(601), timeout_s=600)
    assert stalled and wait is None and msg == "no training step 601 s after all pods were running"


def test_stall_not_running_yet():
    assert status.stall_check(None, running_since=None, now=NOW, timeout_s=600) == (False, None, "not running yet")


def test_stall_after_the_heartbeat_stops():
    p = progress_at(3)
    stalled, wait, msg = status.stall_check(p, running_since=at(-1000), now=at(100), timeout_s=600)
    assert (stalled, wait) == (False, pytest.approx(503)) and msg == "last step 1240 at 12:00:03Z"
    stalled, wait, msg = status.stall_check(p, running_since=at(-1000), now=at(615), timeout_s=600)
    assert stalled and wait is None
    assert msg == "no training step for 612 s (last step 1240 at 12:00:03Z)"
    # Exactly at the timeout: not yet.
    assert status.stall_check(p, running_since=None, now=at(603), timeout_s=600)[0] is False


def test_stall_clock_starts_at_running_since_when_the_heartbeat_is_older():
    p = progress_at(-5000)  # e.g. skewed node clock, or a heartbeat from before a gang restart
    stalled, wait, _ = status.stall_check(p, running_since=NOW, now=at(10), timeout_s=600)
    assert not stalled and wait == pytest.approx(590)
    stalled, _, msg = status.stall_check(p, running_since=NOW, now=at(700), timeout_s=600)
    assert stalled and msg.startswith("no training step for 5700 s")


def test_stall_heartbeat_in_the_future_counts_as_now():
    stalled, wait, _ = status.stall_check(progress_at(30), running_since=NOW, now=at(0), timeout_s=60)
    assert not stalled and wait == 60


def test_stall_detection_off():
    assert status.stall_check(None, running_since=NOW, now=at(10**6), timeout_s=0)[:2] == (False, None)
    assert status.stall_check(progress_at(0), running_since=NOW, now=at(10**6), timeout_s=None)[:2] == (False, None)


def test_time_helpers():
    assert status.format_time(dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert status.format_time(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    assert status.parse_time("2026-01-02T03:04:05.678Z") == dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert status.parse_time("2026-01-02T03:04:05") is None and status.parse_time(None) is None


# ---------------------------------------------------------------------------------------------
# rbac.py and sidecar.py


def test_rbac_objects():
    j = job("demo")
    sa, role, binding = rbac.service_account(j), rbac.role(j, ["demo-worker-0"]), rbac.role_binding(j)
    for obj in (sa, role, binding):
        meta = obj["metadata"]
        assert meta["name"] == "demo-reporter" and meta["namespace"] == j["metadata"]["namespace"]
        assert meta["labels"] == naming.job_labels("demo")
        assert meta["ownerReferences"] == [naming.owner_reference(j)]
    assert sa["kind"] == "ServiceAccount" and sa["apiVersion"] == "v1"
    assert role["apiVersion"] == "rbac.authorization.k8s.io/v1" and role["kind"] == "Role"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"],
                              "resourceNames": ["demo-worker-0"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo-reporter"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-reporter",
                                    "namespace": j["metadata"]["namespace"]}]
    assert rbac.role_binding(j, service_account="users-sa")["subjects"][0]["name"] == "users-sa"
    with pytest.raises(ValueError):
        rbac.role(j, [])  # an empty resourceNames would allow every pod


def test_reporter_container():
    c = sidecar.reporter_container("msjob-operator:0.1.0", 15)
    assert c["name"] == REPORTER_CONTAINER and c["image"] == "msjob-operator:0.1.0"
    assert c["command"] == ["python", "-m", "msjob_operator.health.reporter", "--perf-dir", PERF_DIR,
                            "--progress-file", PROGRESS_FILE, "--interval", "15"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert c["volumeMounts"] == [{"name": VOLUME_NAME, "mountPath": RUN_DIR, "readOnly": True}]
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert c["restartPolicy"] == "Always"  # a native sidecar: goes into initContainers
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and sc["readOnlyRootFilesystem"] is True
    assert "runAsUser" not in sc
    sc = sidecar.reporter_container("i", run_as_user=1000, run_as_group=100)["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (1000, 100, True)
    assert sidecar.reporter_container("i", run_as_user=0)["securityContext"]["runAsNonRoot"] is False
    with pytest.raises(ValueError):
        sidecar.reporter_container("i", 0)


def test_reporter_user_follows_the_training_container():
    def spec(pod_sc=None, sc=None):
        main = {"name": "mindspore", "image": "x", **({"securityContext": sc} if sc else {})}
        return {"containers": [{"name": "other", "image": "y", "securityContext": {"runAsUser": 5}}, main],
                **({"securityContext": pod_sc} if pod_sc else {})}

    assert sidecar.reporter_user(spec()) == (0, None)  # image's user, MindSpore's images: root
    assert sidecar.reporter_user(spec(pod_sc={"runAsUser": 1000, "runAsGroup": 100})) == (1000, 100)
    assert sidecar.reporter_user(spec(pod_sc={"runAsUser": 1000}, sc={"runAsUser": 2000})) == (2000, None)
    assert sidecar.reporter_user(spec(pod_sc={"runAsNonRoot": True})) == (None, None)


def test_run_volume_mount_and_env():
    assert sidecar.run_volume() == {"name": VOLUME_NAME, "emptyDir": {}}
    assert sidecar.run_mount() == {"name": VOLUME_NAME, "mountPath": RUN_DIR}
    env = {e["name"]: e["value"] for e in sidecar.perf_env()}
    assert env == {"PERF_DUMP_CONFIG": "enable:true,steptime:true,dtpGroup:false", "PERF_DUMP_PATH": PERF_DIR,
                   "MSJOB_PROGRESS_FILE": PROGRESS_FILE}
    assert PERF_DIR.startswith(RUN_DIR + "/") and PROGRESS_FILE.startswith(RUN_DIR + "/")


def test_health_package_imports_neither_kubernetes_nor_mindspore():
    import subprocess
    import sys

    code = ("import sys, msjob_operator.health.status, msjob_operator.health.perf, msjob_operator.health.sidecar, "
            "msjob_operator.health.rbac; print(sorted(m for m in ('kubernetes', 'mindspore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stall_startup_grace_replaces_the_timeout_before_the_first_step_only():
    stalled, wait, _ = status.stall_check(None, running_since=NOW, now=at(100), timeout_s=60, startup_s=300)
    assert not stalled and wait == 200  # compiling for 100 s is fine with 300 s of grace
    assert status.stall_check(None, running_since=NOW, now=at(301), timeout_s=60, startup_s=300)[0] is True
    # Once steps come, the stall timeout applies again.
    assert status.stall_check(progress_at(200), running_since=NOW, now=at(261), timeout_s=60, startup_s=300)[0] is True
