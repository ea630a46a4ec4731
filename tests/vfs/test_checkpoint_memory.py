"""Checkpoints are streamed: the writer never reads more than CHUNK bytes of
a file at once, whether through the memfd or `FileHandle.read`, and writing
or restoring a 64 MiB file allocates a few MiB of Python memory, not 64."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from sandboxfs.checkpoint import CHUNK, read_image, write_image
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode, SetAttr

from .checkpoint_spies import SpyInode
from .checkpoint_trees import HEADER
from .helpers import ROOT, read_all

SIZE = 64 << 20


async def big_file_tree() -> TmpFs:
    """One 64 MiB file with a distinct byte pattern in each MiB (written
    through the memfd, as the writer reads it)."""
    fs = TmpFs()
    f = await fs.root.create(b"big", 0o644, ROOT)
    await f.setattr(SetAttr(size=SIZE))
    handle = await f.open(os.O_RDWR)
    fd = handle.fileno()
    assert fd is not None
    for mib in range(SIZE >> 20):
        os.pwrite(fd, bytes([mib % 251]) * 4096, mib << 20)
    await handle.release()
    return fs


async def test_reads_through_the_handle_are_at_most_a_chunk(tmp_path: Path) -> None:
    fs = await big_file_tree()
    sizes: list[int] = []

    async def seen(offset: int, size: int) -> None:
        sizes.append(size)

    spy: Inode = SpyInode(fs.root, seen)  # type: ignore[assignment]
    await write_image(tmp_path / "img", HEADER, [("0", spy)])
    assert sum(sizes) == SIZE and max(sizes) == CHUNK


async def test_reads_from_the_memfd_are_at_most_a_chunk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = await big_file_tree()
    sizes: list[int] = []
    real = os.pread

    def spy(fd: int, n: int, off: int) -> bytes:
        sizes.append(n)
        return real(fd, n, off)

    monkeypatch.setattr(os, "pread", spy)
    await write_image(tmp_path / "img", HEADER, [("0", fs.root)])
    monkeypatch.undo()
    assert sum(sizes) == SIZE and max(sizes) == CHUNK


async def test_a_64_mib_file_takes_a_few_mib_to_write_and_restore(tmp_path: Path) -> None:
    fs = await big_file_tree()
    tracemalloc.start()
    try:
        await write_image(tmp_path / "img", HEADER, [("0", fs.root)])
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        image = read_image(tmp_path / "img")
        restored = TmpFs()
        await image.restore_tree("0", restored.root)
        _, restore_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert write_peak < 8 * CHUNK and restore_peak < 8 * CHUNK, (write_peak, restore_peak)
    assert os.path.getsize(tmp_path / "img") > SIZE
    got = await read_all(await restored.root.lookup(b"big"))
    assert got == await read_all(await fs.root.lookup(b"big"))
