"""Topenat: walk, open and donate in one round trip, confined like every walk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.gofer.conftest import Procs, expect, gofer_client


async def test_openat_donates_the_file_and_makes_no_fid(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        for _ in range(50):  # no fid is left behind: the fid table stays as it was
            qid, fd = await c.openat(root, [b"sub", b"inner.txt"], os.O_RDONLY)
            try:
                assert os.pread(fd, 100, 0) == b"inner\n"
            finally:
                os.close(fd)
        assert qid.path == (sample / "sub" / "inner.txt").stat().st_ino
        fresh, _ = await c.walk(root, [])  # the next fid number is still free
        await c.clunk(fresh)


async def test_openat_is_confined(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        await expect(errno.ELOOP, c.openat(root, [b"link"], os.O_RDONLY))
        # A symlink is never followed: walking through one is ENOTDIR, as in every walk.
        await expect(errno.ENOTDIR, c.openat(root, [b"to_root", b"etc"], os.O_RDONLY))
        with pytest.raises(OSError):
            await c.openat(root, [b".."], os.O_RDONLY)
        with pytest.raises(OSError):
            await c.openat(root, [b"sub/../../outside"], os.O_RDONLY)
        await expect(errno.EINVAL, c.openat(root, [b"sub"], os.O_RDONLY))


async def test_openat_on_a_readonly_export_refuses_writes(procs: Procs, sample: Path) -> None:
    before = (sample / "hello.txt").read_bytes()
    async with gofer_client(procs, sample, "--ro") as c:
        root, _ = await c.attach()
        await expect(errno.EROFS, c.openat(root, [b"hello.txt"], os.O_RDWR))
        await expect(errno.EROFS, c.openat(root, [b"hello.txt"], os.O_RDONLY | os.O_TRUNC))
    assert (sample / "hello.txt").read_bytes() == before


async def test_openat_needs_the_extensions(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample, extensions=False) as c:
        root, _ = await c.attach()
        await expect(errno.EOPNOTSUPP, c.openat(root, [b"hello.txt"], os.O_RDONLY))


async def test_openat_batch_opens_each_file_and_makes_no_fid(procs: Procs,
                                                             sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        first, _ = await c.walk(root, [])
        await c.clunk(first)
        names = [b"hello.txt", b"nothing", b"sub", b"link", b"empty", b"big.bin"]
        for _ in range(20):
            got = await c.openat_batch(root, names)
            assert [r if isinstance(r, int) else 0 for r in got] == [
                0, errno.ENOENT, errno.EINVAL, errno.ELOOP, 0, 0]
            opened = [r for r in got if not isinstance(r, int)]
            try:
                assert os.pread(opened[0][1], 100, 0) == b"hello world\n"
                assert opened[0][0].path == (sample / "hello.txt").stat().st_ino
                assert os.fstat(opened[2][1]).st_size == 300_000
                assert opened[2][0].path == (sample / "big.bin").stat().st_ino
            finally:
                for _, fd in opened:
                    os.close(fd)
        assert await c.openat_batch(root, []) == []
        again, _ = await c.walk(root, [])  # no fid was left behind
        assert again == first
        await c.clunk(again)


async def test_openat_batch_is_bounded_and_confined(procs: Procs, sample: Path) -> None:
    from gofer.wire import MAX_OPEN_BATCH

    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        await expect(errno.EINVAL, c.openat_batch(root, [b"hello.txt"] * (MAX_OPEN_BATCH + 1)))
        got = await c.openat_batch(root, [b"..", b"sub/../../outside", b"to_root"])
        assert all(isinstance(r, int) and r != 0 for r in got)
        full = await c.openat_batch(root, [b"hello.txt"] * MAX_OPEN_BATCH)
        assert len(full) == MAX_OPEN_BATCH
        for r in full:
            assert not isinstance(r, int)
            os.close(r[1])


async def test_openat_batch_needs_the_extensions(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample, extensions=False) as c:
        root, _ = await c.attach()
        await expect(errno.EOPNOTSUPP, c.openat_batch(root, [b"hello.txt"]))
