"""What an overlay's upper holds, as a list of changes to the layers below.

A dev sandbox shows, keeps or drops what a command did (`sandboxfs diff`,
`commit`, `export`): all of it is in the upper. Each entry of the upper is
one change: a whiteout is a deletion; a directory marked opaque replaces
the one below (whose entries are all gone); any other entry is a file,
link or directory added or modified (a directory present only because
something below it was copied up is reported as `dir` too; the caller tells
added from modified by looking at the lower).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from sandboxfs.overlay.whiteout import has_opaque_xattr, is_whiteout
from sandboxfs.vfs import Attr, Inode


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the upper: its path (relative, `/`-separated) and kind."""

    path: str
    kind: str  # "whiteout", "dir", "opaque-dir", "file", "symlink", "other"
    size: int = 0

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "kind": self.kind, "size": self.size}


async def _is_opaque(node: Inode) -> bool:
    return await has_opaque_xattr(node)


def _kind(attr: Attr) -> str:
    if is_whiteout(attr):
        return "whiteout"
    if stat.S_ISREG(attr.mode):
        return "file"
    if stat.S_ISLNK(attr.mode):
        return "symlink"
    if stat.S_ISDIR(attr.mode):
        return "dir"
    return "other"


async def upper_changes(upper_root: Inode) -> list[Change]:
    """Every entry of the upper, parents before children, in name order."""
    out: list[Change] = []

    async def walk(directory: Inode, prefix: str) -> None:
        for entry in sorted(await directory.readdir(), key=lambda e: e.name):
            path = prefix + entry.name.decode(errors="surrogateescape")
            kind = _kind(entry.attr)
            if kind == "dir" and await _is_opaque(entry.inode):
                kind = "opaque-dir"
            out.append(Change(path, kind, entry.attr.size if kind == "file" else 0))
            if kind in ("dir", "opaque-dir"):
                await walk(entry.inode, path + "/")

    await walk(upper_root, "")
    return out
