"""`TmpInode`: what every tmpfs node kind shares.

Attributes, timestamps, xattrs and link counting live here; each node kind
(directory, regular file, symlink, special file) overrides only the
operations that mean something for it. The defaults answer as Linux does for
the wrong kind: ENOTDIR for directory operations on a non-directory, EINVAL
for readlink of a non-symlink.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from sandboxfs.vfs import Attr, Creds, DirEntry, FileHandle, Inode, SetAttr, StatFs, now_ns

if TYPE_CHECKING:
    from sandboxfs.tmpfs.filesystem import TmpFs

XATTR_CREATE = 1
XATTR_REPLACE = 2
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
NAME_MAX = 255


def err(code: int, what: bytes | str | None = None) -> OSError:
    """An `OSError` carrying `code`, as every VFS method reports failure."""
    if what is None:
        return OSError(code, os.strerror(code))
    name = what.decode(errors="replace") if isinstance(what, bytes) else what
    return OSError(code, os.strerror(code), name)


def check_name(name: bytes) -> None:
    """Names come from the kernel already split; only their length is ours to check."""
    assert name and name not in (b".", b"..") and b"/" not in name and b"\0" not in name, name
    if len(name) > NAME_MAX:
        raise err(errno.ENAMETOOLONG, name)


class TmpInode:
    """A tmpfs node. Subclasses set the file type bits in `mode`.

    `nlink` counts names (directories add one for `.` and one per
    subdirectory's `..`). A node is freed (its budget returned, its body
    dropped) once it has no names and no open handles.
    """

    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int, rdev: int = 0) -> None:
        self.fs = fs
        self._ino = fs.alloc_ino()
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.nlink = 0
        t = now_ns()
        self.atime_ns = t
        self.mtime_ns = t
        self.ctime_ns = t
        self.xattrs: dict[bytes, bytes] = {}
        self._freed = False

    # -- attributes --------------------------------------------------------

    @property
    def ino(self) -> int:
        return self._ino

    def size(self) -> int:
        return 0

    def blocks(self) -> int:
        return 0

    def attr(self) -> Attr:
        return Attr(ino=self._ino, mode=self.mode, nlink=self.nlink, uid=self.uid,
                    gid=self.gid, size=self.size(), atime_ns=self.atime_ns,
                    mtime_ns=self.mtime_ns, ctime_ns=self.ctime_ns, rdev=self.rdev,
                    blocks=self.blocks())

    async def getattr(self) -> Attr:
        return self.attr()

    def touch_modified(self, t: int | None = None) -> None:
        """Contents changed: mtime and ctime, as for a write or a new entry."""
        t = now_ns() if t is None else t
        self.mtime_ns = t
        self.ctime_ns = t

    def touch_changed(self, t: int | None = None) -> None:
        """Metadata changed: ctime only, as for chmod, link or rename."""
        self.ctime_ns = now_ns() if t is None else t

    def truncate(self, size: int) -> None:
        """Set a regular file's size; other kinds refuse (EISDIR / EINVAL)."""
        if stat.S_ISDIR(self.mode):
            raise err(errno.EISDIR)
        raise err(errno.EINVAL)

    async def setattr(self, changes: SetAttr) -> Attr:
        # Size first: it is the only change that can fail (ENOSPC), and a
        # failed setattr must change nothing.
        if changes.size is not None:
            if stat.S_ISDIR(self.mode):
                raise err(errno.EISDIR)
            if changes.size < 0 or not stat.S_ISREG(self.mode):
                raise err(errno.EINVAL)
            if changes.size != self.size():
                self.truncate(changes.size)
                self.touch_modified()
        if changes.mode is not None:
            self.mode = stat.S_IFMT(self.mode) | (changes.mode & 0o7777)
        if changes.uid is not None:
            self.uid = changes.uid
        if changes.gid is not None:
            self.gid = changes.gid
        if changes.atime_ns is not None:
            self.atime_ns = changes.atime_ns
        if changes.mtime_ns is not None:
            self.mtime_ns = changes.mtime_ns
        self.touch_changed(changes.ctime_ns)
        return self.attr()

    # -- link counting -----------------------------------------------------

    def drop_link(self) -> None:
        """One name fewer; frees the node when nothing refers to it any more."""
        self.nlink -= 1
        self.touch_changed()
        self.maybe_free()

    def in_use(self) -> bool:
        """Whether something other than a name still needs the node (open handles)."""
        return False

    def maybe_free(self) -> None:
        if self.nlink <= 0 and not self.in_use() and not self._freed:
            self._freed = True
            self.release_body()
            self.fs.free_inode()

    def release_body(self) -> None:
        """Give back what the node's body holds (a memfd and its budget)."""

    # -- directories: this is not one --------------------------------------

    async def lookup(self, name: bytes) -> Inode:
        raise err(errno.ENOTDIR)

    async def readdir(self) -> list[DirEntry]:
        raise err(errno.ENOTDIR)

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:
        raise err(errno.ENOTDIR)

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        raise err(errno.ENOTDIR)

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        raise err(errno.ENOTDIR)

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        raise err(errno.ENOTDIR)

    async def link(self, name: bytes, target: Inode) -> Inode:
        raise err(errno.ENOTDIR)

    async def unlink(self, name: bytes) -> None:
        raise err(errno.ENOTDIR)

    async def rmdir(self, name: bytes) -> None:
        raise err(errno.ENOTDIR)

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        raise err(errno.ENOTDIR)

    # -- files and links ---------------------------------------------------

    async def open(self, flags: int) -> FileHandle:
        # The kernel opens fifos, sockets and device nodes itself.
        raise err(errno.ENXIO)

    async def readlink(self) -> bytes:
        raise err(errno.EINVAL)

    # -- extended attributes -----------------------------------------------

    async def getxattr(self, name: bytes) -> bytes:
        value = self.xattrs.get(name)
        if value is None:
            raise err(errno.ENODATA, name)
        return value

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        if not name or len(name) > XATTR_NAME_MAX:
            raise err(errno.ERANGE, name)
        if len(value) > XATTR_SIZE_MAX:
            raise err(errno.E2BIG, name)
        if flags & ~(XATTR_CREATE | XATTR_REPLACE):
            raise err(errno.EINVAL)
        present = name in self.xattrs
        if flags & XATTR_CREATE and present:
            raise err(errno.EEXIST, name)
        if flags & XATTR_REPLACE and not present:
            raise err(errno.ENODATA, name)
        self.xattrs[name] = bytes(value)
        self.touch_changed()

    async def listxattr(self) -> list[bytes]:
        return list(self.xattrs)

    async def removexattr(self, name: bytes) -> None:
        if self.xattrs.pop(name, None) is None:
            raise err(errno.ENODATA, name)
        self.touch_changed()

    async def statfs(self) -> StatFs:
        return self.fs.statfs()
