"""Tlistdir and Txattrat: a directory listing, or an xattr, in one round trip, no fid made."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.gofer.conftest import Procs, expect, gofer_client


async def test_listdir_matches_open_and_readdir(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        for names in ([], [b"sub"], [b"sub", b"deeper"]):
            listed = await c.listdir(root, names)
            assert listed is not None
            dfid, _ = await c.walk(root, names)
            await c.lopen(dfid, os.O_RDONLY | os.O_DIRECTORY)
            usual = await c.readdir_all(dfid)
            await c.clunk(dfid)
            assert [(d.name, d.stat) for d in listed] == [(d.name, d.stat) for d in usual]
        top = {d.name: d for d in await c.listdir(root) or []}
        assert set(top) == {b"hello.txt", b"empty", b"big.bin", b"sub", b"link", b"to_root"}
        hello = top[b"hello.txt"].stat
        assert hello is not None
        assert hello.size == 12 and hello.mode & 0o7777 == 0o640
        assert hello.qid.path == (sample / "hello.txt").stat().st_ino


async def test_listdir_makes_no_fid(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        first, _ = await c.walk(root, [])
        await c.clunk(first)
        for _ in range(50):
            await c.listdir(root, [b"sub"])
        again, _ = await c.walk(root, [])  # the same fid number is free again
        assert again == first
        await c.clunk(again)


async def test_listdir_is_confined(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        # A symlink is never followed: listing one is ELOOP, as opening one is.
        await expect(errno.ELOOP, c.listdir(root, [b"to_root"]))
        await expect(errno.ELOOP, c.listdir(root, [b"link"]))
        await expect(errno.ENOTDIR, c.listdir(root, [b"to_root", b"etc"]))
        await expect(errno.ENOTDIR, c.listdir(root, [b"hello.txt"]))
        await expect(errno.ENOENT, c.listdir(root, [b"nothing"]))
        with pytest.raises(OSError):
            await c.listdir(root, [b".."])


async def test_listdir_too_big_for_one_reply_says_so(procs: Procs, tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(3000):  # ~130 bytes an entry: more than a 64 KiB msize holds
        (root / f"file-with-a-longish-name-{i:05d}").write_bytes(b"")
    async with gofer_client(procs, root, msize=64 << 10) as c:
        fid, _ = await c.attach()
        assert await c.listdir(fid) is None


async def test_listdir_needs_the_extensions(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample, extensions=False) as c:
        root, _ = await c.attach()
        await expect(errno.EOPNOTSUPP, c.listdir(root))


async def test_xattr_at_reads_names_and_values_without_a_fid(procs: Procs,
                                                            sample: Path) -> None:
    os.setxattr(sample / "sub" / "inner.txt", b"user.k", b"value")
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        first, _ = await c.walk(root, [])
        await c.clunk(first)
        for _ in range(20):
            assert await c.xattr_at(root, [b"sub", b"inner.txt"], b"user.k") == b"value"
            names = await c.xattr_at(root, [b"sub", b"inner.txt"], b"")
            assert b"user.k" in names.split(b"\0")
        assert await c.xattr_at(root, [b"hello.txt"], b"") == b""
        await expect(errno.ENODATA, c.xattr_at(root, [b"hello.txt"], b"user.none"))
        await expect(errno.ENOENT, c.xattr_at(root, [b"nothing"], b""))
        await expect(errno.ENOTDIR, c.xattr_at(root, [b"to_root", b"etc"], b""))
        again, _ = await c.walk(root, [])  # no fid was left behind
        assert again == first
        await c.clunk(again)


async def test_xattr_at_needs_the_extensions(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample, extensions=False) as c:
        root, _ = await c.attach()
        await expect(errno.EOPNOTSUPP, c.xattr_at(root, [b"hello.txt"], b""))
