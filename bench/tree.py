"""The fixed-seed test tree: planned as a pure manifest, built once, cached by its parameters.

Planning and building are apart so the manifest (paths and sizes) can be tested
for determinism without touching a disk, and so a workload knows what it should
find without walking the tree first.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# Bump when the generator changes what it writes, so cached trees are rebuilt.
GENERATOR_VERSION = 2
# Every file and directory gets this mtime before the commit, so git's index is
# never "racily clean" (index newer than every file) and all builds look alike.
FIXED_MTIME = 1_700_000_000
BIG_NAME = "big.bin"
POOL_SIZE = 1 << 20
EXTENSIONS = ("c", "h", "py", "txt", "md", "json", "rs", "go")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_AUTHOR_DATE": f"{FIXED_MTIME} +0000",
    "GIT_COMMITTER_DATE": f"{FIXED_MTIME} +0000",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class TreeParams:
    """Everything that decides the tree's content; its hash names the cache entry."""

    files: int = 20_000
    dirs: int = 1_500
    min_size: int = 100
    max_size: int = 64 * 1024
    big_size: int = 1 << 30
    seed: int = 7

    def key(self) -> str:
        """A short stable name for this tree under the work directory."""
        blob = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return f"tree-{self.files}f-{self.dirs}d-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


FULL_TREE = TreeParams()
QUICK_TREE = TreeParams(files=2_000, dirs=150, big_size=64 << 20)


@dataclass(frozen=True)
class FileSpec:
    """One small file: its path relative to the tree root and its size in bytes."""

    path: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """The planned tree: directories (parents first) and small files, in build order."""

    params: TreeParams
    dirs: tuple[str, ...]
    files: tuple[FileSpec, ...]

    @property
    def small_bytes(self) -> int:
        return sum(f.size for f in self.files)


def log_uniform_size(rng: random.Random, low: int, high: int) -> int:
    """A size whose logarithm is uniform in [log low, log high]: many small files, few big."""
    size = round(math.exp(rng.uniform(math.log(low), math.log(high))))
    return min(high, max(low, size))


def plan_tree(params: TreeParams) -> Manifest:
    """Directories as a random recursive tree, files spread uniformly over them.

    Depends on nothing but `params`, so the same seed always plans the same tree.
    """
    if params.dirs < 1 or params.files < 0 or not 0 < params.min_size <= params.max_size:
        raise ValueError(f"bad tree parameters: {params}")
    rng = random.Random(params.seed)
    dirs: list[str] = []
    for i in range(params.dirs):
        parent = rng.randrange(i + 1) - 1  # -1: the root
        name = f"d{i:04d}"
        dirs.append(name if parent < 0 else f"{dirs[parent]}/{name}")
    files = []
    for j in range(params.files):
        where = dirs[rng.randrange(len(dirs))]
        ext = EXTENSIONS[rng.randrange(len(EXTENSIONS))]
        size = log_uniform_size(rng, params.min_size, params.max_size)
        files.append(FileSpec(f"{where}/f{j:05d}.{ext}", size))
    return Manifest(params, tuple(dirs), tuple(files))


def pick_files(manifest: Manifest, count: int, salt: int = 1) -> list[str]:
    """A fixed sample of `count` small files (for the copy-up workload), in tree order."""
    rng = random.Random(manifest.params.seed * 1_000_003 + salt)
    chosen = rng.sample(range(len(manifest.files)), min(count, len(manifest.files)))
    return [manifest.files[i].path for i in sorted(chosen)]


@dataclass(frozen=True)
class BuiltTree:
    """A tree on disk and the facts the workloads check their results against."""

    root: Path
    manifest: Manifest
    entries: int  # every entry below the root (files, dirs, .git), for the walk
    git_head: str

    @property
    def big_path(self) -> str:
        return BIG_NAME


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _write_big(path: Path, size: int, pool: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        while left:
            left -= os.write(fd, pool[: min(left, len(pool))])
    finally:
        os.close(fd)


def count_entries(root: Path) -> int:
    """Entries below `root` without following symlinks, as the walk workload counts them."""
    total = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                total += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def write_tree(manifest: Manifest, dest: Path) -> None:
    """Write the manifest's directories, files and big file under `dest` (which must not exist).

    Contents come from a seeded 1 MiB pool, each file starting with its own path
    so no two blobs are alike for git.
    """
    params = manifest.params
    rng = random.Random(params.seed + 1)
    pool = rng.randbytes(POOL_SIZE)
    dest.mkdir(parents=True)
    for d in manifest.dirs:
        (dest / d).mkdir()
    for f in manifest.files:
        start = rng.randrange(POOL_SIZE - params.max_size)
        head = f"{f.path}\n".encode()
        _write_file(dest / f.path, (head + pool[start : start + f.size])[: f.size])
    _write_big(dest / BIG_NAME, params.big_size, pool)
    (dest / ".gitignore").write_text(f"/{BIG_NAME}\n")
    for dirpath, _dirnames, filenames in os.walk(dest, topdown=False):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (FIXED_MTIME, FIXED_MTIME))
        os.utime(dirpath, (FIXED_MTIME, FIXED_MTIME))


def build_tree(params: TreeParams, cache_dir: Path, log: bool = True) -> BuiltTree:
    """The tree for `params` under `cache_dir`, built (and committed to git) if not cached.

    Built under a temporary name and renamed, so an interrupted build is never
    mistaken for a cached one.
    """
    manifest = plan_tree(params)
    home = cache_dir / params.key()
    root = home / "tree"
    meta_path = home / "meta.json"
    if meta_path.exists() and root.is_dir():
        meta = json.loads(meta_path.read_text())
        return BuiltTree(root, manifest, int(meta["entries"]), str(meta["git_head"]))
    if log:
        print(f"bench: building the test tree in {root} (once; it is cached)",
              file=sys.stderr, flush=True)
    tmp = home / "tree.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    write_tree(manifest, tmp)
    _git(tmp, "init", "-q", "-b", "main")
    # No automatic gc: with thousands of loose objects `git commit` would start
    # one in the background, which packs the tree's .git while the bench runs.
    _git(tmp, "config", "gc.auto", "0")
    _git(tmp, "add", ".")
    _git(tmp, "commit", "-q", "-m", "bench tree")
    # Packed, as a cloned repository is; done here, synchronously.
    _git(tmp, "gc", "-q")
    head = _git(tmp, "rev-parse", "HEAD")
    # Refresh the index once so it records every file's final stat data.
    _git(tmp, "status", "--porcelain")
    tmp.rename(root)
    entries = count_entries(root)
    meta = {"params": asdict(params), "entries": entries, "git_head": head,
            "small_bytes": manifest.small_bytes}
    meta_path.write_text(json.dumps(meta, indent=1))
    return BuiltTree(root, manifest, entries, head)
