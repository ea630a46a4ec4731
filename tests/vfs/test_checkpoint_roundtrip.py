"""Checkpoint round trips without a mount: a rich TmpFs tree comes back
exactly (entries, bytes, modes, owners, the three times, link counts and
link groups, xattrs), and restore refuses, before creating anything, a
target that is not empty or has no room."""

from __future__ import annotations

import errno
import os
import stat
from functools import partial
from pathlib import Path

import pytest

from sandboxfs.checkpoint import ImageError, read_image, write_image
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Creds

from .checkpoint_trees import (
    BIG,
    HEADER,
    SMALL_FILES,
    assert_same,
    checkpoint,
    restore,
    rich_tree,
    snapshot,
)
from .helpers import ROOT, walk, write_at


async def test_rich_tree_comes_back_exactly(tmp_path: Path) -> None:
    fs = await rich_tree()
    before = await snapshot(fs.root)
    image = await checkpoint(tmp_path / "img", [("0", fs.root)])
    assert await snapshot(fs.root) == before  # checkpointing changes nothing, atime included
    img = read_image(image)
    assert img.header == HEADER and img.sections == ["0"]
    assert img.info["0"].files == len(before) - 2 - 3  # minus root, <links>, 3 extra names
    restored = await restore(image)
    assert_same(await snapshot(restored.root), before)
    f = await walk(restored.root, "d/e/f")
    assert await walk(restored.root, "d/hard") is f and await walk(restored.root, "hard2") is f
    assert (await f.getattr()).nlink == 3
    big = await (await walk(restored.root, "big")).getattr()
    assert big.size == BIG and big.uid == 1000
    whiteout = await (await walk(restored.root, "whiteout")).getattr()
    assert stat.S_ISCHR(whiteout.mode) and whiteout.rdev == 0
    assert await (await walk(restored.root, "opaque")).getxattr(
        b"trusted.overlay.opaque") == b"y"
    assert stat.S_IMODE((await (await walk(restored.root, "setuid")).getattr()).mode) == 0o6755


async def test_the_same_tree_gives_the_same_bytes(tmp_path: Path) -> None:
    fs = await rich_tree()
    one = (await checkpoint(tmp_path / "a", [("0", fs.root)])).read_bytes()
    two = (await checkpoint(tmp_path / "b", [("0", fs.root)])).read_bytes()
    assert one == two
    # ...and a restored tree checkpoints to the same image again.
    again = await restore(tmp_path / "a")
    assert (await checkpoint(tmp_path / "c", [("0", again.root)])).read_bytes() == one


def record(into: list[tuple[int, int]], nbytes: int, files: int) -> None:
    into.append((nbytes, files))


async def test_several_sections_and_progress(tmp_path: Path) -> None:
    upper, tmp = TmpFs(), TmpFs()
    await write_at(await upper.root.create(b"u", 0o644, ROOT), 0, b"upper" * 1000)
    await write_at(await tmp.root.create(b"t", 0o600, Creds(3, 3)), 0, b"tmp")
    seen: list[tuple[int, int]] = []
    await write_image(tmp_path / "img", HEADER, [("0/upper", upper.root), ("2/tmpfs", tmp.root)],
                      partial(record, seen))
    assert seen[-1] == (5003, 2) and seen == sorted(seen)
    img = read_image(tmp_path / "img")
    assert img.sections == ["0/upper", "2/tmpfs"]
    for key, original in (("2/tmpfs", tmp), ("0/upper", upper)):  # any order, straight to it
        got: list[tuple[int, int]] = []
        fresh = TmpFs()
        assert await img.restore_tree(key, fresh.root, partial(record, got)) \
            == (img.info[key].bytes, 1)
        assert got and got[-1] == (img.info[key].bytes, 1)
        assert_same(await snapshot(fresh.root), await snapshot(original.root))
    with pytest.raises(ImageError, match="no section"):
        await img.restore_tree("1", TmpFs().root)


async def test_a_file_descriptor_destination_is_written_as_is(tmp_path: Path) -> None:
    fs = await rich_tree()
    fd = os.open(tmp_path / "img", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        nbytes, files = await write_image(fd, HEADER, [("0", fs.root)])
    finally:
        os.close(fd)
    assert nbytes == os.path.getsize(tmp_path / "img") and files > SMALL_FILES
    assert_same(await snapshot((await restore(tmp_path / "img")).root), await snapshot(fs.root))


async def test_restore_refuses_a_non_empty_target_or_one_without_room(tmp_path: Path) -> None:
    fs = await rich_tree()
    img = read_image(await checkpoint(tmp_path / "img", [("0", fs.root)]))
    busy = TmpFs()
    await busy.root.mkdir(b"x", 0o755, ROOT)
    with pytest.raises(OSError) as info:
        await img.restore_tree("0", busy.root)
    assert info.value.errno == errno.ENOTEMPTY
    for small in (TmpFs(size_limit=1 << 20), TmpFs(inode_limit=100)):
        with pytest.raises(OSError) as info:
            await img.restore_tree("0", small.root)
        assert info.value.errno == errno.ENOSPC
        assert await small.root.readdir() == [] and small.used_inodes == 1
