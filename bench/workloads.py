"""The workloads W1..W8: small functions, each timing only its own work.

Each step returns how long it took and how much it did (entries, bytes or
operations); the metric says how that becomes the reported figure. A step
checks what it saw against the tree it expected (an entry count, a byte count,
a size), so a filesystem that answers wrongly fails instead of looking fast.
Steps run in a child process (see runner), so a step that hangs in a FUSE call
can be killed without taking the bench with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from bench.tree import GIT_ENV, BuiltTree

MiB = 1 << 20
STEP_TIMEOUT_S = 900


class WorkloadError(Exception):
    """The workload ran but saw something other than the tree it expected."""


@dataclass(frozen=True)
class Metric:
    """One reported figure: 'W1-cold' in seconds (lower is better), 'W3-cold' in MiB/s, ..."""

    id: str
    label: str
    unit: str  # "s", "MiB/s" or "ops/s"

    @property
    def better(self) -> str:
        return "lower" if self.unit == "s" else "higher"

    def value(self, elapsed: float, amount: float) -> float:
        """The figure from a step's time and how much it did."""
        if self.unit == "s":
            return elapsed
        per = MiB if self.unit == "MiB/s" else 1
        return amount / per / elapsed


@dataclass(frozen=True)
class Timed:
    """What a step reports: seconds, how much it did, and anything worth noting."""

    elapsed: float
    amount: float
    note: str = ""


@dataclass(frozen=True)
class Scale:
    """How much the writing workloads write (the quick run writes less)."""

    write_bytes: int = 512 * MiB
    creates: int = 5_000
    appends: int = 1_000


FULL_SCALE = Scale()
QUICK_SCALE = Scale(write_bytes=64 * MiB, creates=2_000, appends=500)


@dataclass(frozen=True)
class Context:
    """What a step needs: where the target is mounted and what the tree holds."""

    mnt: Path
    tree: BuiltTree
    scale: Scale
    append_files: tuple[str, ...]


StepFn = Callable[[Context], Timed]


@dataclass(frozen=True)
class Step:
    metric: Metric
    fn: StepFn
    cold: bool  # drop the page, dentry and inode caches right before it


@dataclass(frozen=True)
class Workload:
    """A workload runs on one fresh mount: its steps in order, the first one cold.

    `writes` selects the native target's form (a tmpfs instead of the tree);
    `native_seed` copies into that tmpfs the lower files the workload modifies.
    """

    id: str
    title: str
    writes: bool
    steps: tuple[Step, ...]
    native_seed: Callable[[Context, Path], None] | None = None


# --- W1: walk + lstat ---------------------------------------------------------------------

def walk_lstat(ctx: Context) -> Timed:
    """scandir every directory and lstat every entry, as `find -ls` or a build tool would."""
    t0 = perf_counter()
    count = 0
    stack = [str(ctx.mnt)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = os.lstat(entry.path)
                count += 1
                if (st.st_mode & 0o170000) == 0o040000:
                    stack.append(entry.path)
    elapsed = perf_counter() - t0
    if count != ctx.tree.entries:
        raise WorkloadError(f"walk saw {count} entries, the tree has {ctx.tree.entries}")
    return Timed(elapsed, count)


# --- W2: read every small file ------------------------------------------------------------

def read_small(ctx: Context) -> Timed:
    """Read every small file whole, directory by directory."""
    paths = sorted(f.path for f in ctx.tree.manifest.files)
    buf = bytearray(256 * 1024)
    t0 = perf_counter()
    total = 0
    for rel in paths:
        fd = os.open(os.path.join(ctx.mnt, rel), os.O_RDONLY)
        try:
            while n := os.readv(fd, [buf]):
                total += n
        finally:
            os.close(fd)
    elapsed = perf_counter() - t0
    if total != ctx.tree.manifest.small_bytes:
        raise WorkloadError(f"read {total} bytes, the files hold {ctx.tree.manifest.small_bytes}")
    return Timed(elapsed, total)


# --- W3: dd of the big file ---------------------------------------------------------------

def dd_big(ctx: Context) -> Timed:
    """`dd bs=1M` of the big file to /dev/null."""
    argv = ["dd", f"if={ctx.mnt / ctx.tree.big_path}", "of=/dev/null", "bs=1M"]
    t0 = perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    elapsed = perf_counter() - t0
    _check(done, argv)
    size = ctx.tree.manifest.params.big_size
    copied = _dd_bytes(done.stderr)
    if copied is not None and copied != size:
        raise WorkloadError(f"dd copied {copied} bytes, the file has {size}")
    return Timed(elapsed, size)


def _dd_bytes(stderr: str) -> int | None:
    for line in stderr.splitlines():
        if "bytes" in line and "copied" in line:
            return int(line.split()[0])
    return None


# --- W4: write a new file with fsync ------------------------------------------------------

def write_fsync(ctx: Context) -> Timed:
    """Write a new file in 1 MiB writes, fsync, close: the time includes the fsync."""
    block = os.urandom(MiB)
    count = ctx.scale.write_bytes // MiB
    path = ctx.mnt / "bench-w4.bin"
    t0 = perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for _ in range(count):
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = perf_counter() - t0
    size = os.stat(path).st_size
    if size != count * MiB:
        raise WorkloadError(f"wrote {count * MiB} bytes, the file has {size}")
    return Timed(elapsed, count * MiB)


# --- W5: create, then delete, small files -------------------------------------------------

def _w5_names(ctx: Context) -> list[str]:
    return [os.path.join(ctx.mnt, "bench-w5", f"c{i:05d}") for i in range(ctx.scale.creates)]


def create_files(ctx: Context) -> Timed:
    """Create files of 4 KiB each in one new directory (created before the clock starts)."""
    os.mkdir(ctx.mnt / "bench-w5")
    names = _w5_names(ctx)
    data = b"x" * 4096
    t0 = perf_counter()
    for name in names:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    elapsed = perf_counter() - t0
    listed = len(os.listdir(ctx.mnt / "bench-w5"))
    if listed != len(names):
        raise WorkloadError(f"created {len(names)} files, the directory lists {listed}")
    return Timed(elapsed, len(names))


def delete_files(ctx: Context) -> Timed:
    """Delete the files the create step made."""
    names = _w5_names(ctx)
    t0 = perf_counter()
    for name in names:
        os.unlink(name)
    elapsed = perf_counter() - t0
    left = os.listdir(ctx.mnt / "bench-w5")
    if left:
        raise WorkloadError(f"{len(left)} files left after deleting")
    return Timed(elapsed, len(names))


# --- W6: append one byte to lower files (copy-up) -----------------------------------------

def append_byte(ctx: Context) -> Timed:
    """Open lower files for append and add one byte: on an overlay, each is a copy-up."""
    paths = [os.path.join(ctx.mnt, rel) for rel in ctx.append_files]
    t0 = perf_counter()
    for path in paths:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"+")
        os.close(fd)
    elapsed = perf_counter() - t0
    sizes = {f.path: f.size for f in ctx.tree.manifest.files}
    for rel, path in zip(ctx.append_files, paths, strict=True):
        got = os.stat(path).st_size
        if got != sizes[rel] + 1:
            raise WorkloadError(f"{rel}: size {got} after the append, expected {sizes[rel] + 1}")
    return Timed(elapsed, len(paths))


