"""Plain value types shared by every filesystem: attributes, credentials, entries."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxfs.vfs.interfaces import Inode


def now_ns() -> int:
    """The wall clock in nanoseconds, as timestamps are stored."""
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class Attr:
    """An inode's attributes, as `stat(2)` reports them.

    `ino` is the number the FUSE adapter uses as the kernel's node id and
    reports as `st_ino`: a filesystem must keep it unique among its live
    inodes and stable for the life of the mount.
    """

    ino: int
    mode: int  # file type bits and permission bits, as st_mode
    nlink: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    rdev: int = 0
    blocks: int = 0  # 512-byte units
    blksize: int = 4096


@dataclass(frozen=True, slots=True)
class SetAttr:
    """The changes a `setattr` asks for; a field left `None` stays as it is.

    Times are nanoseconds since the epoch. `ctime_ns` is set by the filesystem
    itself on every change (the caller never passes it), except that
    checkpoint/restore may pass it to bring a file back exactly.
    """

    mode: int | None = None  # permission bits only (07777)
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (self.mode, self.uid, self.gid, self.size, self.atime_ns,
                      self.mtime_ns, self.ctime_ns)
        )


@dataclass(frozen=True, slots=True)
class Creds:
    """Who a creating call acts for: new inodes are owned by (uid, gid).

    Permission checks are the kernel's (`default_permissions`); filesystems
    use `Creds` only for ownership of what they create.
    """

    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One directory entry with its inode and attributes (readdirplus)."""

    name: bytes
    inode: Inode
    attr: Attr


@dataclass(frozen=True, slots=True)
class StatFs:
    """`statvfs(2)` figures, in units of `frsize`."""

    bsize: int
    frsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    favail: int
    namemax: int = 255
