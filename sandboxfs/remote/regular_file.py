"""`RemoteFile`: an open host file, read and written on its donated fd."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxfs.remote.inode import RemoteInode


class RemoteFile:
    """An open host file: pread/pwrite on the donated fd, else Tread/Twrite.

    A read-only handle may start with neither (a lazy open): its first read
    takes the inode's cached fd, or has the gofer open one.
    """

    def __init__(self, inode: RemoteInode, fid: int | None, fd: int | None,
                 *, cached: bool) -> None:
        self._inode = inode
        self._fid = fid
        self._fd = fd
        self._cached = cached
        if fd is not None and cached:
            inode._fs.fds.acquire(fd)

    async def read(self, offset: int, size: int) -> bytes:
        if self._fd is None and self._fid is None:
            self._fd = await self._inode.cached_read_fd()  # the lazy open
            self._inode._fs.fds.acquire(self._fd)
        if self._fd is not None:
            return os.pread(self._fd, size, offset)
        assert self._fid is not None
        client = self._inode._fs.client
        chunks: list[bytes] = []
        while size > 0:
            chunk = await client.read(self._fid, offset, size)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    async def write(self, offset: int, data: bytes) -> int:
        if self._fd is not None:
            written = os.pwrite(self._fd, data, offset)
        else:
            assert self._fid is not None
            written = await self._inode._fs.client.write(self._fid, offset, data)
        self._inode._stat = await self._inode._fs.client.getattr(await self._inode.fid())
        return written

    async def flush(self) -> None:
        return None

    async def fsync(self, datasync: bool) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        elif self._fid is not None:
            await self._inode._fs.client.fsync(self._fid)

    async def release(self) -> None:
        if self._fd is not None:
            if self._cached:
                self._inode._fs.fds.release(self._fd)
            else:
                os.close(self._fd)
            self._fd = None
        if self._fid is not None:
            fid, self._fid = self._fid, None
            await self._inode._fs.client.clunk(fid)

    def fileno(self) -> int | None:
        return self._fd
