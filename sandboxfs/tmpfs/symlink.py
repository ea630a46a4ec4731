"""`TmpSymlink`: a symbolic link; its target is metadata, not a charged body."""

from __future__ import annotations

import errno
import stat
from typing import TYPE_CHECKING

from sandboxfs.tmpfs.inode import TmpInode, err
from sandboxfs.vfs import FileHandle

if TYPE_CHECKING:
    from sandboxfs.tmpfs.filesystem import TmpFs

PATH_MAX = 4096


class TmpSymlink(TmpInode):
    def __init__(self, fs: TmpFs, target: bytes, uid: int, gid: int) -> None:
        if not target:
            raise err(errno.ENOENT)
        if len(target) >= PATH_MAX:
            raise err(errno.ENAMETOOLONG)
        super().__init__(fs, stat.S_IFLNK | 0o777, uid, gid)
        self.target = bytes(target)

    def size(self) -> int:
        return len(self.target)

    async def readlink(self) -> bytes:
        return self.target

    async def open(self, flags: int) -> FileHandle:
        raise err(errno.ELOOP)
