"""The agent's console: the supervised process's output passed through, and the agent's own lines.

The process's stdout and stderr are pipes; a thread copies every chunk, as it comes, to
the agent's own stdout or stderr (so ``kubectl logs`` shows it) and into ``OutputTail``, the last
bytes kept for the report's ``output``.  The agent's own lines go to stderr through the same lock
and always start on a line of their own (after a newline when the process left a line unfinished),
so the event lines stay greppable even when the process writes partial lines or the two streams
end up in one file.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from typing import Dict

from .agent_protocol import LOG_PREFIX, OUTPUT_BYTES, OUTPUT_LINES

KEEP_BYTES = 16 * 1024  # enough for OUTPUT_LINES short lines; the report takes at most OUTPUT_BYTES
READ_CHUNK = 64 * 1024


def _write_all(fd: int, data: bytes) -> None:
    """Write everything, ignoring a closed or broken stream (the agent must go on supervising)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return
        view = view[n:]


class Console:
    """stdout and stderr of the agent, shared by the output threads and the agent's log lines."""

    def __init__(self, out_fd: int = 1, err_fd: int = 2):
        self.out_fd, self.err_fd = out_fd, err_fd
        self._lock = threading.Lock()
        self._mid_line = False

    def passthrough(self, fd: int, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            _write_all(fd, data)
            self._mid_line = not data.endswith(b"\n")

    def line(self, text: str) -> None:
        """One line of the agent's own, on stderr."""
        data = text.rstrip("\n").encode("utf-8", "replace") + b"\n"
        with self._lock:
            _write_all(self.err_fd, (b"\n" if self._mid_line else b"") + data)
            self._mid_line = False


class ConsoleHandler(logging.Handler):
    """``logging`` into ``Console.line``: ``msjob-agent: <message>``."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.line(f"{LOG_PREFIX} {self.format(record)}")
        except Exception:  # noqa: BLE001 - logging must never break the agent
            self.handleError(record)


class OutputTail:
    """The last ``KEEP_BYTES`` of the process's output (both streams, in arrival order)."""

    def __init__(self, keep: int = KEEP_BYTES):
        self.keep = keep
        self._data = bytearray()
        self._cut = False  # the oldest bytes were dropped: the first line kept is partial
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._data += data
            if len(self._data) > self.keep:
                del self._data[:len(self._data) - self.keep]
                self._cut = True

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._cut = False

    def text(self, lines: int = OUTPUT_LINES, limit: int = OUTPUT_BYTES) -> str:
        """The last ``lines`` lines, at most ``limit`` bytes (cut at a line start when one is in
        reach, else in the middle of the line), decoded leniently."""
        with self._lock:
            data = bytes(self._data)
            if self._cut and b"\n" in data.rstrip(b"\n"):
                data = data[data.index(b"\n") + 1:]
        kept = b"\n".join(data.rstrip(b"\n").split(b"\n")[-lines:])
        if len(kept) > limit:
            kept = kept[-limit:]
            newline = kept.find(b"\n")
            if 0 <= newline < len(kept) - 1:
                kept = kept[newline + 1:]
        return kept.decode("utf-8", "replace")


class Tee(threading.Thread):
    """Copies the process's pipes (``{pipe fd: console fd}``, stdout first) to the console and
    into the tail until EOF on all (when every process holding a write end is gone).  One thread
    for both, reading whichever is ready, stdout first when both are: what was written in order
    across the two pipes is kept in order as far as the pipes allow."""

    def __init__(self, pipes: Dict[int, int], console: Console, tail: OutputTail, name: str):
        super().__init__(name=name, daemon=True)
        self.pipes, self.console, self.tail = dict(pipes), console, tail

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        order = list(self.pipes)
        for pipe_fd in order:
            selector.register(pipe_fd, selectors.EVENT_READ)
        try:
            while selector.get_map():
                ready = {key.fd for key, _ in selector.select()}
                for pipe_fd in [fd for fd in order if fd in ready]:
                    try:
                        data = os.read(pipe_fd, READ_CHUNK)
                    except InterruptedError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        selector.unregister(pipe_fd)
                        continue
                    self.tail.add(data)
                    self.console.passthrough(self.pipes[pipe_fd], data)
        finally:
            selector.close()
            for pipe_fd in order:
                try:
                    os.close(pipe_fd)
                except OSError:
                    pass
