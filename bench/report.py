"""From raw samples to the Markdown report: medians, ranges, ratios, failures, busy runs.

Works on the results document alone (what the JSON file holds), so a saved run
can be rendered again and the rendering can be tested without mounting
anything. A target/metric with no successful sample is shown as failed, with
its error in the failures list, never as a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.stats import Summary, describe_slowdown, ratio, slowdown, summarize

REFERENCES = ("native", "fuse-overlayfs")


@dataclass
class Cell:
    """One target on one metric: its summary over the successful runs and what went wrong."""

    metric: str
    target: str
    summary: Summary | None
    runs: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (run, error)
    busy_runs: list[int] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.summary is None


def aggregate(results: dict[str, Any]) -> dict[tuple[str, str], Cell]:
    """Group the samples by (metric, target) and summarize each group."""
    values: dict[tuple[str, str], list[float]] = {}
    cells: dict[tuple[str, str], Cell] = {}
    for m in results["meta"]["metrics"]:
        for t in results["meta"]["targets"]:
            values[(m["id"], t)] = []
            cells[(m["id"], t)] = Cell(m["id"], t, None)
    for s in results["samples"]:
        key = (s["metric"], s["target"])
        if key not in cells:
            continue
        cell = cells[key]
        cell.runs += 1
        if s["ok"] and s["value"] is not None:
            values[key].append(float(s["value"]))
        else:
            cell.errors.append((s["run"], s["error"] or "failed without a message"))
        if s.get("busy") and s["busy"].get("busy"):
            cell.busy_runs.append(s["run"])
        if s.get("note"):
            cell.notes.append((s["run"], s["note"]))
    for key, cell in cells.items():
        cell.summary = summarize(values[key])
    return cells


def fmt(value: float, unit: str) -> str:
    """Three significant figures for seconds, whole numbers for big throughputs."""
    if unit == "s":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per metric and target: median, range, ratios and failures, for the JSON and the charts."""
    cells = aggregate(results)
    rows = []
    for m in results["meta"]["metrics"]:
        better = "lower" if m["unit"] == "s" else "higher"
        for t in results["meta"]["targets"]:
            c = cells[(m["id"], t)]
            s = c.summary
            row: dict[str, Any] = {
                "metric": m["id"], "label": m["label"], "unit": m["unit"], "better": better,
                "target": t, "failed": c.failed, "runs": c.runs, "ok_runs": s.n if s else 0,
                "median": s.median if s else None, "min": s.low if s else None,
                "max": s.high if s else None, "errors": [e for _, e in c.errors],
                "busy_runs": c.busy_runs,
            }
            for ref in REFERENCES:
                rc = cells.get((m["id"], ref))
                ref_median = rc.summary.median if rc and rc.summary else None
                value = s.median if s else None
                row[f"ratio_to_{ref}"] = ratio(value, ref_median)
                row[f"slowdown_vs_{ref}"] = slowdown(value, ref_median, better)
            rows.append(row)
    return rows


def _cell_text(row: dict[str, Any], footnote: int | None) -> str:
    mark = f" [{footnote}]" if footnote else ""
    if row["failed"]:
        return f"**failed**{mark}"
    text = f"{fmt(row['median'], row['unit'])} ({fmt(row['min'], row['unit'])}–" \
           f"{fmt(row['max'], row['unit'])})"
    if row["ok_runs"] < row["runs"]:
        text += f", {row['ok_runs']}/{row['runs']} ok"
    return text + mark


