"""Reading a checkpoint image: verify all of it first, then restore.

`Image.open` reads the whole file once and checks the magic, the version,
every record's CRC, the record order and the trailer's count and SHA-256,
so a truncated or damaged image is refused before anything is restored.
`restore_tree` then streams one section into an empty directory through the
VFS `Inode` API. Directory times and hard-linked files' attributes are set
last, since adding names changes them.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sandboxfs.checkpoint.format import (
    CHUNK,
    CRC,
    DATA,
    END,
    HEADER,
    KIND_NAMES,
    MAX_JSON,
    NODE,
    PREAMBLE,
    RECORD,
    SECTION,
    TRAILER,
    ImageError,
    check_preamble,
    parse_json,
)
from sandboxfs.vfs import Creds, FileHandle, Inode, SetAttr

Progress = Callable[[int, int], None]  # bytes restored, files restored

_TYPES = {"fifo": stat.S_IFIFO, "chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "sock": stat.S_IFSOCK}


def _records(f: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    """(offset, kind, payload) of every record after the preamble, CRC-checked."""
    offset = PREAMBLE.size
    while True:
        head = f.read(RECORD.size)
        if not head:
            return
        if len(head) < RECORD.size:
            raise ImageError(f"truncated record header at byte {offset}")
        kind, length = RECORD.unpack(head)
        if kind not in KIND_NAMES:
            raise ImageError(f"unknown record kind {kind} at byte {offset}")
        if length > (CHUNK if kind == DATA else MAX_JSON):
            raise ImageError(f"{KIND_NAMES[kind]} record at byte {offset}: length {length}")
        payload = f.read(length)
        crc = f.read(CRC.size)
        if len(payload) < length or len(crc) < CRC.size:
            raise ImageError(f"truncated {KIND_NAMES[kind]} record at byte {offset}")
        if CRC.unpack(crc)[0] != zlib.crc32(payload, zlib.crc32(head)):
            raise ImageError(f"{KIND_NAMES[kind]} record at byte {offset}: checksum mismatch")
        yield offset, kind, payload
        offset += RECORD.size + length + CRC.size


@dataclass
class Image:
    path: str
    header: dict[str, Any]
    sections: list[str] = field(default_factory=list)
    size: int = 0

    @classmethod
    def open(cls, path: str) -> Image:
        """Verify the whole image; raises ImageError naming what is wrong."""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            pre = f.read(PREAMBLE.size)
            check_preamble(pre)
            digest.update(pre)
            header: dict[str, Any] | None = None
            sections: list[str] = []
            count = 0
            in_section = False
            trailer_at = None
            for offset, kind, payload in _records(f):
                if trailer_at is not None:
                    raise ImageError(f"data after the trailer at byte {offset}")
                if kind == TRAILER:
                    trailer = parse_json(kind, payload, offset)
                    if trailer.get("records") != count or \
                            trailer.get("sha256") != digest.hexdigest():
                        raise ImageError("the trailer does not match the image: damaged")
                    trailer_at = offset
                    continue
                digest.update(RECORD.pack(kind, len(payload)) + payload
                              + CRC.pack(zlib.crc32(payload,
                                                    zlib.crc32(RECORD.pack(kind, len(payload))))))
                count += 1
                if header is None:
                    if kind != HEADER:
                        raise ImageError(f"the first record (byte {offset}) is not the header")
                    header = parse_json(kind, payload, offset)
                elif kind == SECTION:
                    if in_section:
                        raise ImageError(f"section inside a section at byte {offset}")
                    sections.append(str(parse_json(kind, payload, offset)["key"]))
                    in_section = True
                elif kind == END:
                    in_section = False
                elif kind in (NODE, DATA) and not in_section:
                    raise ImageError(f"{KIND_NAMES[kind]} outside a section at byte {offset}")
            if trailer_at is None:
                raise ImageError("truncated: the image has no trailer")
            size = f.tell()
        assert header is not None
        return cls(path, header, sections, size)

    async def restore_tree(self, key: str, into: Inode, progress: Progress | None = None
                           ) -> tuple[int, int]:
        """Fill the empty directory `into` with section `key`; returns (bytes, files)."""
        if key not in self.sections:
            raise ImageError(f"the image has no section {key!r}")
        state = _Restore(into, progress)
        with open(self.path, "rb") as f:
            f.seek(PREAMBLE.size)
            active = False
            for _, kind, payload in _records(f):
                if kind == SECTION:
                    active = parse_json(kind, payload, 0)["key"] == key
                elif not active:
                    continue
                elif kind == NODE:
                    await state.node(parse_json(kind, payload, 0))
                elif kind == DATA:
                    await state.data(payload)
                elif kind == END:
                    await state.finish()
                    break
        return state.bytes, state.files


def _name(path: str) -> tuple[str, bytes]:
    parent, _, last = path.rpartition("/")
    return parent, bytes.fromhex(last)


class _Restore:
    def __init__(self, root: Inode, progress: Progress | None) -> None:
        self.nodes: dict[str, Inode] = {"": root}
        self.metas: dict[str, dict[str, Any]] = {}
        self.relink: list[str] = []  # attributes to set again at the end
        self.handle: FileHandle | None = None
        self.offset = 0
        self.bytes = 0
        self.files = 0
        self.progress = progress

    async def _close_file(self) -> None:
        if self.handle is not None:
            await self.handle.release()
            self.handle = None

    async def node(self, meta: dict[str, Any]) -> None:
        await self._close_file()
        path = meta["path"]
        kind = meta["type"]
        if path == "":
            self.metas[""] = meta
            self.relink.append("")
            await self._xattrs(self.nodes[""], meta)
            return
        parent_path, name = _name(path)
        parent = self.nodes[parent_path]
        if kind == "link":
            target = self.nodes[meta["link_to"]]
            await parent.link(name, target)
            self.relink.append(meta["link_to"])
            return
        creds = Creds(meta["uid"], meta["gid"])
        mode = meta["mode"]
        if kind == "dir":
            node = await parent.mkdir(name, mode, creds)
            self.relink.append(path)
        elif kind == "file":
            node = await parent.create(name, mode, creds)
            if meta["size"]:
                self.handle = await node.open(os.O_WRONLY)
                self.offset = 0
        elif kind == "symlink":
            node = await parent.symlink(name, bytes.fromhex(meta["target"]), creds)
        elif kind in _TYPES:
            node = await parent.mknod(name, _TYPES[kind] | mode, meta["rdev"], creds)
        else:
            raise ImageError(f"{path}: unknown node type {kind!r}")
        self.nodes[path] = node
        self.metas[path] = meta
        await self._xattrs(node, meta)
        if kind != "dir":
            await self._attrs(node, meta)
        self.files += 1

    async def data(self, chunk: bytes) -> None:
        if self.handle is None:
            raise ImageError("file data without a file")
        view = memoryview(chunk)
        while view:
            written = await self.handle.write(self.offset, bytes(view))
            self.offset += written
            view = view[written:]
        self.bytes += len(chunk)
        if self.progress is not None:
            self.progress(self.bytes, self.files)

    async def _xattrs(self, node: Inode, meta: dict[str, Any]) -> None:
        for name, value in meta.get("xattrs", {}).items():
            await node.setxattr(bytes.fromhex(name), bytes.fromhex(value))

    async def _attrs(self, node: Inode, meta: dict[str, Any]) -> None:
        symlink = meta["type"] == "symlink"
        await node.setattr(SetAttr(
            mode=None if symlink else meta["mode"], uid=meta["uid"], gid=meta["gid"],
            atime_ns=meta["atime_ns"], mtime_ns=meta["mtime_ns"], ctime_ns=meta["ctime_ns"]))

    async def finish(self) -> None:
        """Times of directories (deepest first) and of hard-linked files, set last."""
        await self._close_file()
        for path in sorted(set(self.relink), key=lambda p: -p.count("/") - (p != "")):
            meta = self.metas[path]
            await self._attrs(self.nodes[path], meta)
        # The file data written after the attributes moved mtimes: set them again.
        for path, meta in self.metas.items():
            if meta["type"] == "file" and meta["size"] and path not in self.relink:
                await self._attrs(self.nodes[path], meta)
