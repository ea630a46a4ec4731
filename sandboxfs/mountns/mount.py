"""`Mount`: one filesystem attached somewhere in a sandbox's mount namespace.

A mount is configuration the namespace enforces on top of the filesystem it
holds: read-only (EROFS on every write path, whatever the filesystem could
do), `nosuid` (set-id bits are never reported, so nothing executes with
them), `nodev` (no device node can be made), `noexec` (opening a file for
execution is EACCES), and the cache policy the FUSE adapter turns into
kernel timeouts. Filesystems never see these options (STYLE.md: mount
configuration lives outside the filesystems).
"""

from __future__ import annotations

from dataclasses import dataclass

from sandboxfs.vfs import Inode

#: Cache policies, as `sandboxfs.plan` names them.
EXCLUSIVE = "exclusive"
REVALIDATE = "revalidate"
UNCACHED = "none"


@dataclass(frozen=True, slots=True)
class Mount:
    """A filesystem root at `destination`, with the flags the namespace enforces.

    `index` is the mount's position in the namespace (0 for the root); it
    keys inode numbers, so two mounts never show the same number.
    `revalidate` is the window in seconds for the revalidate policy.
    `share_key` names a filesystem mounted in several namespaces (a pod's
    shared master): its inode numbers are then the same in all of them.
    """

    index: int
    destination: str
    root: Inode
    fstype: str = "tmpfs"
    readonly: bool = False
    nosuid: bool = False
    nodev: bool = False
    noexec: bool = False
    cache: str = EXCLUSIVE
    revalidate: float = 1.0
    share_key: str | None = None
