"""`python -m bench`: build the tree, run the workloads on the targets, write the report.

Everything mounted is unmounted on the way out, also on an error, Ctrl-C or
SIGTERM; an interrupted run still writes what it measured, marked as such.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from bench import busy, report
from bench.profile import Profiler
from bench.progress import Progress
from bench.runner import Runner
from bench.sysinfo import collect
from bench.targets import TARGET_NAMES, Layout, clean_workdir, expose_lower, make_targets
from bench.tree import FULL_TREE, QUICK_TREE, build_tree, pick_files
from bench.workloads import FULL_SCALE, QUICK_SCALE, STEP_TIMEOUT_S, WORKLOAD_IDS, WORKLOADS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SANDBOXFS = str(REPO / ".venv" / "bin" / "sandboxfs")


def _names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return [n for n in allowed if n in names]  # canonical order


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="a small tree (2,000 files, 150 dirs, 64 MiB file): a few minutes")
    p.add_argument("--runs", type=int, default=3, help="runs of every workload (default 3)")
    p.add_argument("--targets", type=lambda s: _names(s, TARGET_NAMES, "target"),
                   default=list(TARGET_NAMES), help="comma list of: " + ",".join(TARGET_NAMES))
    p.add_argument("--workloads", type=lambda s: _names(s, WORKLOAD_IDS, "workload"),
                   default=list(WORKLOAD_IDS), help="comma list of: " + ",".join(WORKLOAD_IDS))
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/sandboxfs-bench"),
                   help="cached trees and mount points (default /var/tmp/sandboxfs-bench)")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                   help="where the JSON, Markdown and PNG go (default bench/results)")
    p.add_argument("--sandboxfs", default=DEFAULT_SANDBOXFS, help="the sandboxfs command")
    p.add_argument("--timeout", type=float, default=STEP_TIMEOUT_S,
                   help=f"seconds before a step is killed and failed (default {STEP_TIMEOUT_S})")
    p.add_argument("--quiet-wait", type=float, default=5.0, metavar="SECONDS",
                   help="before each step, wait up to this long for other processes to calm "
                        "down (default 5; 0: never wait)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="attach py-spy to sandboxfs's daemon and gofer during each sandboxfs "
                        "step; summaries (and raw stacks under DIR/raw) go to DIR. Distorts "
                        "the timings: for profiles, not figures")
    p.add_argument("--render", type=Path, metavar="RESULTS.json",
                   help="only render the Markdown and charts of a saved results file")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def write_outputs(results: dict[str, Any], stem: Path, progress: Progress) -> str:
    """JSON (unless rendering a saved one), Markdown and charts; returns the Markdown."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    if not json_path.exists():
        results["summary"] = report.summary_rows(results)
        json_path.write_text(json.dumps(results, indent=1) + "\n")
    md = report.render_markdown(results)
    stem.with_suffix(".md").write_text(md)
    try:
        from bench import charts

        charts.render(results, stem)
    except ImportError:
        progress.message("bench: matplotlib is not installed (pip install -e '.[bench]'): "
                         "no charts")
    return md


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress()
    if args.render:
        results = json.loads(args.render.read_text())
        print(write_outputs(results, args.render.with_suffix(""), progress))
        return 0
    if os.geteuid() != 0:
        print("bench: needs root (mounts, drop_caches)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    busy.become_subreaper()
    params = QUICK_TREE if args.quick else FULL_TREE
    scale = QUICK_SCALE if args.quick else FULL_SCALE
    workdir: Path = args.workdir.resolve()
    tree = build_tree(params, workdir / "trees")
    layout = Layout.under(workdir, tree.root, args.sandboxfs)
    targets = make_targets(args.targets, layout)
    workloads = [w for w in WORKLOADS if w.id in args.workloads]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    stem = args.results_dir / (time.strftime("%Y%m%d-%H%M%S")
                               + ("-quick" if args.quick else ""))
    meta: dict[str, Any] = {
        "started": started,
        "quick": args.quick,
        "runs": args.runs,
        "argv": sys.argv,
        **collect(REPO),
        "tree": {**asdict(params), "key": params.key(), "path": str(tree.root),
                 "entries": tree.entries, "small_bytes": tree.manifest.small_bytes,
                 "git_head": tree.git_head},
        "scale": asdict(scale),
        "targets": [t.name for t in targets],
        "workloads": [{"id": w.id, "title": w.title, "writes": w.writes} for w in workloads],
        "metrics": [{"id": s.metric.id, "label": s.metric.label, "unit": s.metric.unit,
                     "better": s.metric.better, "cold": s.cold}
                    for w in workloads for s in w.steps],
        "layout": {"lower": f"{layout.lower} (read-only bind of {layout.tree})",
                   "mnt": str(layout.mnt), "upper": f"{layout.upper} (tmpfs)"},
        "mount_commands": {t.name: t.describe() for t in targets},
        "busy_rule": f"flagged when other processes used > {busy.BUSY_SHARE:.0%} of one CPU "
                     f"over the step and > {busy.MIN_FOREIGN_S} CPU-s; before each step the "
                     f"bench waited up to {args.quiet_wait:g} s for a quiet moment",
    }
    profiler = None
    if args.profile is not None:
        profiler = Profiler(args.profile.resolve(), args.sandboxfs, layout.mnt, layout.lower,
                            args.runs)
        why = profiler.available()
        if why:
            print(f"bench: --profile: {why}", file=sys.stderr)
            return 2
        meta["profiled"] = (f"py-spy attached to sandboxfs's daemon and gofer: the sandboxfs "
                            f"figures of this run are distorted; profiles in {args.profile}")
    runner = Runner(layout, targets, workloads, tree, scale, args.runs,
                    tuple(pick_files(tree.manifest, scale.appends)), args.timeout,
                    args.quiet_wait, on_progress=progress, profiler=profiler)
    status = 0
    try:
        for problem in clean_workdir(layout):
            progress.message(f"bench: cleaning a previous run: {problem}")
        expose_lower(layout)
        runner.run_all()
    except KeyboardInterrupt:
        meta["interrupted"] = True
        progress.message("bench: interrupted; unmounting and writing what was measured")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        leftovers = clean_workdir(layout)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    meta["problems"] = runner.problems + leftovers
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results = {"meta": meta, "samples": runner.samples}
    md = write_outputs(results, stem, progress)
    print(md)
    print(f"bench: results in {stem}.json, .md, .png", file=sys.stderr)
    if profiler is not None:
        for path in profiler.written:
            print(f"bench: profile {path}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
