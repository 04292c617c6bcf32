"""Failure rules on a member's last output (``failurePolicy.rules[].onOutput``).

The pattern is RE2, the syntax the API server's CEL ``matches()`` checks at admission, matched
with RE2 here too: its time is linear in the pattern and the text (both bounded: 256 characters,
the last 2 KiB of output), so no pattern a user writes can stall a reconcile pass, as a
backtracking engine could (``(a+)+$``).  A pattern that does not compile (an object stored
before the CRD checked it) never matches.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # an invalid pattern is an answer (no match), not a line on stderr


@functools.lru_cache(maxsize=512)
def compiled(pattern: str) -> Optional[Any]:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error:
        return None


def valid(pattern: str) -> bool:
    return compiled(pattern) is not None


def output_matches(pattern: str, output: Optional[str]) -> bool:
    """Whether ``pattern`` is found anywhere in ``output`` (an absent output matches nothing)."""
    regex = compiled(pattern)
    return regex is not None and output is not None and regex.search(output) is not None
