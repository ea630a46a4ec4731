"""A bounded LRU of host fds donated by the gofer, one per inode.

Reopening a lower file costs a 9P round trip; keeping its donated fd lets the
next open be free. The bound keeps the daemon well under its fd limit; an
evicted fd is closed only when no open handle still reads from it.
"""

from __future__ import annotations

import os
from collections import OrderedDict


class FdCache:
    """Maps a key (the inode's qid path) to an open read-only host fd."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._users: dict[int, int] = {}  # fd -> open handles using it
        self._evicted: set[int] = set()  # fds dropped from the LRU but still in use

    def get(self, key: int) -> int | None:
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
        return fd

    def put(self, key: int, fd: int) -> int:
        """Remember `fd` for `key`; returns the fd to use (an existing one wins)."""
        existing = self._fds.get(key)
        if existing is not None:
            os.close(fd)
            return existing
        self._fds[key] = fd
        while len(self._fds) > self._capacity:
            _, old = self._fds.popitem(last=False)
            if self._users.get(old, 0) > 0:
                self._evicted.add(old)
            else:
                os.close(old)
        return fd

    def __contains__(self, key: int) -> bool:
        """Whether `key` has an fd (without touching the LRU order)."""
        return key in self._fds

    def acquire(self, fd: int) -> None:
        self._users[fd] = self._users.get(fd, 0) + 1

    def release(self, fd: int) -> None:
        left = self._users.get(fd, 0) - 1
        if left > 0:
            self._users[fd] = left
            return
        self._users.pop(fd, None)
        if fd in self._evicted:
            self._evicted.discard(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        for fd in self._evicted:
            os.close(fd)
        self._fds.clear()
        self._evicted.clear()
        self._users.clear()

    def __len__(self) -> int:
        return len(self._fds)
