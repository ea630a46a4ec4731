"""`PodRoot`: the pod mount's top directory, one entry per container.

A runtime bind-mounts `MOUNTPOINT/ID` as that container's rootfs, so the
top directory only lists containers; it cannot be changed through the
filesystem (containers come and go through the control socket).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Mapping

from sandboxfs.vfs import Attr, DirEntry, Inode, StatFs
from sandboxfs.vfs.attr import now_ns
from sandboxfs.vfs.readonly import ReadOnlyDirectory


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class PodRoot(ReadOnlyDirectory):
    """A read-only directory whose entries are the containers' root inodes."""

    refusal = errno.EPERM

    def __init__(self, containers: Callable[[], Mapping[str, Inode]]) -> None:
        self._containers = containers
        self._ctime = now_ns()
        self.mtime_ns = self._ctime

    @property
    def ino(self) -> int:
        return 1

    async def getattr(self) -> Attr:
        count = len(self._containers())
        return Attr(ino=1, mode=stat.S_IFDIR | 0o755, nlink=2 + count, uid=0, gid=0, size=0,
                    atime_ns=self.mtime_ns, mtime_ns=self.mtime_ns, ctime_ns=self.mtime_ns)

    async def lookup(self, name: bytes) -> Inode:
        root = self._containers().get(name.decode(errors="surrogateescape"))
        if root is None:
            raise _err(errno.ENOENT)
        return root

    async def readdir(self) -> list[DirEntry]:
        return [DirEntry(name.encode(errors="surrogateescape"), root, await root.getattr())
                for name, root in sorted(self._containers().items())]

    async def link(self, name: bytes, target: Inode) -> Inode:
        raise _err(errno.EXDEV)

    async def rmdir(self, name: bytes) -> None:
        raise _err(errno.EBUSY)

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        raise _err(errno.EBUSY)

    async def statfs(self) -> StatFs:
        roots = list(self._containers().values())
        if roots:
            return await roots[0].statfs()
        return StatFs(bsize=4096, frsize=4096, blocks=0, bfree=0, bavail=0,
                      files=0, ffree=0, favail=0)
