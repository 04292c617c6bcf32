"""Real MindSpore 2.10 writes what the health reporter reads: step-time files (PERF_DUMP_*, the env
``sidecar.perf_env()`` gives the training container) and ProgressCallback's progress file.

One single-process ``Model.train`` on CPU (no cluster, no distribution), run as a subprocess.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

from msjob_operator.builders import reporter as sidecar
from msjob_operator.reconcile import stall_clock as status
from msjob_runtime import perf, reporter
from msjob_runtime.progress import read_progress

EPOCHS, STEPS_PER_EPOCH = 2, 5

SCRIPT = textwrap.dedent(f"""
    import os
    import numpy as np
    import mindspore as ms
    from mindspore import dataset as ds, nn
    from mindspore.train import Model
    from msjob_runtime.callback import ProgressCallback

    ms.set_device("CPU")
    ms.set_seed(1)
    x = np.random.default_rng(0).normal(size=({STEPS_PER_EPOCH} * 8, 4)).astype(np.float32)
    y = (x @ np.array([[2.0], [-3.0], [0.5], [1.0]], dtype=np.float32) + 0.7).astype(np.float32)
    data = ds.NumpySlicesDataset({{"x": x, "y": y}}, shuffle=False).batch(8)
    net = nn.Dense(4, 1)
    model = Model(net, nn.MSELoss(), nn.SGD(net.trainable_params(), 0.05))

    # The value of the contract note, without dtpGroup: MindSpore 2.10 refuses it.
    ours = os.environ["PERF_DUMP_CONFIG"]
    os.environ["PERF_DUMP_CONFIG"] = "enable:true,steptime:true"
    try:
        model.train(1, data, dataset_sink_mode=False)
    except TypeError as e:
        print("WITHOUT_DTPGROUP:", e, flush=True)
    os.environ["PERF_DUMP_CONFIG"] = ours

    model.train({EPOCHS}, data, callbacks=[ProgressCallback(every_n_steps=2)], dataset_sink_mode=False)
    print("TRAINED", flush=True)
""")


def test_perf_dump_and_progress_callback(tmp_path, mindspore_installed):
    env = {e["name"]: e["value"] for e in sidecar.perf_env()}
    perf_dir, progress_file = tmp_path / "run" / "perf", tmp_path / "run" / "progress.json"
    env["PERF_DUMP_PATH"], env["MSJOB_PROGRESS_FILE"] = str(perf_dir), str(progress_file)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    started = datetime.now(timezone.utc)
    proc = subprocess.run([sys.executable, str(script)], env={**os.environ, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "TRAINED" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "WITHOUT_DTPGROUP:" in proc.stdout and "dtp" in proc.stdout, proc.stdout

    # Step times: one STEPTIME line per step of the run, in the file of local rank 0.
    files = perf.perf_files(perf_dir)
    assert [(rank, path.name) for rank, _, path in files] == [(0, f"perf_ms_{files[0][1]}_0.log")], files
    text = files[0][2].read_text()
    assert text.startswith("UUID:") and "GLOBAL RANKID:0" in text
    summary = perf.read_perf_dir(perf_dir)
    total = EPOCHS * STEPS_PER_EPOCH
    assert summary.steps == total, text
    assert summary.last_step_ms is not None and summary.last_step_ms >= 0
    assert started.timestamp() * 1000 - 1000 <= summary.last_end_ms <= datetime.now(timezone.utc).timestamp() * 1000
    # Observed permissions, why the reporter must run as the training container's user.
    assert stat.S_IMODE(perf_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0][2].stat().st_mode) == 0o400

    # The callback: the last step (an epoch end), its epoch and a finite loss.
    record = json.loads(progress_file.read_text())
    assert record["step"] == total and record["epoch"] == EPOCHS, record
    assert isinstance(record["loss"], float) and record["loss"] >= 0, record
    assert record["time"] * 1000 >= summary.last_end_ms - 1000
    assert sorted(p.name for p in progress_file.parent.iterdir()) == ["perf", "progress.json"]  # no temp files

    # What the reporter makes of both, and what the operator reads back.
    progress = reporter.build_progress(summary, reporter.load_progress_file(str(progress_file)),
                                       datetime.now(timezone.utc))
    assert progress["step"] == total and progress["epoch"] == EPOCHS and progress["loss"] == record["loss"]
    pod = {"metadata": reporter.annotation_patch(progress)["metadata"]}
    assert read_progress(pod) == progress
    stalled, wait, _ = status.stall_check(progress, running_since=started, now=datetime.now(timezone.utc),
                                          timeout_s=600)
    assert not stalled and wait > 500
