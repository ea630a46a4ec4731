"""A read-only export: every mutation is EROFS and the tree stays byte-identical."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

import pytest
from conftest import Procs, gofer_client, tree_hash


async def test_every_mutation_is_erofs(procs: Procs, sample: Path) -> None:
    os.setxattr(sample / "hello.txt", "user.keep", b"1")
    before = tree_hash(sample)
    async with gofer_client(procs, sample, "--ro") as c:
        root, _ = await c.attach()
        f, _ = await c.walk(root, [b"hello.txt"])
        sub, _ = await c.walk(root, [b"sub"])

        async def erofs(coro: object) -> None:
            with pytest.raises(OSError) as info:
                await coro  # type: ignore[misc]
            assert info.value.errno == errno.EROFS, info.value

        for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC,
                      os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_CREAT):
            tmp, _ = await c.walk(f, [])
            await erofs(c.lopen(tmp, flags))
            await c.clunk(tmp)
        tmp, _ = await c.walk(root, [])
        await erofs(c.lcreate(tmp, b"new", os.O_RDWR, 0o644, 0))
        await erofs(c.setattr(f, mode=0o777))
        await erofs(c.setattr(f, size=0))
        await erofs(c.setattr(f, uid=1, gid=1))
        await erofs(c.setattr(f, mtime_ns=0, atime_ns=0))
        await erofs(c.mkdir(root, b"d", 0o755, 0))
        await erofs(c.symlink(root, b"s", b"t", 0))
        await erofs(c.mknod(root, b"n", stat.S_IFIFO | 0o600, 0, 0, 0))
        await erofs(c.link(root, f, b"l"))
        await erofs(c.renameat(root, b"hello.txt", sub, b"moved"))
        await erofs(c.unlinkat(root, b"hello.txt"))
        await erofs(c.unlinkat(root, b"sub", 0x200))
        await erofs(c.setxattr(f, b"user.new", b"v"))
        await erofs(c.removexattr(f, b"user.keep"))
        r, _ = await c.walk(f, [])
        _, _, fd = await c.lopen(r, os.O_RDONLY)
        assert fd is not None
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        with pytest.raises(OSError):
            os.write(fd, b"x")
        os.close(fd)
        await erofs(c.write(r, 0, b"overwrite"))
        await c.fsync(r)
        assert await c.getxattr(f, b"user.keep") == b"1"
        assert await c.read(r, 0, 5) == b"hello"
    assert tree_hash(sample) == before
