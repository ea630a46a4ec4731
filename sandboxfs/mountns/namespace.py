"""`MountNamespace`: one sandbox's tree of mounts, seen from its root.

The namespace owns the mount-point tree, the stub directories of missing
mount points, and inode numbering across mounts. The root mount (index 0)
keeps its filesystem's own numbers: the rootfs overlay shows a lower file's
host inode number, which tools such as git rely on. Every other mount's
numbers are granted here from a range of their own, per (mount, number), so
two mounts never show the same number (FUSE has one node id space) and a
number is never reused.
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


class MountNamespace:
    """Mounts placed in order (parents before children); `root` is the walk's start."""

    def __init__(self, root: Mount) -> None:
        if root.index != 0 or root.destination != "/":
            raise ValueError("the root mount is index 0 at /")
        self._tree = MountTree()
        self._tree.root.mount = root
        self._root_mount = root
        self._inos: dict[tuple[int, int], int] = {}
        self._next_ino = MOUNT_INO_BASE
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
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def ino_for(self, mount: Mount, ino: int) -> int:
        if mount.index == 0:
            return ino
        key = (mount.index, ino)
        got = self._inos.get(key)
        if got is None:
            got = self._inos[key] = self.fresh_ino()
        return got

    def attr_for(self, mount: Mount, attr: Attr) -> Attr:
        """`attr` as the namespace reports it: its number, and no set-id on nosuid."""
        if mount.nosuid:
            attr = hide_setid(attr)
        if mount.index == 0:
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
