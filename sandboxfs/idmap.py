"""Id-mapped mounts: owners shifted on the fly between the layers and the kernel.

A user-namespaced container sees its image's files as its own only if the
kernel sees them owned by the host ids its namespace maps to. Instead of a
recursive chown of the image (seconds for a large tree, and per
namespace), the mount presents every owner shifted, as fuse-overlayfs's
`uidmapping=`/`gidmapping=` and containerd's `uidmap=`/`gidmap=` do:

- a range `INSIDE:OUTSIDE:LENGTH` says the ids INSIDE..INSIDE+LENGTH-1 on
  disk (the container's ids, as the image stores them) are shown to the
  kernel as OUTSIDE..OUTSIDE+LENGTH-1 (host ids);
- an id on disk outside every range is shown as the overflow id 65534, as
  the kernel shows an unmapped id;
- the other way, for files being created and for chown: a caller's host id
  is stored as its inside id; a host id outside every range cannot be
  stored (EOVERFLOW, as on a kernel id-mapped mount);
- `squash_to_root`, `squash_to_uid=N`, `squash_to_gid=N` show every owner
  as 0 or N (fuse-overlayfs's options); what is stored follows the ranges.

Mapping costs nothing at mount time: it is applied per reply, so the mount
is as quick for a 20,000-file tree as for an empty one (bench/idmap.py).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

OVERFLOW_ID = 65534
MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "unchanged" to chown


class IdMapError(ValueError):
    """A mapping option that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class IdRange:
    inside: int  # the id on disk
    outside: int  # the id the kernel sees
    length: int


@dataclass(frozen=True, slots=True)
class IdMapper:
    """One id space (uids or gids): ranges, and an optional squash."""

    ranges: tuple[IdRange, ...] = ()
    squash: int | None = None

    @property
    def is_identity(self) -> bool:
        return not self.ranges and self.squash is None

    def shown(self, stored: int) -> int:
        """The id the kernel sees for an owner stored on disk."""
        if self.squash is not None:
            return self.squash
        if not self.ranges:
            return stored
        for r in self.ranges:
            if r.inside <= stored < r.inside + r.length:
                return r.outside + stored - r.inside
        return OVERFLOW_ID

    def stored(self, shown: int) -> int:
        """The id to store on disk for a caller's (host) id; EOVERFLOW if none."""
        if not self.ranges:
            return shown
        for r in self.ranges:
            if r.outside <= shown < r.outside + r.length:
                return r.inside + shown - r.outside
        raise OSError(errno.EOVERFLOW, os.strerror(errno.EOVERFLOW))


@dataclass(frozen=True, slots=True)
class IdMapping:
    uid: IdMapper = field(default_factory=IdMapper)
    gid: IdMapper = field(default_factory=IdMapper)

    @property
    def is_identity(self) -> bool:
        return self.uid.is_identity and self.gid.is_identity


def parse_ranges(option: str, value: str) -> tuple[IdRange, ...]:
    """`0:1000:1:1:110000:65536` or `0:1000:1,1:110000:65536` (triples of
    inside:outside:length) into ranges, checked: numbers, lengths, overlaps."""
    fields = value.replace(",", ":").split(":")
    if len(fields) % 3 or not value:
        raise IdMapError(f"{option}={value!r}: expected INSIDE:OUTSIDE:LENGTH triples")
    try:
        numbers = [int(f, 10) for f in fields]
    except ValueError:
        raise IdMapError(f"{option}={value!r}: ids and lengths are decimal numbers") from None
    ranges = tuple(IdRange(*numbers[i:i + 3]) for i in range(0, len(numbers), 3))
    for r in ranges:
        if r.length <= 0 or r.inside < 0 or r.outside < 0:
            raise IdMapError(f"{option}={value!r}: lengths must be positive, ids not negative")
        if r.inside + r.length - 1 > MAX_ID or r.outside + r.length - 1 > MAX_ID:
            raise IdMapError(f"{option}={value!r}: a range goes past id {MAX_ID}")
    for side in ("inside", "outside"):
        spans = sorted((getattr(r, side), getattr(r, side) + r.length) for r in ranges)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise IdMapError(f"{option}={value!r}: ranges overlap on the {side} side")
    return ranges


def parse_id(option: str, value: str) -> int:
    if not value.isdigit() or int(value) > MAX_ID:
        raise IdMapError(f"{option}={value!r}: expected an id from 0 to {MAX_ID}")
    return int(value)


def mapping_of(uid_ranges: Sequence[IdRange], gid_ranges: Sequence[IdRange], *,
               squash_uid: int | None = None, squash_gid: int | None = None) -> IdMapping:
    return IdMapping(IdMapper(tuple(uid_ranges), squash_uid),
                     IdMapper(tuple(gid_ranges), squash_gid))
