"""PNG bar charts of a run: one panel per metric, and the slowdown against native.

matplotlib is an optional dependency (the "bench" extra); without it the
charts are skipped with a message and the rest of the report is unaffected.
A failed target is drawn as the word "failed" where its bar would be.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.report import summary_rows

COLORS = {"native": "#4d4d4d", "kernel-overlayfs": "#2b7bba", "fuse-overlayfs": "#e08214",
          "sandboxfs": "#1a9850"}


def render(results: dict[str, Any], stem: Path) -> list[Path]:
    """Write STEM.png (per metric) and STEM-slowdown.png; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = results["meta"]
    targets: list[str] = meta["targets"]
    metrics: list[dict[str, Any]] = meta["metrics"]
    rows = {(r["metric"], r["target"]): r for r in summary_rows(results)}
    kind = "QUICK run" if meta.get("quick") else "full run"
    title = f"sandboxfs bench, {kind}, {meta.get('started', '')}: median, whiskers min–max"
    written = []

    cols = 4
    nrows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, m in zip(axes.flat, metrics, strict=False):
        heights, lows, highs = [], [], []
        for t in targets:
            r = rows[(m["id"], t)]
            med = r["median"] or 0.0
            heights.append(med)
            lows.append(med - r["min"] if not r["failed"] else 0.0)
            highs.append(r["max"] - med if not r["failed"] else 0.0)
        xs = range(len(targets))
        ax.bar(xs, heights, color=[COLORS.get(t, "#999999") for t in targets],
               yerr=[lows, highs], capsize=3)
        top = max(heights + [h + e for h, e in zip(heights, highs, strict=True)] + [1e-9])
        for x, t in zip(xs, targets, strict=True):
            if rows[(m["id"], t)]["failed"]:
                ax.text(x, top * 0.02, "failed", color="red", ha="center", va="bottom",
                        rotation=90, fontsize=9, fontweight="bold")
        better = "lower is better" if m["unit"] == "s" else "higher is better"
        ax.set_title(f"{m['label']}\n{m['unit']}, {better}", fontsize=9)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([t.replace("-", "-\n") for t in targets], fontsize=7)
        ax.set_ylim(0, top * 1.1)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = stem.with_suffix(".png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)

    others = [t for t in targets if t != "native"]
    if "native" in targets and others:
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(metrics) * len(others) / 2 + 1.5))
        height = 0.8 / len(others)
        for i, t in enumerate(others):
            ys, vals, failed_ys = [], [], []
            for j, m in enumerate(metrics):
                y = len(metrics) - 1 - j + (len(others) / 2 - i - 0.5) * height
                f = rows[(m["id"], t)]["slowdown_vs_native"]
                if f is None:
                    failed_ys.append(y)
                else:
                    ys.append(y)
                    vals.append(f)
            ax.barh(ys, vals, height=height, color=COLORS.get(t, "#999999"), label=t)
            for y in failed_ys:
                ax.text(1, y, " failed", color="red", va="center", fontsize=7)
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yticks(range(len(metrics)))
        ax.set_yticklabels([m["label"] for m in reversed(metrics)], fontsize=8)
        ax.set_xlabel("times slower than native (log scale; below 1 = faster)")
        ax.set_title(f"Slowdown against native, medians ({kind}, {meta.get('started', '')})",
                     fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path = stem.with_name(stem.name + "-slowdown.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
