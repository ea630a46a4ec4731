"""The bench's statistics: median and range, ratios, slowdowns, the busy rule."""

from __future__ import annotations

import pytest

from bench.busy import is_busy
from bench.stats import Summary, describe_slowdown, ratio, slowdown, summarize
from bench.workloads import Metric, MiB


def test_summary_of_odd_and_even_counts() -> None:
    assert summarize([3.0, 1.0, 2.0]) == Summary(2.0, 1.0, 3.0, 3)
    assert summarize([4.0, 1.0]) == Summary(2.5, 1.0, 4.0, 2)
    assert summarize([5.0]) == Summary(5.0, 5.0, 5.0, 1)


def test_nothing_to_summarize_is_none_not_zero() -> None:
    assert summarize([]) is None


def test_ratio() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_slowdown_reads_the_same_for_times_and_throughputs() -> None:
    assert slowdown(2.0, 1.0, "lower") == 2.0  # twice the time: 2x slower
    assert slowdown(50.0, 100.0, "higher") == 2.0  # half the throughput: 2x slower
    assert slowdown(200.0, 100.0, "higher") == 0.5
    assert slowdown(None, 1.0, "higher") is None


def test_describe_slowdown() -> None:
    assert describe_slowdown(2.0) == "2.00× slower"
    assert describe_slowdown(0.5) == "2.00× faster"
    assert describe_slowdown(25.0) == "25× slower"
    assert describe_slowdown(1.004) == "same"
    assert describe_slowdown(None) == "–"


def test_metric_values() -> None:
    assert Metric("W1-cold", "walk", "s").value(0.5, 1000) == 0.5
    assert Metric("W3-cold", "dd", "MiB/s").value(2.0, 512 * MiB) == pytest.approx(256.0)
    assert Metric("W5-create", "create", "ops/s").value(0.5, 1000) == 2000.0
    assert Metric("W3-cold", "dd", "MiB/s").better == "higher"


def test_busy_rule() -> None:
    assert not is_busy(0.01, 0.05)  # too little to matter
    assert not is_busy(0.2, 10.0)  # 2% of a CPU
    assert is_busy(0.2, 1.0)  # 20% of a CPU
