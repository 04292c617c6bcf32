"""msjob_runtime.ranktable_wait: a rank-table pod waits for hccl.json to say "completed"."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from msjob_runtime import ranktable_wait as rt


def test_wait_returns_once_completed(tmp_path):
    path = tmp_path / "hccl.json"
    path.write_text(json.dumps({"status": "initializing", "server_list": []}))

    def complete():
        time.sleep(0.3)
        path.write_text(json.dumps({"status": "completed", "server_count": "1", "server_list": []}))
    t = threading.Thread(target=complete)
    t.start()
    table = rt.wait_for_rank_table(str(path), timeout=60, interval=0.05)  # raises on timeout
    t.join()
    assert table["status"] == "completed"


def test_wait_times_out_with_a_clear_message(tmp_path):
    path = tmp_path / "hccl.json"
    # What the operator writes while one of two pods has reported (builders/ranktable.py).
    path.write_text(json.dumps({"status": "initializing", "version": "1.0", "server_count": "1", "server_list": [
        {"server_id": "10.0.0.1", "host_nic_ip": "reserve", "device": [
            {"device_id": "0", "device_ip": "192.168.1.0", "rank_id": "0"},
            {"device_id": "1", "device_ip": "192.168.1.1", "rank_id": "1"}]}]}))
    expected = r"not completed after 0.2 s \(status 'initializing', 1 server\(s\), 2 rank"
    with pytest.raises(rt.RankTableTimeout, match=expected):
        rt.wait_for_rank_table(str(path), timeout=0.2, interval=0.05)
    with pytest.raises(rt.RankTableTimeout, match="missing or not valid JSON"):
        rt.wait_for_rank_table(str(tmp_path / "absent.json"), timeout=0.1, interval=0.05)


def test_wait_entry_point(tmp_path):
    path = tmp_path / "hccl.json"
    path.write_text(json.dumps({"status": "initializing"}))
    cmd = [sys.executable, "-m", "msjob_runtime.ranktable_wait", "--file", str(path), "--timeout", "0.3"]
    failed = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "not completed after 0.3 s" in failed.stderr and str(path) in failed.stderr

    path.write_text(json.dumps({"status": "completed", "server_count": "1",
                                "server_list": [{"device": [{"device_id": "0"}]}]}))
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "completed: 1 server(s), 1 rank(s)" in ok.stderr


def test_the_file_defaults_to_rank_table_file_from_the_env(tmp_path, monkeypatch, capsys):
    assert rt.RANK_TABLE_FILE == "/etc/msjob/ranktable/hccl.json"  # where the operator mounts it
    path = tmp_path / "hccl.json"
    path.write_text(json.dumps({"status": "completed", "server_count": "0", "server_list": []}))
    monkeypatch.setenv("RANK_TABLE_FILE", str(path))  # the operator's rank_env sets it
    assert rt.main(["--timeout", "1"]) == 0
    assert f"rank table {path} completed: 0 server(s), 0 rank(s)" in capsys.readouterr().err
