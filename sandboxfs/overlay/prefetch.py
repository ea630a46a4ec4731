"""Reading lower listings ahead of a walk.

A cold walk (find, tar, git status) lists a directory, then looks into each
of its subdirectories; each listing is a round trip to the gofer, and while
it is in flight both processes mostly wait for each other. When a lower
listing is read, the listings of its first subdirectories are asked for in
the background, by a few worker tasks, so that the gofer works while the
daemon answers the kernel, and the walk finds them read.

Bounded three ways: a few subdirectories per listing, a small queue (an
offer to a full queue is dropped), and listings already read or being read
are not asked again. A prefetch that fails leaves nothing behind: the
walk's own request reads the listing and meets the error itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from sandboxfs.vfs import Inode

log = logging.getLogger(__name__)

WORKERS = 4
QUEUE = 256
PER_LISTING = 32


class ListingPrefetch:
    """Background readers of listings; `read(layer, directory)` is the
    filesystem's own (caching) listing read."""

    def __init__(self, read: Callable[[int, Inode], Awaitable[object]]) -> None:
        self._read = read
        self._send, self._recv = trio.open_memory_channel[tuple[int, Inode]](QUEUE)
        self._started = False
        self.offered = 0
        self.dropped = 0

    def offer(self, layer: int, directory: Inode) -> None:
        """Ask for a listing in the background, unless the queue is full."""
        if not self._started:
            self._started = True
            for _ in range(WORKERS):
                trio.lowlevel.spawn_system_task(self._worker)
        try:
            self._send.send_nowait((layer, directory))
            self.offered += 1
        except trio.WouldBlock:
            self.dropped += 1

    async def _worker(self) -> None:
        async for layer, directory in self._recv:
            try:
                await self._read(layer, directory)
            except Exception as exc:  # noqa: BLE001 - the walk will meet it itself
                log.debug("prefetch of a listing failed: %s", exc)
