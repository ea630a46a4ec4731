"""`TmpFile` (a regular file whose body is a memfd) and `TmpFileHandle`.

The body is never Python bytes: it lives in a memfd created at the first
non-empty write or truncate up (or when someone asks for `fileno()`), so an
empty file costs no descriptor. The memfd's own size always equals the
file's size. Reads and writes are `os.pread`/`os.pwrite` on it: memory
operations, cheap enough for the trio thread.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from sandboxfs.tmpfs.filesystem import PAGE_SIZE, pages
from sandboxfs.tmpfs.inode import TmpInode, err
from sandboxfs.vfs import FileHandle

if TYPE_CHECKING:
    from sandboxfs.tmpfs.filesystem import TmpFs


class TmpFile(TmpInode):
    """A regular file. Its bytes stay readable through open handles after its
    last name is removed; the memfd closes when the last handle is released."""

    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int) -> None:
        super().__init__(fs, stat.S_IFREG | (mode & 0o7777), uid, gid)
        self._size = 0
        self._fd: int | None = None
        self._handles = 0

    def size(self) -> int:
        return self._size

    def blocks(self) -> int:
        return pages(self._size) * (PAGE_SIZE // 512)

    def memfd(self) -> int:
        """The memfd holding the body, created (at the current size) on first need."""
        if self._fd is None:
            fd = os.memfd_create("sandboxfs-tmpfs", os.MFD_CLOEXEC)
            if self._size:
                os.ftruncate(fd, self._size)
            self._fd = fd
            self.fs.bodies.add(self)
        return self._fd

    # -- body --------------------------------------------------------------

    def read_at(self, offset: int, size: int) -> bytes:
        if offset < 0:
            raise err(errno.EINVAL)
        size = min(size, self._size - offset)
        if size <= 0 or self._fd is None:
            return b"\0" * max(size, 0)
        return os.pread(self._fd, size, offset)

    def write_at(self, offset: int, data: bytes) -> int:
        """Write what fits in the budget: all of `data`, a prefix (short write), or
        ENOSPC when not one byte fits. Bytes already written stay intact."""
        if offset < 0:
            raise err(errno.EINVAL)
        if not data:
            return 0
        end = offset + len(data)
        if end > self._size:
            room = self.fs.max_size(self._size)
            if offset >= room:
                raise err(errno.ENOSPC)
            if end > room:
                data = data[:room - offset]
                end = room
            self.fs.resize(self._size, end)
        fd = self.memfd()
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                done += os.pwrite(fd, view[done:], offset + done)
        finally:
            if end > self._size:
                new_size = max(self._size, offset + done)
                # Give back what was charged but not written.
                self.fs.resize(end, new_size)
                self._size = new_size
        self.touch_modified()
        return done

    def truncate(self, size: int) -> None:
        self.fs.resize(self._size, size)
        try:
            if self._fd is not None or size:
                os.ftruncate(self.memfd(), size)
        except BaseException:
            self.fs.resize(size, self._size)
            raise
        self._size = size

    # -- lifetime ----------------------------------------------------------

    def in_use(self) -> bool:
        return self._handles > 0

    def release_body(self) -> None:
        self.fs.resize(self._size, 0)
        self._size = 0
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.fs.bodies.discard(self)

    async def open(self, flags: int) -> FileHandle:
        handle = TmpFileHandle(self, flags)
        if flags & os.O_TRUNC and self._size:
            self.truncate(0)
        if flags & os.O_TRUNC:
            self.touch_modified()
        return handle


class TmpFileHandle:
    """An open `TmpFile`. Offsets are explicit; O_APPEND writes go to the end."""

    def __init__(self, inode: TmpFile, flags: int) -> None:
        acc = flags & os.O_ACCMODE
        self.inode = inode
        self.readable = acc in (os.O_RDONLY, os.O_RDWR)
        self.writable = acc in (os.O_WRONLY, os.O_RDWR)
        self.append = bool(flags & os.O_APPEND)
        self._open = True
        inode._handles += 1

    async def read(self, offset: int, size: int) -> bytes:
        if not self.readable or not self._open:
            raise err(errno.EBADF)
        return self.inode.read_at(offset, size)

    async def write(self, offset: int, data: bytes) -> int:
        if not self.writable or not self._open:
            raise err(errno.EBADF)
        if self.append:
            offset = self.inode.size()
        return self.inode.write_at(offset, data)

    async def flush(self) -> None:
        return None

    async def fsync(self, datasync: bool) -> None:
        return None

    async def release(self) -> None:
        if self._open:
            self._open = False
            self.inode._handles -= 1
            self.inode.maybe_free()

    def fileno(self) -> int | None:
        """The body's memfd. Writers through it must stay within the file's
        current size (set it first with `setattr(size=...)`): the budget is
        charged by size, and the size only changes through this filesystem."""
        return self.inode.memfd()
