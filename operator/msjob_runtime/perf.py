"""MindSpore's step-time files (``PERF_DUMP_CONFIG`` / ``PERF_DUMP_PATH``): steps, step time, throughput.

With ``PERF_DUMP_CONFIG="enable:true,steptime:true,dtpGroup:false"`` and ``PERF_DUMP_PATH=DIR`` (the
env the operator gives worker 0), ``Model.train`` appends its ``ClusterMonitor`` callback, which writes
``DIR/perf_ms_<pid>_<localrank>.log``: a header (``UUID:``, ``FRAMEWORK:``, ``GLOBAL RANKID:``)
and then one line per step (per sink of ``sink_size`` steps in dataset sink mode)::

    STEPTIME:<start_ms>,<end_ms>

with Unix times in milliseconds.  Observed with MindSpore 2.10: all three keys are required
(without ``dtpGroup`` ``Model.train`` raises a TypeError before the first step); the directory
is created mode 0700 and each file is chmod 0400 after every write, so only the training
process's own user (or root with CAP_DAC_OVERRIDE) can read them; a new ``Model.train`` in the
same process removes the earlier files of its local rank and starts a new one.

Several files are several local ranks (several processes per pod, as with msrun); the file of
the lowest local rank (rank 0's in pod 0) is the reference.  ``PerfReader`` reads incrementally:
it remembers how far it has read, so a long run is not re-read at every poll; a partly written
last line is left for the next read.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

STEP_PREFIX = b"STEPTIME:"
FILE_PATTERN = re.compile(r"^perf_ms_(\d+)_(\d+)\.log$")
WINDOW = 20  # steps over which steps_per_second is measured
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PerfSummary:
    """What the step times say so far.

    ``steps``: STEPTIME lines seen (a file replaced by a new ``Model.train`` adds to the count);
    ``last_step_ms``: duration of the last step; ``steps_per_second``: over the last (up to)
    ``WINDOW`` steps, from the start of the first to the end of the last, so time between steps
    (data loading) counts, None when that span is 0 ms; ``last_end_ms``: Unix time (ms) at which
    the last step ended, the heartbeat.
    """

    steps: int
    last_step_ms: Optional[float]
    steps_per_second: Optional[float]
    last_end_ms: Optional[int]


def parse_step_line(line: bytes | str) -> Optional[tuple[int, int]]:
    """``(start_ms, end_ms)`` of a ``STEPTIME:<start>,<end>`` line; None for any other line."""
    if isinstance(line, str):
        line = line.encode("utf-8", "replace")
    line = line.strip()
    if not line.startswith(STEP_PREFIX):
        return None
    start, sep, end = line[len(STEP_PREFIX):].partition(b",")
    if not sep or not start.strip().isdigit() or not end.strip().isdigit():
        return None
    start_ms, end_ms = int(start), int(end)
    return (start_ms, end_ms) if end_ms >= start_ms else None


def summarize(steps: int, recent: Sequence[tuple[int, int]]) -> Optional[PerfSummary]:
    """The summary of ``steps`` steps whose last (up to ``WINDOW``) are ``recent``, oldest first."""
    if steps <= 0 or not recent:
        return None
    window = list(recent)[-WINDOW:]
    start, end = window[-1]
    span_ms = end - window[0][0]
    rate = len(window) * 1000.0 / span_ms if span_ms > 0 else None
    return PerfSummary(steps=steps, last_step_ms=float(end - start), steps_per_second=rate, last_end_ms=end)


def parse_lines(lines: Iterable[bytes | str]) -> Optional[PerfSummary]:
    """Summary of a whole file's lines (other lines ignored); None without a step."""
    recent: deque[tuple[int, int]] = deque(maxlen=WINDOW)
    steps = 0
    for line in lines:
        step = parse_step_line(line)
        if step is not None:
            steps += 1
            recent.append(step)
    return summarize(steps, recent)


def perf_files(directory: str | os.PathLike) -> list[tuple[int, int, Path]]:
    """``(localrank, pid, path)`` of the perf files in ``directory``, lowest local rank first.

    Empty when the directory does not exist; PermissionError when it cannot be listed.
    """
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        m = FILE_PATTERN.match(name)
        if m:
            found.append((int(m.group(2)), int(m.group(1)), Path(directory, name)))
    return sorted(found)


def reference_file(directory: str | os.PathLike) -> Optional[Path]:
    """The file of the lowest local rank; of several (several processes), the last modified."""
    files = perf_files(directory)
    if not files:
        return None
    lowest = [path for rank, _, path in files if rank == files[0][0]]
    if len(lowest) == 1:
        return lowest[0]

    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return -1.0

    return max(lowest, key=lambda p: (mtime(p), p.name))


class PerfReader:
    """Incremental reader of a perf directory's reference file.

    ``read()`` returns the summary so far (None until the first step).  Only bytes appended since
    the last call are read; a file that is replaced (new name, new inode, or shorter than what was
    read) is read from its start and its steps are added to the earlier ones.  A reference file
    that vanishes keeps the last summary.  PermissionError is raised when the directory or file is
    not readable (run the reader as the training process's user).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._path: Optional[Path] = None
        self._ident: Optional[tuple[int, int]] = None  # (st_dev, st_ino) of the file being read
        self._offset = 0
        self._base_steps = 0  # steps of files read before the current one
        self._steps = 0  # steps of the current file
        self._recent: deque[tuple[int, int]] = deque(maxlen=WINDOW)

    @property
    def path(self) -> Optional[Path]:
        """The file being read."""
        return self._path

    def summary(self) -> Optional[PerfSummary]:
        return summarize(self._base_steps + self._steps, self._recent)

    def read(self) -> Optional[PerfSummary]:
        path = reference_file(self.directory)
        if path is None:
            return self.summary()
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                ident = (st.st_dev, st.st_ino)
                if path != self._path or ident != self._ident or st.st_size < self._offset:
                    self._switch(path, ident)
                if st.st_size > self._offset:
                    f.seek(self._offset)
                    self._consume(f)
        except FileNotFoundError:  # replaced between listing and opening: next time
            pass
        return self.summary()

    def _switch(self, path: Path, ident: tuple[int, int]) -> None:
        self._base_steps += self._steps
        self._steps = 0
        self._offset = 0
        self._path, self._ident = path, ident

    def _consume(self, f) -> None:
        pending = b""
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            data = pending + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            for line in data[:cut].split(b"\n"):
                step = parse_step_line(line)
                if step is not None:
                    self._steps += 1
                    self._recent.append(step)
            self._offset += cut + 1
            pending = data[cut + 1:]
        # ``pending`` is a line still being written: read again next time from self._offset.


def read_perf_dir(directory: str | os.PathLike) -> Optional[PerfSummary]:
    """One-shot summary of a perf directory (its reference file); None without a step."""
    return PerfReader(directory).read()
