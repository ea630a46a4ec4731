"""Stub directories: the ramfs tree of mount points.

A mount whose destination does not exist in the filesystem below (say
`/some/deep/path` over a rootfs without `/some`) still needs a directory at
each missing component. These stubs are laid over the parent by the mount
namespace: the layer below is not changed and nothing is copied into any
upper. A stub lists only the mount points below it (the namespace adds
those) and refuses every change with EROFS, as a read-only ramfs would.
"""

from __future__ import annotations

import errno
import os
import stat

from sandboxfs.vfs import Attr, DirEntry, Inode, StatFs
from sandboxfs.vfs.attr import now_ns
from sandboxfs.vfs.readonly import ReadOnlyDirectory


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class StubDir(ReadOnlyDirectory):
    """An empty, read-only directory standing in for a missing mount point."""

    def __init__(self, ino: int, mode: int = 0o755) -> None:
        t = now_ns()
        self._attr = Attr(ino=ino, mode=stat.S_IFDIR | mode, nlink=2, uid=0, gid=0, size=0,
                          atime_ns=t, mtime_ns=t, ctime_ns=t)

    @property
    def ino(self) -> int:
        return self._attr.ino

    async def getattr(self) -> Attr:
        return self._attr

    async def lookup(self, name: bytes) -> Inode:
        raise _err(errno.ENOENT)

    async def readdir(self) -> list[DirEntry]:
        return []

    async def statfs(self) -> StatFs:
        return StatFs(bsize=4096, frsize=4096, blocks=0, bfree=0, bavail=0,
                      files=0, ffree=0, favail=0)