def _header(meta: dict[str, Any]) -> list[str]:
    m = meta.get("machine", {})
    v = meta.get("versions", {})
    kind = "QUICK run" if meta.get("quick") else "full run"
    lines = [f"# sandboxfs bench: {kind}, {meta.get('started', '?')}", ""]
    if m:
        lines.append(f"- machine: {m.get('cpu_model')}, {m.get('cpu_count')} CPUs, "
                     f"{m.get('mem_gib')} GiB RAM; kernel {m.get('kernel')}")
    if v:
        lines.append("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    tree, scale = meta.get("tree"), meta.get("scale")
    if tree:
        lines.append(f"- tree: {tree['files']:,} files in {tree['dirs']:,} directories "
                     f"({tree['small_bytes'] / (1 << 20):.0f} MiB) + a "
                     f"{tree['big_size'] >> 20} MiB file, a git repository; seed {tree['seed']}")
    if scale:
        lines.append(f"- scale: W4 writes {scale['write_bytes'] >> 20} MiB, "
                     f"W5 {scale['creates']:,} files, W6 {scale['appends']:,} appends")
    lines.append(f"- {meta.get('runs', '?')} runs, targets interleaved; "
                 "each cell: median (min–max) over the runs")
    if meta.get("interrupted"):
        lines.append("- **interrupted**: the run was stopped before the end; figures are partial")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """The whole report: header, medians table, ratios table, failures, busy runs, notes."""
    meta = results["meta"]
    targets: list[str] = meta["targets"]
    rows = summary_rows(results)
    by_key = {(r["metric"], r["target"]): r for r in rows}
    cells = aggregate(results)
    footnotes: list[str] = []
    foot_of: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["metric"], r["target"])
        if cells[key].errors:
            errs = sorted({e for _, e in cells[key].errors})
            run_list = ",".join(str(n) for n, _ in cells[key].errors)
            footnotes.append(f"{r['target']} {r['metric']} (runs {run_list}): "
                             + " | ".join(errs))
            foot_of[key] = len(footnotes)

    out = _header(meta)
    out += ["", "## Medians", "",
            "Seconds: lower is better. MiB/s and ops/s: higher is better.", "",
            "| metric | unit | " + " | ".join(targets) + " |",
            "|---|---|" + "---|" * len(targets)]
    for m in meta["metrics"]:
        cols = [_cell_text(by_key[(m["id"], t)], foot_of.get((m["id"], t))) for t in targets]
        better = "s, lower is better" if m["unit"] == "s" else f"{m['unit']}, higher is better"
        out.append(f"| {m['label']} | {better} | " + " | ".join(cols) + " |")

    refs = [ref for ref in REFERENCES if ref in targets]
    if refs:
        out += ["", "## Ratios", "",
                "Each target's median against the reference's median, said as slower or "
                "faster whatever the unit (for throughputs, a lower figure is slower). "
                "The raw ratio (target ÷ reference of the figure itself) is in the JSON.", "",
                "| metric | target | " + " | ".join(f"vs {ref}" for ref in refs) + " | busy runs |",
                "|---|---|" + "---|" * (len(refs) + 1)]
        for m in meta["metrics"]:
            for t in targets:
                r = by_key[(m["id"], t)]
                if r["failed"]:
                    cols = ["failed"] * len(refs)
                else:
                    cols = ["–" if t == ref else describe_slowdown(r[f"slowdown_vs_{ref}"])
                            for ref in refs]
                busy_runs = ",".join(str(n) for n in r["busy_runs"]) or "–"
                out.append(f"| {m['label']} | {t} | " + " | ".join(cols) + f" | {busy_runs} |")

    if footnotes:
        out += ["", "## Failures", ""]
        out += [f"{i}. {text}" for i, text in enumerate(footnotes, 1)]

    busy_samples = [s for s in results["samples"] if s.get("busy") and s["busy"].get("busy")]
    out += ["", "## Other processes", ""]
    total = sum(1 for s in results["samples"] if s.get("busy"))
    out.append(f"{len(busy_samples)} of {total} timed steps ran while other processes used "
               "more than 10% of a CPU (those runs are listed in the ratios table).")
    for s in busy_samples[:20]:
        b = s["busy"]
        top = ", ".join(f"{c} {sec:.2f}s" for c, sec in b["top_foreign"])
        out.append(f"- run {s['run']} {s['target']} {s['metric']}: "
                   f"{b['foreign_cpu_s']:.2f} CPU-s of others in {b['wall_s']:.2f} s ({top})")
    if len(busy_samples) > 20:
        out.append(f"- … and {len(busy_samples) - 20} more (see the JSON)")

    notes = sorted({(s["target"], s["metric"], s["note"]) for s in results["samples"]
                    if s.get("note")})
    problems = meta.get("problems", [])
    if notes or problems:
        out += ["", "## Notes", ""]
        out += [f"- {t} {m}: {n}" for t, m, n in notes]
        out += [f"- {p}" for p in problems]
    out.append("")
    return "\n".join(out)
