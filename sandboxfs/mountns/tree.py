"""The mount-point tree: which path components lead to mounts.

Each node is one path component below `/`. A node carries the mount whose
root is seen there (the last one mounted at that destination: later mounts
hide earlier ones, as on Linux) and the components below it that lead to
further mounts. A walk keeps its place in this tree next to its place in the
filesystems, so finding a mount point costs one dict lookup per component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandboxfs.mountns.mount import Mount


class MountPathError(ValueError):
    """A destination that is not an absolute, clean path."""


@dataclass(slots=True, eq=False)
class TreeNode:
    """One component of a path leading to (or at) a mount point."""

    name: bytes
    parent: TreeNode | None = None
    mount: Mount | None = None
    children: dict[bytes, TreeNode] = field(default_factory=dict)

    def path(self) -> str:
        parts: list[bytes] = []
        node: TreeNode | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + b"/".join(reversed(parts)).decode(errors="surrogateescape")


def components(destination: str) -> list[bytes]:
    """`/a/b` → [b"a", b"b"]; refuses relative paths and `.`/`..` components."""
    if not destination.startswith("/"):
        raise MountPathError(f"{destination!r}: not an absolute path")
    parts = [p for p in destination.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise MountPathError(f"{destination!r}: has a {part!r} component")
    return [os_bytes(p) for p in parts]


def os_bytes(text: str) -> bytes:
    return text.encode(errors="surrogateescape")


class MountTree:
    """The root node and the mounts placed under it, in mount order."""

    def __init__(self) -> None:
        self.root = TreeNode(b"")
        self.mounts: list[Mount] = []

    def place(self, mount: Mount) -> TreeNode:
        """Attach `mount` at its destination (over any earlier mount there)."""
        node = self.root
        for part in components(mount.destination):
            child = node.children.get(part)
            if child is None:
                child = TreeNode(part, node)
                node.children[part] = child
            node = child
        node.mount = mount
        self.mounts.append(mount)
        return node
