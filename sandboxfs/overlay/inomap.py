"""Inode numbers for the merged view: stable, unique, and a lower file's own.

Tools such as git record (st_ino, mtime, ctime, size) and compare later, so
a lower file shows its lower inode number, and keeps it after copy-up for
the life of the mount. Numbers are granted per key (layer, inode number in
that layer): the natural number when no other key holds it, else one from a
high range no layer is expected to reach. 1 is the root's (FUSE's root node
id). Numbers are never given back, so one can never name two files.
"""

from __future__ import annotations

#: Layer numbers: the upper is 0, lower i (top-most first) is i + 1.
UPPER = 0

#: Where numbers for upper-only inodes and collisions start.
HIGH_BASE = 1 << 48
ROOT_INO = 1


class InoAllocator:
    def __init__(self, high_base: int = HIGH_BASE) -> None:
        self._high_base = high_base
        self._next_high = high_base
        self._by_key: dict[tuple[int, int], int] = {}
        self._natural_used: set[int] = {ROOT_INO}

    def grant(self, key: tuple[int, int], natural: int | None) -> int:
        """The number for `key`: the one it had, else `natural` when free, else
        a fresh high one. Pass `natural=None` for upper-only inodes."""
        got = self._by_key.get(key)
        if got is not None:
            return got
        if natural is not None and ROOT_INO < natural < self._high_base \
                and natural not in self._natural_used:
            self._natural_used.add(natural)
            ino = natural
        else:
            ino = self._next_high
            self._next_high += 1
        self._by_key[key] = ino
        return ino

    def alias(self, key: tuple[int, int], ino: int) -> None:
        """Make `key` (an upper copy) answer the number its origin already has."""
        self._by_key.setdefault(key, ino)

    def __len__(self) -> int:
        return len(self._by_key)
