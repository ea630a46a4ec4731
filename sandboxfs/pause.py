"""`Pauser`: hold new filesystem requests while the tree is being checkpointed.

`pause()` stops letting requests in, lets the requests in flight finish and
returns; new requests wait (none fail) until `resume()`. The FUSE adapter
calls `enter`/`leave` around every request, so a checkpoint taken while
paused sees each write entirely or not at all. The running path costs two
integer updates and one flag test.
"""

from __future__ import annotations

import trio


class Pauser:
    def __init__(self) -> None:
        self.paused = False
        self._inflight = 0
        self._open = trio.Event()
        self._open.set()
        self._idle: trio.Event | None = None

    async def wait_open(self) -> None:
        """Wait until not paused (call when `paused` is True)."""
        while self.paused:
            await self._open.wait()

    def enter(self) -> None:
        self._inflight += 1

    def leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0 and self._idle is not None:
            self._idle.set()

    async def pause(self) -> None:
        """Stop letting requests in, then wait for those in flight to finish.

        Called from a task that is not itself a request (the control socket)."""
        if not self.paused:
            self.paused = True
            self._open = trio.Event()
        while self._inflight:
            self._idle = trio.Event()
            await self._idle.wait()
        self._idle = None

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._open.set()
