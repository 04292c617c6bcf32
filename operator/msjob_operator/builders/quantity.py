"""Kubernetes resource quantities: just enough to add up pod requests for a gang's minResources."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_SUFFIXES = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|([a-zA-Z]*))$")


def parse(value: object) -> Decimal:
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match or (match.group(3) or "") not in _SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number = Decimal(match.group(1))
    if match.group(2):
        return number * (Decimal(10) ** int(match.group(2)[1:]))
    return number * Decimal(str(_SUFFIXES[match.group(3) or ""]))


def format(value: Decimal) -> str:
    """Whole numbers as integers, fractions in milli-units (e.g. CPU '1500m')."""
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int((value * 1000).to_integral_value(rounding='ROUND_CEILING'))}m"


def add(totals: dict[str, Decimal], resources: dict[str, Any]) -> None:
    for name, value in (resources or {}).items():
        totals[name] = totals.get(name, Decimal(0)) + parse(value)
