"""`ReadOnlyDirectory`: the part every unchangeable directory shares.

Stub directories of the mount-point tree and a pod's top directory list
what they are given and refuse every change; subclasses say with which
errno (`refusal`) and provide attributes, lookup and listing.
"""

from __future__ import annotations

import errno
import os

from sandboxfs.vfs.attr import Attr, Creds, SetAttr
from sandboxfs.vfs.interfaces import FileHandle, Inode


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class ReadOnlyDirectory:
    """Refuses every change with `refusal`; is not a file or a symlink."""

    refusal = errno.EROFS

    async def setattr(self, changes: SetAttr) -> Attr:
        raise _err(self.refusal)

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:
        raise _err(self.refusal)

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        raise _err(self.refusal)

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        raise _err(self.refusal)

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        raise _err(self.refusal)

    async def link(self, name: bytes, target: Inode) -> Inode:
        raise _err(self.refusal)

    async def unlink(self, name: bytes) -> None:
        raise _err(self.refusal)

    async def rmdir(self, name: bytes) -> None:
        raise _err(self.refusal)

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        raise _err(self.refusal)

    async def open(self, flags: int) -> FileHandle:
        raise _err(errno.EISDIR)

    async def readlink(self) -> bytes:
        raise _err(errno.EINVAL)

    async def getxattr(self, name: bytes) -> bytes:
        raise _err(errno.ENODATA)

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        raise _err(self.refusal)

    async def listxattr(self) -> list[bytes]:
        return []

    async def removexattr(self, name: bytes) -> None:
        raise _err(self.refusal)
