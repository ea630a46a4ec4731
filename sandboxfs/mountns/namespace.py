"""`MountNamespace`: one sandbox's tree of mounts, seen from its root.

The namespace owns the mount-point tree, the stub directories of missing
mount points, and inode numbering across mounts. The root mount (index 0)
keeps its filesystem's own numbers: the rootfs overlay shows a lower file's
host inode number, which tools such as git rely on. Every other mount's
numbers are granted from an `InoSpace`, a range of their own, per (mount,
number), so two mounts never show the same number (FUSE has one node id
space) and a number is never reused.

In a pod, one daemon serves several namespaces through one FUSE mount: they
share one `InoSpace`, only the first keeps its root's own numbers, and a
pod-shared master mounted in several namespaces is numbered by its
`Mount.share_key`, so every container sees the same file as the same inode
(one node id, one page cache).
"""

from __future__ import annotations

import dataclasses

from sandboxfs.mountns.inode import MountedInode, hide_setid
from sandboxfs.mountns.mount import Mount
from sandboxfs.mountns.stub import StubDir
from sandboxfs.mountns.tree import MountTree, TreeNode
from sandboxfs.vfs import Attr, Inode

#: Where numbers of non-root mounts and stubs start: above the overlay's own ranges.
MOUNT_INO_BASE = 1 << 56
ROOT_NODE_ID = 1


class InoSpace:
    """Numbers granted per (key, number), from MOUNT_INO_BASE up, never reused."""

    def __init__(self) -> None:
        self._inos: dict[tuple[object, int], int] = {}
        self._next = MOUNT_INO_BASE

    def fresh(self) -> int:
        ino = self._next
        self._next += 1
        return ino

    def grant(self, key: object, ino: int) -> int:
        got = self._inos.get((key, ino))
        if got is None:
            got = self._inos[(key, ino)] = self.fresh()
        return got

    def __len__(self) -> int:
        return len(self._inos)


class MountNamespace:
    """Mounts placed in order (parents before children); `root` is the walk's start.

    `inos` is shared by the namespaces of one FUSE mount; `own_root_inos`
    False numbers the root mount like any other (every namespace of a pod
    but the first).
    """

    def __init__(self, root: Mount, *, inos: InoSpace | None = None,
                 own_root_inos: bool = True) -> None:
        if root.index != 0 or root.destination != "/":
            raise ValueError("the root mount is index 0 at /")
        self._tree = MountTree()
        self._tree.root.mount = root
        self._root_mount = root
        self._inos = inos if inos is not None else InoSpace()
        self._own_root_inos = own_root_inos
        self._stubs: dict[int, StubDir] = {}
        self.mounts: list[Mount] = [root]
        self.root = MountedInode(self, root.root, root, self._tree.root)

    def add(self, mount: Mount) -> None:
        """Place `mount` at its destination; it hides whatever was seen there."""
        if mount.destination == "/":
            raise ValueError("only the root mount may be at /")
        self._tree.place(mount)
        self.mounts.append(mount)

    # -- inode numbers -----------------------------------------------------

    def fresh_ino(self) -> int:
        return self._inos.fresh()

    def _keeps_numbers(self, mount: Mount, ino: int) -> bool:
        # 1 is FUSE's root node id: a root mount's own root (also 1) is renumbered,
        # which shows only where the namespace is not the FUSE root (a pod).
        return mount.index == 0 and self._own_root_inos and ino != ROOT_NODE_ID

    def ino_for(self, mount: Mount, ino: int) -> int:
        if self._keeps_numbers(mount, ino):
            return ino
        key = mount.share_key if mount.share_key is not None else (id(self), mount.index)
        return self._inos.grant(key, ino)

    def attr_for(self, mount: Mount, attr: Attr) -> Attr:
        """`attr` as the namespace reports it: its number, and no set-id on nosuid."""
        if mount.nosuid:
            attr = hide_setid(attr)
        if self._keeps_numbers(mount, attr.ino):
            return attr
        return dataclasses.replace(attr, ino=self.ino_for(mount, attr.ino))

    # -- the mount-point tree ------------------------------------------------

    def stub(self, node: TreeNode) -> StubDir:
        """The stub directory of `node` (one per node, so its number is stable)."""
        got = self._stubs.get(id(node))
        if got is None:
            got = self._stubs[id(node)] = StubDir(self.fresh_ino())
        return got

    def mount_of(self, inode: Inode) -> Mount:
        """The mount an adapter-held inode belongs to (the root's for foreign ones)."""
        if isinstance(inode, MountedInode):
            return inode.mount
        return self._root_mount
