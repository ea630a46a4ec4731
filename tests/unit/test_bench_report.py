"""The bench's report: medians and ratios from samples, and a failed target shown as failed."""

from __future__ import annotations

from typing import Any

from bench.report import aggregate, render_markdown, summary_rows

TARGETS = ["native", "kernel-overlayfs", "fuse-overlayfs", "sandboxfs"]
METRICS = [{"id": "W1-cold", "label": "W1 walk+lstat, cold", "unit": "s"},
           {"id": "W3-cold", "label": "W3 dd big file, cold", "unit": "MiB/s"}]
VALUES = {"native": (1.0, 1000.0), "kernel-overlayfs": (1.5, 900.0),
          "fuse-overlayfs": (2.0, 500.0)}


def _sample(run: int, metric: str, target: str, value: float | None, error: str = "",
            busy: bool = False) -> dict[str, Any]:
    return {"run": run, "workload": metric[:2], "metric": metric, "unit": "s",
            "target": target, "ok": value is not None, "value": value, "error": error,
            "note": "", "busy": {"busy": busy, "foreign_cpu_s": 0.5 if busy else 0.0,
                                 "wall_s": 1.0, "top_foreign": [["cc1", 0.5]]}}


def _results() -> dict[str, Any]:
    samples = []
    for run in (1, 2, 3):
        for t, (secs, mibs) in VALUES.items():
            busy = run == 2 and t == "native"
            samples.append(_sample(run, "W1-cold", t, secs * run, busy=busy))
            samples.append(_sample(run, "W3-cold", t, mibs))
        for m in ("W1-cold", "W3-cold"):
            samples.append(_sample(run, m, "sandboxfs", None,
                                   error="mount failed: sandboxfs bench: exit 1: no gofer"))
    return {"meta": {"targets": TARGETS, "metrics": METRICS, "runs": 3, "quick": True,
                     "started": "2025-01-01 00:00:00 UTC"}, "samples": samples}


def test_aggregate_median_and_range() -> None:
    cells = aggregate(_results())
    s = cells[("W1-cold", "fuse-overlayfs")].summary
    assert s is not None and (s.median, s.low, s.high, s.n) == (4.0, 2.0, 6.0, 3)
    assert cells[("W1-cold", "native")].busy_runs == [2]


def test_failed_target_has_no_number() -> None:
    rows = {(r["metric"], r["target"]): r for r in summary_rows(_results())}
    failed = rows[("W1-cold", "sandboxfs")]
    assert failed["failed"] and failed["median"] is None
    assert failed["ratio_to_native"] is None and failed["ok_runs"] == 0
    assert "no gofer" in failed["errors"][0]
    ok = rows[("W3-cold", "fuse-overlayfs")]
    assert ok["ratio_to_native"] == 0.5 and ok["slowdown_vs_native"] == 2.0


def test_markdown_shows_failed_with_its_error() -> None:
    md = render_markdown(_results())
    line = next(ln for ln in md.splitlines() if ln.startswith("| W1 walk+lstat, cold | s"))
    assert line.rstrip().endswith("**failed** [1] |")
    assert "| 0.000" not in md and "| 0 |" not in md
    assert "1. sandboxfs W1-cold (runs 1,2,3): mount failed: sandboxfs bench: exit 1: no gofer" \
        in md
    assert "| W1 walk+lstat, cold | sandboxfs | failed | failed | – |" in md
    assert "| W3 dd big file, cold | fuse-overlayfs | 2.00× slower | – | – |" in md
    assert "QUICK run" in md
    assert "- run 2 native W1-cold: 0.50 CPU-s of others" in md


def test_partly_failed_cell_says_how_many_runs_counted() -> None:
    results = _results()
    results["samples"].append(_sample(4, "W3-cold", "native", None, error="timed out"))
    results["meta"]["runs"] = 4
    md = render_markdown(results)
    assert "1,000 (1,000–1,000), 3/4 ok [" in md
