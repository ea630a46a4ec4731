"""Median, range and ratios of samples: pure functions so the report can be tested."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """What the report shows of one target on one metric: the centre and the spread."""

    median: float
    low: float
    high: float
    n: int


def summarize(values: Sequence[float]) -> Summary | None:
    """Median and min-max of `values`; None when there is nothing to summarize.

    None (not zero) so a target with no successful sample can never be read as
    infinitely fast or slow.
    """
    if not values:
        return None
    return Summary(statistics.median(values), min(values), max(values), len(values))


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def slowdown(value: float | None, reference: float | None, better: str) -> float | None:
    """How many times slower than the reference (above 1) or faster (below 1).

    `better` is "lower" for times and "higher" for throughputs, so one number
    reads the same way on every row.
    """
    r = ratio(value, reference)
    if r is None:
        return None
    if better == "lower":
        return r
    return None if r == 0 else 1 / r


def describe_slowdown(factor: float | None) -> str:
    """'3.1× slower', '1.2× faster', 'same' (within 1%) or '–' when unknown."""
    if factor is None:
        return "–"
    if abs(factor - 1) < 0.01:
        return "same"
    if factor > 1:
        return f"{factor:.2f}× slower" if factor < 10 else f"{factor:.0f}× slower"
    inv = 1 / factor
    return f"{inv:.2f}× faster" if inv < 10 else f"{inv:.0f}× faster"
