"""Step-time lines and files for the runtime's unit tests."""

from __future__ import annotations

import datetime as dt

T0 = 1_795_325_382_000  # ms
HEADER = "UUID:10.0.0.1_2222\nFRAMEWORK:MindSpore\nGLOBAL RANKID:0\n"
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def steps(n: int, start: int = 0, every_ms: int = 100, dur_ms: int = 80) -> str:
    return "".join(f"STEPTIME:{T0 + i * every_ms},{T0 + i * every_ms + dur_ms}\n" for i in range(start, start + n))


def write(path, text: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as f:
        f.write(text)
