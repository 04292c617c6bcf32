"""In a rank-table pod: wait until the Ascend rank table (``hccl.json``) is complete.

    python -m msjob_runtime.ranktable_wait [--file F] [--timeout S]

The operator keeps HCCL's rank table in the ConfigMap ``<job>-ranktable``, mounted at
``MOUNT_DIR`` (a whole-directory mount, so the kubelet updates the file in place).  The table says
``"status": "initializing"`` until the device plugin has annotated every pod with ``ANNOTATION``
and the operator has gathered them, then ``"completed"``; a pod's entrypoint runs this before
MindSpore.  Exit 0 once completed, 1 after the timeout (the message says how far the table got).

The file's constants are defined here and used by the operator's builder (builders/ranktable.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Mapping, Optional

ANNOTATION = "ascend.kubectl.kubernetes.io/ascend-910-configuration"
MOUNT_DIR = "/etc/msjob/ranktable"
FILE_NAME = "hccl.json"
RANK_TABLE_FILE = f"{MOUNT_DIR}/{FILE_NAME}"
STATUS_INITIALIZING = "initializing"
STATUS_COMPLETED = "completed"
DEFAULT_WAIT_TIMEOUT = 900.0


class RankTableTimeout(TimeoutError):
    pass


def rank_count(table: Mapping) -> int:
    return sum(len(s.get("device") or []) for s in table.get("server_list") or [])


def read_rank_table(path: str) -> Optional[dict]:
    """The table in ``path``, or None when it is missing, empty or half-written."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wait_for_rank_table(path: str = RANK_TABLE_FILE, timeout: float = DEFAULT_WAIT_TIMEOUT,
                        interval: float = 1.0) -> dict:
    """Block until the table in ``path`` says ``completed`` and return it; ``RankTableTimeout`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Optional[dict] = None
    while True:
        last = read_rank_table(path)
        if last is not None and last.get("status") == STATUS_COMPLETED:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if last is None:
                state = "missing or not valid JSON"
            else:
                state = (f"status {last.get('status')!r}, {last.get('server_count', '?')} server(s), "
                         f"{rank_count(last)} rank(s) so far")
            raise RankTableTimeout(
                f"rank table {path} not completed after {timeout:g} s ({state}); the device plugin "
                f"has not annotated every pod with {ANNOTATION}, or the operator has not written the table")
        time.sleep(min(interval, remaining))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msjob_runtime.ranktable_wait",
                                     description="Block until the Ascend rank table's (hccl.json) status is "
                                                 "'completed'.")
    parser.add_argument("--file", default=os.environ.get("RANK_TABLE_FILE") or RANK_TABLE_FILE,
                        help="the rank table (default: $RANK_TABLE_FILE, else %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, help="seconds (default %(default)s)")
    parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        table = wait_for_rank_table(args.file, args.timeout, args.interval)
    except RankTableTimeout as e:
        print(f"msjob: {e}", file=sys.stderr)
        return 1
    print(f"msjob: rank table {args.file} completed: {table.get('server_count')} server(s), "
          f"{rank_count(table)} rank(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
