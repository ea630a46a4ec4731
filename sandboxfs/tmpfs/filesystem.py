"""`TmpFs`: one memory filesystem instance, its inode numbers and its budget."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from sandboxfs.vfs import Creds, StatFs

if TYPE_CHECKING:
    from sandboxfs.tmpfs.regular_file import TmpFile

PAGE_SIZE = 4096

#: Default inode bound when none is given: about as many as Linux tmpfs gives a
#: machine with a few GiB of RAM; large enough never to matter for one rootfs.
DEFAULT_INODE_LIMIT = 1 << 20


def pages(size: int) -> int:
    """Pages a body of `size` bytes is charged for."""
    return (size + PAGE_SIZE - 1) // PAGE_SIZE


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def default_size_limit() -> int:
    """Half of RAM, as tmpfs defaults to."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


class TmpFs:
    """A memory filesystem: `root` is its root directory.

    The budget is simple and predictable: every regular file is charged its
    size rounded up to whole pages (a sparse file's holes count too), and
    every live inode counts once against `inode_limit`. Symlink targets,
    directory entries and xattrs are not charged. Inode numbers come from a
    counter starting at `ino_base` and are never reused by one instance, so a
    number seen once can never name a different file later.
    """

    def __init__(self, size_limit: int | None = None, inode_limit: int | None = None, *,
                 ino_base: int = 1, root_mode: int = 0o755,
                 root_creds: Creds | None = None) -> None:
        from sandboxfs.tmpfs.directory import TmpDir  # node kinds import this module

        self.size_limit = default_size_limit() if size_limit is None else size_limit
        self.inode_limit = DEFAULT_INODE_LIMIT if inode_limit is None else inode_limit
        self._limit_pages = self.size_limit // PAGE_SIZE
        self._next_ino = ino_base
        self.used_pages = 0
        self.used_inodes = 0
        # Files holding a memfd, so `close()` can give every descriptor back.
        self.bodies: set[TmpFile] = set()
        creds = root_creds or Creds()
        self.root = TmpDir(self, 0o040000 | (root_mode & 0o7777), creds.uid, creds.gid, None)

    # -- inode numbers and the inode budget --------------------------------

    def alloc_ino(self) -> int:
        """A fresh inode number, charged to the inode budget (ENOSPC when spent)."""
        if self.used_inodes >= self.inode_limit:
            raise _enospc()
        self.used_inodes += 1
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def free_inode(self) -> None:
        self.used_inodes -= 1

    # -- the byte budget ---------------------------------------------------

    def max_size(self, old_size: int) -> int:
        """The largest size a file now `old_size` bytes long may grow to."""
        free = self._limit_pages - self.used_pages
        return max(old_size, (pages(old_size) + max(free, 0)) * PAGE_SIZE)

    def resize(self, old_size: int, new_size: int) -> None:
        """Charge a file's change of size; ENOSPC (and nothing charged) if over.

        A size that could not fit even in an empty filesystem is EFBIG, the
        answer for a file larger than the filesystem can hold (holes are
        charged, so that bound is the whole budget).
        """
        delta = pages(new_size) - pages(old_size)
        if pages(new_size) > self._limit_pages:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
        if delta > 0 and self.used_pages + delta > self._limit_pages:
            raise _enospc()
        self.used_pages += delta

    def close(self) -> None:
        """Release every file body (memfd) at once: the filesystem is being
        dropped (a pod's container removed) while names still hold them."""
        for body in list(self.bodies):
            body.release_body()

    def statfs(self) -> StatFs:
        free_pages = max(self._limit_pages - self.used_pages, 0)
        free_inodes = max(self.inode_limit - self.used_inodes, 0)
        return StatFs(bsize=PAGE_SIZE, frsize=PAGE_SIZE, blocks=self._limit_pages,
                      bfree=free_pages, bavail=free_pages, files=self.inode_limit,
                      ffree=free_inodes, favail=free_inodes, namemax=255)
