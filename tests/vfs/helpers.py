"""Small helpers for driving filesystems through the VFS interfaces only."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import cast

import pytest
import trio
import trio.lowlevel

from sandboxfs.vfs import Creds, Inode

ROOT = Creds(0, 0)

#: A seed tree: "dir/" makes a directory, bytes make a file, ("symlink", target)
#: a symlink, ("hardlink", other_path) another name of a file, ("fifo",) a fifo.
Seed = Mapping[str, object]


async def walk(root: Inode, path: str) -> Inode:
    node = root
    for part in path.strip("/").split("/"):
        if part:
            node = await node.lookup(part.encode())
    return node


async def parent_and_name(root: Inode, path: str) -> tuple[Inode, bytes]:
    head, _, tail = path.strip("/").rpartition("/")
    return await walk(root, head), tail.encode()


async def read_all(inode: Inode) -> bytes:
    handle = await inode.open(os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        offset = 0
        while True:
            chunk = await handle.read(offset, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)
    finally:
        await handle.release()


async def write_at(inode: Inode, offset: int, data: bytes, flags: int = os.O_WRONLY) -> int:
    handle = await inode.open(flags)
    try:
        return await handle.write(offset, data)
    finally:
        await handle.release()


async def populate(root: Inode, seed: Seed) -> None:
    """Build `seed` under `root` through the VFS interface."""
    for path, what in seed.items():
        if isinstance(what, tuple) and what[0] == "xattr":
            target = await walk(root, path.rstrip("#"))
            await target.setxattr(str(what[1]).encode(), bytes(what[2]))  # type: ignore[call-overload]
            continue
        parent, name = await parent_and_name(root, path)
        if path.endswith("/"):
            await parent.mkdir(name, 0o755, ROOT)
        elif isinstance(what, bytes):
            f = await parent.create(name, 0o644, ROOT)
            if what:
                await write_at(f, 0, what)
        elif isinstance(what, tuple) and what[0] == "symlink":
            await parent.symlink(name, str(what[1]).encode(), ROOT)
        elif isinstance(what, tuple) and what[0] == "hardlink":
            await parent.link(name, await walk(root, str(what[1])))
        elif isinstance(what, tuple) and what[0] == "fifo":
            await parent.mknod(name, stat.S_IFIFO | 0o644, 0, ROOT)
        else:
            raise AssertionError(f"bad seed entry {path!r}: {what!r}")


async def names(d: Inode) -> list[bytes]:
    return [e.name for e in await d.readdir()]


async def digest(root: Inode) -> str:
    """A hash of everything a tree holds: names, types, attributes, bytes,
    targets and xattrs (all through the VFS interface)."""
    h = hashlib.sha256()

    async def visit(node: Inode, path: bytes) -> None:
        a = await node.getattr()
        h.update(repr((path, a)).encode())
        xattrs = sorted(await node.listxattr())
        for x in xattrs:
            h.update(x + b"=" + await node.getxattr(x))
        if stat.S_ISDIR(a.mode):
            for e in await node.readdir():
                await visit(e.inode, path + b"/" + e.name)
        elif stat.S_ISREG(a.mode):
            h.update(await read_all(node))
        elif stat.S_ISLNK(a.mode):
            h.update(await node.readlink())

    await visit(root, b"")
    return h.hexdigest()


@asynccontextmanager
async def raises_errno(code: int) -> AsyncIterator[None]:
    with pytest.raises(OSError) as info:
        yield
    assert info.value.errno == code, (errno.errorcode.get(info.value.errno or 0),
                                      errno.errorcode[code])


async def expect_errno(code: int, aw: Awaitable[object]) -> None:
    with pytest.raises(OSError) as info:
        await aw
    assert info.value.errno == code, (errno.errorcode.get(info.value.errno or 0),
                                      errno.errorcode[code])


class Proxy:
    """Wraps an `Inode`, and every inode it hands out, calling `around` on
    each method call: subclasses change how a layer behaves under test."""

    def __init__(self, inner: Inode) -> None:
        self._inner = inner

    @property
    def ino(self) -> int:
        return self._inner.ino

    async def around(self, name: str, call: Callable[..., Awaitable[object]],
                     args: tuple[object, ...]) -> object:
        return await call(*args)

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def call(*args: object) -> object:
            args = tuple(a._inner if isinstance(a, Proxy) else a for a in args)
            return self._wrap(await self.around(name, attr, args))

        return call

    def _wrap(self, result: object) -> object:
        from sandboxfs.vfs import DirEntry
        if isinstance(result, list) and result and isinstance(result[0], DirEntry):
            return [DirEntry(e.name, type(self)(e.inode), e.attr)  # type: ignore[arg-type]
                    for e in result]
        if hasattr(result, "lookup") and hasattr(result, "getattr"):
            return type(self)(result)  # type: ignore[arg-type]
        return result


class Yielding(Proxy):
    """Every call yields to other trio tasks first and after: with it,
    concurrent overlay operations really interleave at each layer call
    (tmpfs itself never yields)."""

    async def around(self, name: str, call: Callable[..., Awaitable[object]],
                     args: tuple[object, ...]) -> object:
        await trio.lowlevel.checkpoint()
        result = await call(*args)
        await trio.lowlevel.checkpoint()
        return result


def yielding(inner: Inode) -> Inode:
    """`inner` behind a `Yielding` proxy, typed as the Inode it stands for."""
    return cast(Inode, Yielding(inner))
