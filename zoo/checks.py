"""Argument checks that raise one-line errors echoing what was received."""

from __future__ import annotations

import math

import numpy as np


def check_range(name: str, value, low=None, high=None, *, low_open=False, high_open=False) -> None:
    """Raises ValueError unless low ≤ value ≤ high (strict at an open end)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "inf)" if high is None else f"{high}" + (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo}, {hi}. Received: {name}={value!r}")


def check_int(name: str, value, low: int) -> None:
    """Raises ValueError unless value is an integer (not a bool) ≥ low."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")


def check_choice(name: str, value, choices) -> None:
    """Raises ValueError unless value is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}. Received: {name}={value!r}")
