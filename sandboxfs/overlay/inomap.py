"""Inode numbers for the merged view: stable, unique, and a lower file's own.

Tools such as git record (st_ino, mtime, ctime, size) and compare later, so
a lower file shows its lower inode number, and keeps it after copy-up.

The scheme is overlayfs's `xino`: every layer has a filesystem index
(`fsid`), 0 for the first host filesystem met in layer order (upper first,
then the lowers top-most first), 1 for the next distinct one, and so on; a
file's number is its own with the fsid in bits 48 and up. Layers on one
filesystem show their host numbers unchanged; layers on different
filesystems can never collide; and the number depends only on the layer
configuration, so it is the same after a remount.

A copy-up keeps the lower's number: in memory for the life of the mount,
and on disk in the upper copy's `trusted.overlay.sandboxfs.ino` xattr, read
back when the copy is met after a remount.

Numbers that cannot be composed (a host number past 48 bits, a layer with
no host filesystem such as the memory upper, a recorded number already
taken) come from a high range instead: unique, but only for this mount.
1 is the root's (FUSE's root node id). Numbers are never given back.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Layer numbers: the upper is 0, lower i (top-most first) is i + 1.
UPPER = 0

#: A layer's host numbers are shifted by its fsid to this bit.
FSID_SHIFT = 48
#: Where numbers for upper-only memory inodes and misfits start: the last
#: fsid's range, below the mount namespace's (`mountns.MOUNT_INO_BASE`).
HIGH_BASE = 255 << FSID_SHIFT
ROOT_INO = 1


def layer_fsids(devs: Sequence[int | None]) -> list[int | None]:
    """Filesystem indexes for layers with these host devices (None: no host
    filesystem, such as a memory upper), numbered in order of first sight."""
    seen: dict[int, int] = {}
    out: list[int | None] = []
    for dev in devs:
        if dev is None:
            out.append(None)
            continue
        fsid = seen.setdefault(dev, len(seen))
        out.append(fsid if fsid < HIGH_BASE >> FSID_SHIFT else None)
    return out


class InoAllocator:
    """Numbers per key (layer, inode number in that layer). `fsids` gives each
    layer's filesystem index; without it the upper has none and every lower
    is fsid 0 (one host filesystem below a memory upper)."""

    def __init__(self, fsids: Sequence[int | None] | None = None) -> None:
        self._fsids = list(fsids) if fsids is not None else None
        self._next_high = HIGH_BASE
        self._by_key: dict[tuple[int, int], int] = {}
        self._used: set[int] = {ROOT_INO}

    def natural(self, layer: int, ino: int) -> int | None:
        """The composed number of host inode `ino` of `layer`, if it has one."""
        if self._fsids is None:
            fsid = None if layer == UPPER else 0
        else:
            fsid = self._fsids[layer] if layer < len(self._fsids) else None
        if fsid is None or ino >= 1 << FSID_SHIFT:
            return None
        return fsid << FSID_SHIFT | ino

    def known(self, key: tuple[int, int]) -> bool:
        return key in self._by_key

    def grant(self, key: tuple[int, int], wanted: int | None) -> int:
        """The number for `key`: the one it had, else `wanted` when free, else
        a fresh high one."""
        got = self._by_key.get(key)
        if got is not None:
            return got
        if wanted is not None and ROOT_INO < wanted < HIGH_BASE and wanted not in self._used:
            ino = wanted
        else:
            ino = self._next_high
            self._next_high += 1
        self._used.add(ino)
        self._by_key[key] = ino
        return ino

    def grant_natural(self, layer: int, ino: int) -> int:
        return self.grant((layer, ino), self.natural(layer, ino))

    def alias(self, key: tuple[int, int], ino: int) -> None:
        """Make `key` (an upper copy) answer the number its origin already has."""
        self._by_key.setdefault(key, ino)

    def __len__(self) -> int:
        return len(self._by_key)
