"""Open files of the overlay: a lower file read through its own handle.

An upper file's handle is the upper's own (returned as is). A lower file
opened for reading gets `LowerFileHandle`, which forwards reads (and the fd,
for in-kernel copies) and refuses writes: the overlay never writes a lower.
A handle opened before a copy-up keeps reading the lower bytes, as in
overlayfs.
"""

from __future__ import annotations

import errno
import os

from sandboxfs.vfs import FileHandle


class LowerFileHandle:
    def __init__(self, lower: FileHandle) -> None:
        self._lower = lower

    async def read(self, offset: int, size: int) -> bytes:
        return await self._lower.read(offset, size)

    async def write(self, offset: int, data: bytes) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    async def flush(self) -> None:
        return None

    async def fsync(self, datasync: bool) -> None:
        return None

    async def release(self) -> None:
        await self._lower.release()

    def fileno(self) -> int | None:
        return self._lower.fileno()
