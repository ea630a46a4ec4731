"""The bench's test tree: the same seed plans the same tree, sizes stay in range."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

from bench.tree import (
    FULL_TREE,
    QUICK_TREE,
    TreeParams,
    count_entries,
    log_uniform_size,
    pick_files,
    plan_tree,
    write_tree,
)

SMALL = TreeParams(files=300, dirs=40, big_size=1 << 16, seed=3)


def test_same_seed_same_manifest() -> None:
    assert plan_tree(SMALL) == plan_tree(SMALL)
    assert plan_tree(QUICK_TREE) == plan_tree(QUICK_TREE)


def test_another_seed_another_manifest() -> None:
    assert plan_tree(SMALL) != plan_tree(replace(SMALL, seed=4))


def test_counts_sizes_and_paths() -> None:
    m = plan_tree(QUICK_TREE)
    assert len(m.files) == QUICK_TREE.files
    assert len(m.dirs) == QUICK_TREE.dirs
    assert all(QUICK_TREE.min_size <= f.size <= QUICK_TREE.max_size for f in m.files)
    dirs = set(m.dirs)
    assert all(f.path.rsplit("/", 1)[0] in dirs for f in m.files)
    assert all("/" not in d or d.rsplit("/", 1)[0] in dirs for d in m.dirs)
    assert len({f.path for f in m.files}) == len(m.files)


def test_sizes_are_log_uniform() -> None:
    """About half the files lie below the geometric middle of the range."""
    rng = random.Random(1)
    sizes = [log_uniform_size(rng, 100, 65536) for _ in range(4000)]
    middle = math.sqrt(100 * 65536)
    below = sum(s < middle for s in sizes) / len(sizes)
    assert 0.45 < below < 0.55
    assert min(sizes) >= 100 and max(sizes) <= 65536


def test_cache_key_follows_the_parameters() -> None:
    assert FULL_TREE.key() == TreeParams().key()
    assert FULL_TREE.key() != QUICK_TREE.key()
    assert SMALL.key() != replace(SMALL, max_size=SMALL.max_size + 1).key()


def test_picked_files_are_fixed_and_distinct() -> None:
    m = plan_tree(SMALL)
    picked = pick_files(m, 50)
    assert picked == pick_files(m, 50)
    assert len(set(picked)) == 50
    assert len(pick_files(m, 10_000)) == len(m.files)


def test_written_tree_matches_the_manifest(tmp_path: Path) -> None:
    m = plan_tree(SMALL)
    write_tree(m, tmp_path / "t")
    for f in m.files[:50]:
        assert (tmp_path / "t" / f.path).stat().st_size == f.size
    assert (tmp_path / "t" / "big.bin").stat().st_size == SMALL.big_size
    # dirs + files + big file + .gitignore
    assert count_entries(tmp_path / "t") == len(m.dirs) + len(m.files) + 2
