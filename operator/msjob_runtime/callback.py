"""``ProgressCallback``: a MindSpore Callback that reports epoch, step and loss to the operator.

Optional: step times reach the operator without any change to the script (perf.py); add this
callback to also see the epoch and the loss in ``status.progress``::

    from msjob_runtime.callback import ProgressCallback

    model.train(epochs, dataset, callbacks=[ProgressCallback(every_n_steps=10), ...])

On a step end (every ``every_n_steps`` steps) and on every epoch end, rank 0 writes
``{"epoch": int, "step": int, "loss": float | null, "time": <Unix seconds>}`` atomically (a
temporary file renamed over the old one) to ``$MSJOB_PROGRESS_FILE`` (the operator sets it in
the training container; default ``PROGRESS_FILE``).  ``step`` is MindSpore's global step
(``cur_step_num``).  Other ranks write nothing.  A failure to write is logged once and never
stops the training.

MindSpore is imported when this module is, not when ``msjob_runtime`` is; without MindSpore the
class still imports (on a plain base class), which keeps the file logic testable.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Optional

from .progress import PROGRESS_FILE

try:  # pragma: no branch - depends on the environment
    from mindspore.train import Callback as _Base
except ImportError:  # MindSpore not installed: the module still imports
    _Base = object

ENV_PROGRESS_FILE = "MSJOB_PROGRESS_FILE"

log = logging.getLogger(__name__)


def progress_path() -> str:
    """Where the progress goes: ``$MSJOB_PROGRESS_FILE``, else ``PROGRESS_FILE``."""
    return os.environ.get(ENV_PROGRESS_FILE) or PROGRESS_FILE


def write_progress(path: str, record: dict) -> None:
    """Write ``record`` as JSON to ``path`` atomically: readers see the old or the new file, never half."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def loss_value(outputs: Any) -> Optional[float]:
    """The loss in a network's outputs: a Tensor, a number, or the first of a tuple
    (``TrainOneStepWithLossScaleCell`` returns ``(loss, overflow, scale)``); None if not finite."""
    if isinstance(outputs, (tuple, list)):
        if not outputs:
            return None
        outputs = outputs[0]
    if outputs is None or isinstance(outputs, bool):
        return None
    try:
        if hasattr(outputs, "asnumpy"):
            outputs = outputs.asnumpy()
        if hasattr(outputs, "size") and getattr(outputs, "size", 1) != 1:
            outputs = outputs.mean()
        value = float(outputs)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _rank() -> int:
    """This process's global rank: MindSpore's when its communication is initialised, else 0."""
    try:
        from mindspore.communication import get_rank
        return int(get_rank())
    except Exception:  # noqa: BLE001 - not distributed (or no MindSpore): a single process is rank 0
        return 0


class ProgressCallback(_Base):
    """Writes epoch, step and loss of rank 0 to the progress file read by the reporter sidecar.

    ``every_n_steps``: write on every n-th step (epoch ends are always written);
    ``path``: the file (default ``$MSJOB_PROGRESS_FILE``, else ``PROGRESS_FILE``).
    The rank is looked up at the first step, so the callback may be built before
    ``mindspore.communication.init()``.
    """

    def __init__(self, every_n_steps: int = 1, path: Optional[str] = None):
        super().__init__()
        if int(every_n_steps) < 1:
            raise ValueError(f"every_n_steps must be at least 1, not {every_n_steps}")
        self.every_n_steps = int(every_n_steps)
        self.path = path or progress_path()
        self._is_rank0: Optional[bool] = None
        self._failed = False

    def _should_write(self) -> bool:
        if self._is_rank0 is None:
            self._is_rank0 = _rank() == 0
        return self._is_rank0

    def _report(self, run_context: Any, force: bool) -> None:
        try:
            if not self._should_write():
                return
            params = run_context.original_args()
            step = int(getattr(params, "cur_step_num", 0) or 0)
            if not force and step % self.every_n_steps:
                return
            record = {
                "epoch": int(getattr(params, "cur_epoch_num", 0) or 0),
                "step": step,
                "loss": loss_value(getattr(params, "net_outputs", None)),
                "time": time.time(),
            }
            write_progress(self.path, record)
            self._failed = False
        except Exception as e:  # noqa: BLE001 - progress must never stop the training
            if not self._failed:
                log.warning("msjob: cannot write progress to %s: %s", self.path, e)
            self._failed = True

    # MindSpore 2.x callback hooks.
    def on_train_step_end(self, run_context: Any) -> None:
        self._report(run_context, force=False)

    def on_train_epoch_end(self, run_context: Any) -> None:
        self._report(run_context, force=True)
