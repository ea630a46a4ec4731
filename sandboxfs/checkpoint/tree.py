"""One tree's NODE records: how an entry is described, checked and rebuilt.

The writer describes each entry with `describe`; the reader's first pass runs
every section through a `SectionCheck` (so an image that is well framed but
does not make a tree, say a name whose parent is missing or a file with fewer
bytes than its size, is refused before anything is restored); its second pass
feeds the records to a `TreeBuilder`, which creates the entries through the
VFS `Inode` API. Keeping all three here keeps the schema in one place.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandboxfs.checkpoint.format import ImageError
from sandboxfs.vfs import Attr, Creds, FileHandle, Inode, SetAttr

Progress = Callable[[int, int], None]  # bytes, files (entries other than links and the root)

PAGE = 4096  # what a TmpFs charges a body in: the room check rounds up to it

KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
         stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk",
         stat.S_IFSOCK: "sock"}
SPECIAL = {"fifo": stat.S_IFIFO, "chr": stat.S_IFCHR, "blk": stat.S_IFBLK,
           "sock": stat.S_IFSOCK}
COUNTS = ("mode", "uid", "gid", "size", "rdev")  # non-negative integers
TIMES = ("atime_ns", "mtime_ns", "ctime_ns")  # integers (before 1970 is negative)


def kind_of(attr: Attr) -> str:
    try:
        return KINDS[stat.S_IFMT(attr.mode)]
    except KeyError:
        raise ValueError(f"unknown file type {attr.mode:o}") from None


def join(prefix: str, name: bytes) -> str:
    """A NODE path: hex of each name (names are bytes, JSON is text), `/`-joined."""
    return f"{prefix}/{name.hex()}" if prefix else name.hex()


def split(path: str) -> tuple[str, bytes]:
    parent, _, last = path.rpartition("/")
    return parent, bytes.fromhex(last)


def describe(path: str, attr: Attr, xattrs: dict[bytes, bytes],
             target: bytes | None) -> dict[str, Any]:
    """The NODE payload of one entry (not a `link`)."""
    meta: dict[str, Any] = {
        "path": path, "type": kind_of(attr), "mode": stat.S_IMODE(attr.mode),
        "uid": attr.uid, "gid": attr.gid, "size": attr.size, "rdev": attr.rdev,
        "atime_ns": attr.atime_ns, "mtime_ns": attr.mtime_ns, "ctime_ns": attr.ctime_ns,
        "xattrs": {name.hex(): value.hex() for name, value in xattrs.items()}}
    if target is not None:
        meta["target"] = target.hex()
    return meta


def _bad(offset: int, path: object, why: str) -> ImageError:
    return ImageError(f"node record at byte {offset} ({path!r}): {why}")


def _hex(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _valid_name(name: bytes | None) -> bool:
    if not name:
        return False
    return name not in (b".", b"..") and b"/" not in name and b"\0" not in name \
        and len(name) <= 255


@dataclass
class SectionCheck:
    """The first pass over one section: every record must make a tree.

    It also gathers what the restore needs to know up front: the entries
    other hard links point to (the builder keeps only those and the
    directories), and the bytes and inodes the tree will take (refused
    before anything is created when the target filesystem has no room).
    """

    key: str
    offset: int  # of the SECTION record: restore seeks straight to it
    files: int = 0
    bytes: int = 0
    pages: int = 0
    inodes: int = 0
    link_targets: set[str] = field(default_factory=set)
    _dirs: set[str] = field(default_factory=set)
    _others: set[str] = field(default_factory=set)  # non-directories, links excepted
    _links: set[str] = field(default_factory=set)
    _pending: int = 0  # file bytes the last file NODE still expects
    _pending_path: str = ""

    def node(self, meta: Any, offset: int) -> None:
        self._expect_no_data(offset)
        if not isinstance(meta, dict):
            raise _bad(offset, None, "not an object")
        path = meta.get("path")
        if not isinstance(path, str):
            raise _bad(offset, path, "no path")
        kind = meta.get("type")
        if not self._dirs:
            if path != "" or kind != "dir":
                raise _bad(offset, path, "the section does not start with its root directory")
        else:
            parent, _, last = path.rpartition("/")
            if parent not in self._dirs:
                raise _bad(offset, path, "its parent directory is not before it")
            name = _hex(last)
            if name is None or not _valid_name(name) or join(parent, name) != path:
                raise _bad(offset, path, "not a valid name")
            if path in self._dirs or path in self._others or path in self._links:
                raise _bad(offset, path, "a second entry with this name")
        if kind == "link":
            to = meta.get("link_to")
            if not isinstance(to, str) or to not in self._others:
                raise _bad(offset, path, "a link to no earlier non-directory entry")
            self.link_targets.add(to)
            self._links.add(path)
            return
        if kind not in ("file", "dir", "symlink", *SPECIAL):
            raise _bad(offset, path, f"unknown type {kind!r}")
        for int_field in COUNTS + TIMES:
            value = meta.get(int_field)
            if not isinstance(value, int) or isinstance(value, bool) or (
                    value < 0 and int_field in COUNTS):
                raise _bad(offset, path, f"{int_field} is not a valid integer")
        if meta["mode"] > 0o7777:
            raise _bad(offset, path, "mode holds more than permission bits")
        xattrs = meta.get("xattrs", {})
        if not isinstance(xattrs, dict) or not all(
                _hex(k) and _hex(v) is not None for k, v in xattrs.items()):
            raise _bad(offset, path, "xattrs are not hex name → hex value")
        if kind == "symlink" and not _hex(meta.get("target")):
            raise _bad(offset, path, "a symlink without a target")
        (self._dirs if kind == "dir" else self._others).add(path)
        if path:
            self.files += 1
            self.inodes += 1
        if kind == "file":
            self._pending = meta["size"]
            self._pending_path = path
            self.bytes += meta["size"]
            self.pages += -(-meta["size"] // PAGE)

    def data(self, length: int, offset: int) -> None:
        if length > self._pending:
            raise ImageError(f"data record at byte {offset}: more bytes than the file "
                             f"{self._pending_path!r} holds")
        self._pending -= length

    def end(self, offset: int) -> None:
        self._expect_no_data(offset)
        if not self._dirs:
            raise ImageError(f"section {self.key!r} ends at byte {offset} without its root")
        self._dirs.clear()  # only the builder's view is needed from here on
        self._others.clear()
        self._links.clear()

    def _expect_no_data(self, offset: int) -> None:
        if self._pending:
            raise ImageError(f"record at byte {offset}: the file {self._pending_path!r} "
                             f"is missing {self._pending} bytes")


class TreeBuilder:
    """The second pass: creates one section's entries under an empty directory.

    Attributes go on last where later steps would move them: a file's once
    its bytes are written, a hard-linked entry's and every directory's
    (deepest first) once the whole section is in, since adding a name changes
    the parent's mtime and the target's ctime. Only directories and link
    targets are kept in memory, so a large tree costs little more than its
    directories.
    """

    def __init__(self, root: Inode, link_targets: set[str], progress: Progress | None) -> None:
        self.nodes: dict[str, Inode] = {"": root}
        self.last: dict[str, dict[str, Any]] = {}  # attributes set after everything
        self.link_targets = link_targets
        self.handle: FileHandle | None = None
        self.file: tuple[Inode, dict[str, Any]] | None = None
        self.offset = 0
        self.bytes = 0
        self.files = 0
        self.progress = progress

    async def node(self, meta: dict[str, Any]) -> None:
        await self._close_file()
        path, kind = meta["path"], meta["type"]
        if path == "":
            self.last[""] = meta
            await _set_xattrs(self.nodes[""], meta)
            return
        parent_path, name = split(path)
        parent = self.nodes[parent_path]
        if kind == "link":
            await parent.link(name, self.nodes[meta["link_to"]])
            return
        creds = Creds(meta["uid"], meta["gid"])
        if kind == "dir":
            node = await parent.mkdir(name, meta["mode"], creds)
        elif kind == "file":
            node = await parent.create(name, meta["mode"], creds)
        elif kind == "symlink":
            node = await parent.symlink(name, bytes.fromhex(meta["target"]), creds)
        else:
            node = await parent.mknod(name, SPECIAL[kind] | meta["mode"], meta["rdev"], creds)
        await _set_xattrs(node, meta)
        if kind == "dir" or path in self.link_targets:
            self.nodes[path] = node
            self.last[path] = meta
        if kind == "file" and meta["size"]:
            self.handle = await node.open(os.O_WRONLY)
            self.file = (node, meta)
            self.offset = 0
        elif kind != "dir":
            await _set_attrs(node, meta)
        self.files += 1
        self._report()

    async def data(self, chunk: bytes) -> None:
        if self.handle is None:
            raise ImageError("file data without a file")
        view = memoryview(chunk)
        while view:
            written = await self.handle.write(self.offset, bytes(view))
            self.offset += written
            view = view[written:]
        self.bytes += len(chunk)
        self._report()

    async def finish(self) -> None:
        """The attributes that had to wait, directories deepest first."""
        await self._close_file()
        for path in sorted(self.last, key=lambda p: -1 - p.count("/") if p else 0):
            await _set_attrs(self.nodes[path], self.last[path])
        self._report()

    async def _close_file(self) -> None:
        if self.handle is not None:
            await self.handle.release()
            self.handle = None
        if self.file is not None:
            node, meta = self.file
            self.file = None
            await _set_attrs(node, meta)  # the writes moved mtime and ctime

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.bytes, self.files)


async def _set_xattrs(node: Inode, meta: dict[str, Any]) -> None:
    for name, value in meta.get("xattrs", {}).items():
        await node.setxattr(bytes.fromhex(name), bytes.fromhex(value))


async def _set_attrs(node: Inode, meta: dict[str, Any]) -> None:
    """Mode, owner and all three times at once; ctime last of all, as only
    restore may set it (SetAttr.ctime_ns)."""
    await node.setattr(SetAttr(
        mode=None if meta["type"] == "symlink" else meta["mode"], uid=meta["uid"],
        gid=meta["gid"], atime_ns=meta["atime_ns"], mtime_ns=meta["mtime_ns"],
        ctime_ns=meta["ctime_ns"]))
