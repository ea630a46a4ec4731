"""`python -m bench.idmap`: an id-mapped mount against a recursive chown.

A user-namespaced container needs its image owned by the host ids its
namespace maps to. The old way is `chown -R` of a copy of the image; an
id-mapped mount (`-o uidmapping=…,gidmapping=…`, sandboxfs/idmap.py) shifts
owners per reply instead. This measures, on the suite's cached trees (2,000
and 20,000 files; the 1 GiB file left out of the copies, as ownership does
not depend on size):

- **mount**: `sandboxfs none MNT -o lowerdir=TREE,uidmapping=…` until the
  command returns with the mount ready, plus one `stat` of a deep file
  through it (checked to show the mapped owner);
- **mount, no mapping**: the same without the options, for comparison;
- **chown -R**: of a copy of the tree to the same ids (each run to other
  ids than the last, so every inode really changes), with the copy's
  metadata in the page cache, and again after `drop_caches` (an image copy
  not touched lately; this machine's disk is a fast virtual one);
- **walk, mapped / plain**: `find -printf '%U'` of the whole mounted tree
  (every entry's owner through the mapping): what the mapping costs per entry.

Medians of `--runs` runs, written to `bench/results/idmap-STAMP.{json,md}`.
The claim under test: the mount time does not grow with the tree, the
chown does.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sysinfo import collect
from bench.tree import BIG_NAME, FULL_TREE, QUICK_TREE, TreeParams, build_tree

REPO = Path(__file__).resolve().parent.parent
HOST_BASE = 100_000  # the namespace's root on the host, as a runtime maps it
LENGTH = 65_536


def mapping_options(base: int) -> str:
    return f"uidmapping=0:{base}:{LENGTH},gidmapping=0:{base}:{LENGTH}"


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


class Bench:
    def __init__(self, sandboxfs: str, workdir: Path) -> None:
        self.sandboxfs = sandboxfs
        self.workdir = workdir
        self.mnt = workdir / "idmap-mnt"
        self.mnt.mkdir(parents=True, exist_ok=True)

    def mount(self, tree: Path, probe: str, options: str, want_uid: int) -> float:
        opts = f"lowerdir={tree}" + (f",{options}" if options else "")

        def step() -> None:
            run([self.sandboxfs, "bench-idmap", str(self.mnt), "-o", opts])
            uid = int(run(["stat", "-c", "%u", str(self.mnt / probe)]))
            if uid != want_uid:
                raise SystemExit(f"bench.idmap: {probe} shows uid {uid}, not {want_uid}")
        try:
            return timed(step)
        except BaseException:
            self.unmount()
            raise

    def walk(self) -> float:
        return timed(lambda: run(["find", str(self.mnt), "-printf", "%U\n"]))

    def unmount(self) -> None:
        subprocess.run([self.sandboxfs, "umount", str(self.mnt)], capture_output=True)

    def copy(self, tree: Path, dest: Path) -> None:
        if dest.exists():
            return
        tmp = dest.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(tree, tmp, symlinks=True,
                        ignore=lambda d, names: [BIG_NAME] if Path(d) == tree else [])
        tmp.rename(dest)


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def deepest_file(root: Path) -> str:
    files = [p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]
    return str(max(files, key=lambda p: (len(p.parts), str(p))).relative_to(root))


def measure(bench: Bench, params: TreeParams, runs: int) -> dict[str, Any]:
    tree = build_tree(params, bench.workdir / "trees").root
    copy = bench.workdir / "idmap-copies" / params.key()
    copy.parent.mkdir(parents=True, exist_ok=True)
    bench.copy(tree, copy)
    probe = deepest_file(tree)
    entries = sum(1 for _ in copy.rglob("*"))
    samples: dict[str, list[float]] = {"mount_mapped": [], "mount_plain": [], "chown": [],
                                       "chown_cold": [], "walk_mapped": [], "walk_plain": []}
    for i in range(runs):
        print(f"bench.idmap: {params.files} files, run {i + 1}/{runs}", file=sys.stderr)
        base = HOST_BASE + LENGTH * (i % 2 + 1)  # alternate, so every chown changes all
        samples["mount_mapped"].append(bench.mount(tree, probe, mapping_options(base), base))
        samples["walk_mapped"].append(bench.walk())
        bench.unmount()
        samples["mount_plain"].append(bench.mount(tree, probe, "", 0))
        samples["walk_plain"].append(bench.walk())
        bench.unmount()
        chown = ["chown", "-R", f"{base}:{base}", str(copy)]
        samples["chown"].append(timed(functools.partial(run, chown)))
        other = base + LENGTH * 3  # the cold run changes every inode again
        drop_caches()
        chown = ["chown", "-R", f"{other}:{other}", str(copy)]
        samples["chown_cold"].append(timed(functools.partial(run, chown)))
    return {"files": params.files, "entries": entries, "samples": samples,
            "median": {k: statistics.median(v) for k, v in samples.items()}}


def markdown(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    machine = info["machine"]
    lines = [
        "# Id-mapped mount against chown -R",
        "",
        f"{machine['cpu_count']} CPUs, kernel {machine['kernel']}; medians of "
        f"{len(results[0]['samples']['chown'])} runs, seconds.",
        "",
        "| tree | entries | mount, id-mapped | mount, no mapping | chown -R of a copy "
        "| chown -R, cold cache | walk, id-mapped | walk, no mapping |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["median"]
        lines.append(
            f"| {r['files']:,} files | {r['entries']:,} | {m['mount_mapped']:.3f} "
            f"| {m['mount_plain']:.3f} | {m['chown']:.3f} "
            f"| {m['chown_cold']:.3f} | {m['walk_mapped']:.3f} "
            f"| {m['walk_plain']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.idmap", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/sandboxfs-bench"))
    p.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--sandboxfs", default=str(REPO / ".venv" / "bin" / "sandboxfs"))
    args = p.parse_args(argv)
    bench = Bench(args.sandboxfs, args.workdir)
    bench.unmount()
    results = [measure(bench, params, args.runs) for params in (QUICK_TREE, FULL_TREE)]
    info = collect(REPO)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"idmap-{stamp}.json").write_text(
        json.dumps({"info": info, "results": results}, indent=2) + "\n")
    text = markdown(results, info)
    (args.results_dir / f"idmap-{stamp}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
