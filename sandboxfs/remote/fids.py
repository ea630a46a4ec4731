"""Bounded fids: the gofer holds an open O_PATH descriptor per fid, so a walk
over a large tree must not keep one per file it ever saw.

`FidTable` remembers which inodes hold a fid, least recently used first.
Past `capacity`, the oldest gives its fid back (it walks again from its
parent when it next needs one). A fid given back is clunked only after a
grace period, because an operation that read it just before may still be
using it; a fid of a file replaced on the host is clunked at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Protocol


class HoldsFid(Protocol):
    def drop_fid(self) -> int | None:
        """Forget this inode's fid and return it (None if it had none)."""
        ...


class FidTable:
    def __init__(self, capacity: int = 4096, grace: float = 5.0) -> None:
        self.capacity = capacity
        self.grace = grace
        self._held: OrderedDict[int, HoldsFid] = OrderedDict()
        self._retired: deque[tuple[float, int]] = deque()

    def touch(self, inode: HoldsFid) -> None:
        """`inode` holds a fid and just used it."""
        key = id(inode)
        if key in self._held:
            self._held.move_to_end(key)
            return
        self._held[key] = inode
        while len(self._held) > self.capacity:
            _, victim = self._held.popitem(last=False)
            fid = victim.drop_fid()
            if fid is not None:
                self._retired.append((time.monotonic() + self.grace, fid))

    def forget(self, inode: HoldsFid) -> None:
        self._held.pop(id(inode), None)

    def retire_now(self, fid: int) -> None:
        """A fid nobody may use any more (its file was replaced on the host)."""
        self._retired.appendleft((0.0, fid))

    def due(self) -> list[int]:
        """Fids whose grace is over (or the oldest, past `capacity` retired ones
        waiting): the caller clunks them."""
        now = time.monotonic()
        out = []
        while self._retired and (self._retired[0][0] <= now
                                 or len(self._retired) > self.capacity):
            out.append(self._retired.popleft()[1])
        return out

    def __len__(self) -> int:
        return len(self._held)
