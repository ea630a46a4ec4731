"""`FileOverlay`: a memory overlay over a single file (gVisor's overlay over a
non-directory), for file bind mounts such as `/etc/hostname`.

A container may write to a file bind-mounted from the host without the host
file changing: reads go to the host file (through its gofer) until the first
change, which copies it into a private memory filesystem, as a directory
overlay's copy-up does. The file keeps the lower's inode number for the life
of the mount. Directory operations are ENOTDIR: the root of this overlay is
the file itself.
"""

from __future__ import annotations

import dataclasses
import errno
import os

import trio

from sandboxfs.overlay.copy_up import copy_node
from sandboxfs.overlay.regular_file import LowerFileHandle
from sandboxfs.vfs import Attr, Creds, DirEntry, FileHandle, Inode, SetAttr, StatFs


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _opens_for_write(flags: int) -> bool:
    return (flags & os.O_ACCMODE) != os.O_RDONLY or bool(flags & os.O_TRUNC)


class FileOverlay:
    """`lower` (a non-directory) under a copy kept in `upper_dir` once changed."""

    NAME = b"file"

    def __init__(self, lower: Inode, upper_dir: Inode) -> None:
        self._lower = lower
        self._upper_dir = upper_dir
        self._upper: Inode | None = None
        self._upper_known = False  # looked for an existing copy (a restored checkpoint)
        self._lock = trio.Lock()

    @property
    def ino(self) -> int:
        return self._lower.ino

    def _top(self) -> Inode:
        return self._upper if self._upper is not None else self._lower

    async def _find_upper(self) -> None:
        """A copy already in the upper (restored from a checkpoint) is the file."""
        if not self._upper_known:
            try:
                self._upper = await self._upper_dir.lookup(self.NAME)
            except FileNotFoundError:
                pass
            self._upper_known = True

    async def _copy_up(self, *, data: bool = True) -> Inode:
        await self._find_upper()
        async with self._lock:
            if self._upper is None:
                attr = await self._lower.getattr()
                self._upper = await copy_node(self._upper_dir, self.NAME, self._lower, attr,
                                              data=data)
            return self._upper

    # -- attributes --------------------------------------------------------

    async def getattr(self) -> Attr:
        await self._find_upper()
        attr = await self._top().getattr()
        if self._upper is not None:
            attr = dataclasses.replace(attr, ino=self._lower.ino)
        return attr

    async def setattr(self, changes: SetAttr) -> Attr:
        upper = await self._copy_up(data=changes.size != 0)
        await upper.setattr(changes)
        return await self.getattr()

    # -- not a directory ---------------------------------------------------

    async def lookup(self, name: bytes) -> Inode:
        raise _err(errno.ENOTDIR)

    async def readdir(self) -> list[DirEntry]:
        raise _err(errno.ENOTDIR)

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:
        raise _err(errno.ENOTDIR)

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        raise _err(errno.ENOTDIR)

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        raise _err(errno.ENOTDIR)

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        raise _err(errno.ENOTDIR)

    async def link(self, name: bytes, target: Inode) -> Inode:
        raise _err(errno.ENOTDIR)

    async def unlink(self, name: bytes) -> None:
        raise _err(errno.ENOTDIR)

    async def rmdir(self, name: bytes) -> None:
        raise _err(errno.ENOTDIR)

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        raise _err(errno.ENOTDIR)

    # -- the file ----------------------------------------------------------

    async def open(self, flags: int) -> FileHandle:
        await self._find_upper()
        if _opens_for_write(flags):
            upper = await self._copy_up(data=not flags & os.O_TRUNC)
            return await upper.open(flags)
        if self._upper is not None:
            return await self._upper.open(flags)
        return LowerFileHandle(await self._lower.open(os.O_RDONLY))

    async def readlink(self) -> bytes:
        await self._find_upper()
        return await self._top().readlink()

    async def getxattr(self, name: bytes) -> bytes:
        await self._find_upper()
        return await self._top().getxattr(name)

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        await (await self._copy_up()).setxattr(name, value, flags)

    async def listxattr(self) -> list[bytes]:
        await self._find_upper()
        return await self._top().listxattr()

    async def removexattr(self, name: bytes) -> None:
        await (await self._copy_up()).removexattr(name)

    async def statfs(self) -> StatFs:
        return await self._upper_dir.statfs()