def seed_appends(ctx: Context, tree_root: Path) -> None:
    """For the native target (a tmpfs), put copies of the files W6 appends to."""
    for rel in ctx.append_files:
        dest = ctx.mnt / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree_root / rel, dest)


# --- W7: tar of the tree ------------------------------------------------------------------

def tar_tree(ctx: Context) -> Timed:
    """`tar -cf - . | cat >/dev/null` (through cat: tar skips reading when writing /dev/null)."""
    argv = ["bash", "-o", "pipefail", "-c", "tar -cf - . | cat >/dev/null"]
    t0 = perf_counter()
    done = subprocess.run(argv, cwd=ctx.mnt, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT_S)
    elapsed = perf_counter() - t0
    _check(done, argv)
    return Timed(elapsed, 0)


# --- W8: git status -----------------------------------------------------------------------

def git_status(ctx: Context) -> Timed:
    """`git status` at the root. It should find nothing changed; a change listed is noted."""
    argv = ["git", "status", "--porcelain"]
    env = {**os.environ, **GIT_ENV, "HOME": str(ctx.mnt.parent)}
    t0 = perf_counter()
    done = subprocess.run(argv, cwd=ctx.mnt, capture_output=True, text=True, env=env,
                          timeout=STEP_TIMEOUT_S)
    elapsed = perf_counter() - t0
    _check(done, argv)
    changed = done.stdout.splitlines()
    note = f"git status listed {len(changed)} changes: {changed[:3]}" if changed else ""
    return Timed(elapsed, 0, note)


def _check(done: subprocess.CompletedProcess[str], argv: list[str]) -> None:
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()[-3:]
        raise WorkloadError(f"{' '.join(argv)}: exit {done.returncode}: {' / '.join(tail)}")


def _m(wid: str, label: str, unit: str, suffix: str = "") -> Metric:
    return Metric(f"{wid}-{suffix}" if suffix else wid, label, unit)


WORKLOADS: tuple[Workload, ...] = (
    Workload("W1", "walk + lstat", False, (
        Step(_m("W1", "W1 walk+lstat, cold", "s", "cold"), walk_lstat, True),
        Step(_m("W1", "W1 walk+lstat, warm", "s", "warm"), walk_lstat, False))),
    Workload("W2", "read every small file", False, (
        Step(_m("W2", "W2 read small files, cold", "s", "cold"), read_small, True),
        Step(_m("W2", "W2 read small files, warm", "s", "warm"), read_small, False))),
    Workload("W3", "dd bs=1M of the big file", False, (
        Step(_m("W3", "W3 dd big file, cold", "MiB/s", "cold"), dd_big, True),
        Step(_m("W3", "W3 dd big file, warm", "MiB/s", "warm"), dd_big, False))),
    Workload("W4", "write a new file with fsync", True, (
        Step(_m("W4", "W4 write+fsync", "MiB/s"), write_fsync, True),)),
    Workload("W5", "create, then delete, 4 KiB files", True, (
        Step(_m("W5", "W5 create 4 KiB files", "ops/s", "create"), create_files, True),
        Step(_m("W5", "W5 delete them", "ops/s", "delete"), delete_files, False))),
    Workload("W6", "append one byte to lower files (copy-up)", True, (
        Step(_m("W6", "W6 copy-up append", "ops/s"), append_byte, True),),
        native_seed=seed_appends),
    Workload("W7", "tar -cf - . | cat", False, (
        Step(_m("W7", "W7 tar of the tree, cold", "s"), tar_tree, True),)),
    Workload("W8", "git status", False, (
        Step(_m("W8", "W8 git status, cold", "s", "cold"), git_status, True),
        Step(_m("W8", "W8 git status, warm", "s", "warm"), git_status, False))),
)
WORKLOAD_IDS = tuple(w.id for w in WORKLOADS)
METRICS: tuple[Metric, ...] = tuple(s.metric for w in WORKLOADS for s in w.steps)
