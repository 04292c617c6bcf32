"""msjob_runtime.perf: MindSpore's step-time files, read incrementally."""

from __future__ import annotations

import os

import pytest

from msjob_runtime import perf

from .steptimes import HEADER, T0, steps, write


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
