"""Data-parallel training with MindSpore on an MSJob: the starting point for your own script.

Every member of the job runs this same command; the operator tells each process who it is
through the environment (MindSpore's "dynamic networking"):

    MS_ROLE         MS_SCHED (scheduler), MS_WORKER or MS_PSERVER
    MS_SCHED_HOST   the scheduler's IP (the scheduler Service's ClusterIP; the scheduler binds its pod IP)
    MS_SCHED_PORT   the scheduler's port
    MS_WORKER_NUM   number of workers (the data-parallel world size)
    MS_NODE_ID      the worker's index: with numeric ids, MindSpore's rank equals the index
    MS_TOPO_TIMEOUT seconds the processes have to find each other (spec.mindspore.clusterTimeoutSeconds)
    MSJOB_REPLICA_TYPE, MSJOB_REPLICA_INDEX   the member's place in the MSJob

``mindspore.communication.init()`` forms the cluster. In the scheduler it never returns: the
scheduler process serves the cluster and exits (0) once the workers are done. In a worker it
returns; ``get_rank()`` / ``get_group_size()`` then give the rank and the world size.

What the script does (a tiny linear regression, so it runs on CPU in seconds):

* one explicit AllReduce (each rank contributes ``rank + 1``), proof that collectives work
  between the pods;
* ``DATA_PARALLEL`` training with ``gradients_mean=True``: each rank trains on its shard of the
  data and gradients are averaged by AllReduce after every step; every rank starts from the
  same weights (same seed), so the ranks stay identical;
* with ``spec.health.reportProgress: true`` the operator asks worker 0 for its progress
  (``$MSJOB_PROGRESS_FILE``): the script then adds ``ProgressCallback``, so the job's
  ``status.progress`` carries the loss besides the step times (where the image has the
  ``msjob_operator`` package; without it the step times alone are reported);
* a checkpoint per epoch (``ModelCheckpoint``) in ``<ckpt-dir>/rank_<rank>/``. Put the
  directory on storage that outlives the pods (a hostPath or a PersistentVolumeClaim) when
  the operator may restart the job: after a restart, the ranks agree (AllReduce MIN) on the
  newest epoch that every rank has saved, load it and go on from there (the log says
  "resumed from ...").

Output (one line each, easy to grep): ``rank <r> of <n>``, ``allreduce check: ...``,
``step <g> epoch <e> loss <x>``, ``checkpoint saved: <file>``, ``resumed from <file>``,
``training finished: loss <first> -> <last>``.

Options (all have defaults):
    --epochs N              epochs to train (default 4)
    --steps-per-epoch N     steps per epoch and rank (default 8)
    --batch-size N          samples per step and rank (default 16)
    --lr X                  learning rate (default 0.05)
    --ckpt-dir DIR          checkpoint directory (default $MSJOB_CKPT_DIR, else ./checkpoints)
    --data-file FILE        train on FILE (.npz with arrays x [n, 4] and y [n, 1]) instead of
                            synthetic data; the script fails at once (exit 1) if it cannot read it
    --device CPU|GPU|Ascend target device (default CPU)
    --step-delay S          sleep S seconds after each step (makes a short run long enough to watch
                            or interrupt)
    --crash-at-step N       fault injection: the worker with rank --crash-rank (default 0) exits with
                            --crash-exit-code (default 3) when it reaches global step N
    --ps-linger-seconds S   a parameter server stays S seconds after joining (default 20): MindSpore 2.10
                            has no PS training, and a member leaving before the workers' first
                            collective makes it hang
    --hang-at-step N        fault injection: the worker with rank --crash-rank stops making progress
                            (sleeps, alive) at global step N, once: it leaves the marker file
                            hang-injected-rank-<r> in the checkpoint directory, and a restarted
                            run that finds it trains on (for stall detection, spec.health)

Run it locally without Kubernetes (three shells, same machine, each with
``export MS_SCHED_HOST=127.0.0.1 MS_SCHED_PORT=18118 MS_WORKER_NUM=2``):

    MS_ROLE=MS_SCHED python train_data_parallel.py
    MS_ROLE=MS_WORKER MS_NODE_ID=0 python train_data_parallel.py
    MS_ROLE=MS_WORKER MS_NODE_ID=1 python train_data_parallel.py
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import time
from typing import Any, Optional

FEATURES = 4
TRUE_WEIGHTS = [2.0, -3.0, 0.5, 1.0]
TRUE_BIAS = 0.7
CKPT_PREFIX = "linreg"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps-per-epoch", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--ckpt-dir", default=os.environ.get("MSJOB_CKPT_DIR", "./checkpoints"))
    parser.add_argument("--data-file")
    parser.add_argument("--device", default="CPU", choices=["CPU", "GPU", "Ascend"])
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--crash-at-step", type=int)
    parser.add_argument("--crash-rank", type=int, default=0)
    parser.add_argument("--crash-exit-code", type=int, default=3)
    parser.add_argument("--hang-at-step", type=int)
    parser.add_argument("--ps-linger-seconds", type=float, default=20.0)
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(message, flush=True)


def load_data(args: argparse.Namespace, import_numpy: Any) -> tuple[Any, Any]:
    """The training set, the same on every rank (each rank then reads its own shard)."""
    np = import_numpy
    if args.data_file:
        with np.load(args.data_file) as data:
            return data["x"].astype(np.float32), data["y"].astype(np.float32)
    samples = args.steps_per_epoch * args.batch_size * int(os.environ.get("MS_WORKER_NUM", "1"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, FEATURES)).astype(np.float32)
    y = (x @ np.array(TRUE_WEIGHTS, np.float32).reshape(FEATURES, 1) + TRUE_BIAS
         + 0.01 * rng.normal(size=(samples, 1))).astype(np.float32)
    return x, y


def checkpoints(directory: str) -> dict[int, str]:
    """{epoch: newest file} of the checkpoints in ``directory``."""
    found: dict[int, str] = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.ckpt")), key=os.path.getmtime):
        match = re.search(r"-(\d+)_(\d+)\.ckpt$", path)
        if match:
            found[int(match.group(1))] = path
    return found


def progress_callbacks() -> list[Any]:
    """The operator's ProgressCallback (epoch, step, loss into status.progress) where the operator asked for
    progress (spec.health.reportProgress sets MSJOB_PROGRESS_FILE in worker 0) and the image has it."""
    if not os.environ.get("MSJOB_PROGRESS_FILE"):
        return []
    try:
        from msjob_runtime.callback import ProgressCallback
    except ImportError:
        say("progress: msjob_runtime is not in this image; the operator sees step times but no loss")
        return []
    return [ProgressCallback(every_n_steps=1)]


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    role = os.environ.get("MS_ROLE", "MS_WORKER")
    index = os.environ.get("MSJOB_REPLICA_INDEX", os.environ.get("MS_NODE_ID", "?"))

    # Check inputs before the (slow) MindSpore import, so a mistake fails in a second with a clear
    # message: the operator puts the last lines of a failed pod's log into the job's status.
    if args.data_file and role != "MS_SCHED" and not os.access(args.data_file, os.R_OK):
        print(f"error: cannot read the training data {args.data_file!r}: no such file or not readable",
              file=sys.stderr, flush=True)
        return 1

    import mindspore as ms
    import numpy as np
    from mindspore import nn, ops
    from mindspore.communication import get_group_size, get_rank, init
    from mindspore.train import Callback, CheckpointConfig, LossMonitor, Model, ModelCheckpoint

    # Graph mode. (In PyNative mode with NumPy 2, MindSpore 2.10 workers exit 0 without unregistering:
    # the scheduler then waits ~30 s for their heartbeats and exits 1.)
    ms.set_context(mode=ms.GRAPH_MODE, device_target=args.device)
    say(f"{role} (replica index {index}) joining the cluster at "
        f"{os.environ.get('MS_SCHED_HOST')}:{os.environ.get('MS_SCHED_PORT')}")
    started = time.monotonic()
    init()  # the scheduler stays in here until the job is done, then its process exits
    rank, size = get_rank(), get_group_size()
    say(f"cluster formed in {time.monotonic() - started:.1f} s")
    if role == "MS_PSERVER":
        # MindSpore 2.10 has no parameter-server training API any more (it ended with 2.5):
        # the server joins the cluster in its role and stays a while: the workers' first collective
        # (gathering every host's name through the scheduler) hangs if a member has already left.
        say(f"parameter server joined the cluster (role {role}, server rank {rank})")
        time.sleep(args.ps_linger_seconds)
        return 0
    say(f"rank {rank} of {size} (MSJOB_REPLICA_INDEX={index})")

    # One explicit collective: proves that the ranks reach each other.
    total = ops.AllReduce()(ms.Tensor(np.array([rank + 1.0], np.float32))).asnumpy()[0]
    say(f"allreduce check: sum of (rank + 1) over {size} ranks = {total:g} (expected {size * (size + 1) / 2:g})")

    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    ms.set_seed(1)  # the same initial weights on every rank
    net = nn.Dense(FEATURES, 1)
    loss_fn = nn.MSELoss()
    optimizer = nn.SGD(net.trainable_params(), learning_rate=args.lr)

    # Resume: the newest epoch that every rank has a checkpoint of.
    rank_dir = os.path.join(args.ckpt_dir, f"rank_{rank}")
    os.makedirs(rank_dir, exist_ok=True)
    # (CPU collectives sum float32 only: each rank marks the epochs it has, the sum says which
    # epochs every rank has.)
    mine = checkpoints(rank_dir)
    have = np.array([1.0 if epoch in mine else 0.0 for epoch in range(args.epochs + 1)], np.float32)
    everyone = ops.AllReduce()(ms.Tensor(have)).asnumpy()
    common = [epoch for epoch in range(1, args.epochs + 1) if everyone[epoch] >= size]
    initial_epoch = 0
    if common:
        initial_epoch = common[-1]
        ms.load_param_into_net(net, ms.load_checkpoint(mine[initial_epoch]))
        say(f"resumed from {mine[initial_epoch]} (epoch {initial_epoch} of {args.epochs})")
    elif mine:
        say(f"not resuming: rank {rank} has checkpoints of epochs {sorted(mine)}, but no epoch is saved by every rank")

    x, y = load_data(args, np)
    dataset = ms.dataset.NumpySlicesDataset(
        {"x": x, "y": y}, shuffle=False, num_shards=size, shard_id=rank,
    ).batch(args.batch_size, drop_remainder=True)

    losses: list[float] = []

    class Progress(Callback):
        def on_train_step_end(self, run_context: Any) -> None:
            cb = run_context.original_args()
            outputs = cb.net_outputs
            loss = float(np.mean(outputs.asnumpy())) if hasattr(outputs, "asnumpy") else float(outputs)
            losses.append(loss)
            step = (cb.cur_epoch_num - 1) * cb.batch_num + (cb.cur_step_num - 1) % cb.batch_num + 1
            say(f"step {step} epoch {cb.cur_epoch_num} loss {loss:.6f}")
            if args.crash_at_step is not None and step >= args.crash_at_step and rank == args.crash_rank:
                say(f"fault injection: rank {rank} exits with code {args.crash_exit_code} at step {step}")
                os._exit(args.crash_exit_code)
            if args.hang_at_step is not None and step >= args.hang_at_step and rank == args.crash_rank:
                marker = os.path.join(args.ckpt_dir, f"hang-injected-rank-{rank}")
                if not os.path.exists(marker):
                    open(marker, "w").close()
                    say(f"fault injection: rank {rank} stops making progress at step {step}")
                    while True:  # alive but stuck, as on a dead file system or a lost peer
                        time.sleep(60)
            if args.step_delay:
                time.sleep(args.step_delay)

        def on_train_epoch_end(self, run_context: Any) -> None:
            cb = run_context.original_args()
            saved = checkpoints(rank_dir).get(cb.cur_epoch_num)
            if saved:
                say(f"checkpoint saved: {saved}")

    if initial_epoch >= args.epochs:
        # Restarted after the last epoch was saved (e.g. a peer failed at the very end): MindSpore refuses
        # to train zero epochs, and every rank knows it is done (the epochs saved by all were summed).
        say("training finished: nothing left to train")
        return 0
    steps = dataset.get_dataset_size()
    checkpoint = ModelCheckpoint(prefix=CKPT_PREFIX, directory=rank_dir,
                                 config=CheckpointConfig(save_checkpoint_steps=steps, keep_checkpoint_max=5))
    model = Model(net, loss_fn=loss_fn, optimizer=optimizer)
    say(f"training epochs {initial_epoch + 1}..{args.epochs}, {steps} steps per epoch on rank {rank}")
    model.train(args.epochs, dataset, callbacks=[checkpoint, Progress(), LossMonitor(steps), *progress_callbacks()],
                dataset_sink_mode=False, initial_epoch=initial_epoch)
    say(f"training finished: loss {losses[0]:.6f} -> {losses[-1]:.6f}" if losses else "training finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
