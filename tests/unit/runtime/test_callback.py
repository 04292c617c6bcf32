"""msjob_runtime.callback: ProgressCallback without MindSpore's run loop (a fake run context)."""

from __future__ import annotations

import json
import os

import pytest

from msjob_runtime.callback import ProgressCallback, loss_value, write_progress
from msjob_runtime.progress import PROGRESS_FILE


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
