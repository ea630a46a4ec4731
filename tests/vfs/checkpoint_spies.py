"""Inode and handle wrappers for the checkpoint tests: they see every read
the writer makes, and can fail or stall it half way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sandboxfs.vfs import DirEntry, FileHandle, Inode

OnRead = Callable[[int, int], Awaitable[None]]  # (offset, size) before each read


class SpyHandle:
    """A handle without `fileno()`, so the writer must use `read`."""

    def __init__(self, inner: FileHandle, on_read: OnRead) -> None:
        self.inner = inner
        self.on_read = on_read

    async def read(self, offset: int, size: int) -> bytes:
        await self.on_read(offset, size)
        return await self.inner.read(offset, size)

    def fileno(self) -> int | None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SpyInode:
    """`inner` with every file below it opened through a `SpyHandle`."""

    def __init__(self, inner: Inode, on_read: OnRead) -> None:
        self.inner = inner
        self.on_read = on_read

    async def readdir(self) -> list[DirEntry]:
        return [DirEntry(e.name, SpyInode(e.inode, self.on_read), e.attr)  # type: ignore[arg-type]
                for e in await self.inner.readdir()]

    async def open(self, flags: int) -> FileHandle:
        return SpyHandle(await self.inner.open(flags), self.on_read)  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
