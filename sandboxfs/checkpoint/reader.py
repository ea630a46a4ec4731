"""Reading a checkpoint image: verify all of it first, then restore.

`read_image` (`Image.open`) reads the whole file once and checks the magic,
the version, every record's CRC, the record order, that every section makes
a tree (tree.SectionCheck), and the trailer's record count and SHA-256, so a
truncated, damaged or malformed image is refused with an `ImageError`
before anything is restored. `Image.restore_tree` is the second pass: it
seeks to one section and streams it into an empty directory. It first makes
sure the file is still the one verified and that the target has room, so
that it, too, fails before creating anything rather than half way.
"""

from __future__ import annotations

import errno
import hashlib
import os
import zlib
from collections.abc import Iterator
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
from sandboxfs.checkpoint.tree import PAGE, Progress, SectionCheck, TreeBuilder
from sandboxfs.vfs import Inode


def _records(f: BinaryIO, offset: int,
             digest: Any = None) -> Iterator[tuple[int, int, bytes]]:
    """(offset, kind, payload) of each record from `offset` (where `f` is),
    CRC-checked; `digest` (if given) is fed every byte but the trailer's."""
    while True:
        head = f.read(RECORD.size)
        if not head:
            return
        if len(head) < RECORD.size:
            raise ImageError(f"truncated: a record header cut short at byte {offset}")
        kind, length = RECORD.unpack(head)
        if kind not in KIND_NAMES:
            raise ImageError(f"unknown record kind {kind} at byte {offset}: damaged")
        if length > (CHUNK if kind == DATA else MAX_JSON):
            raise ImageError(f"{KIND_NAMES[kind]} record at byte {offset}: length {length} "
                             "is over the limit: damaged")
        payload = f.read(length)
        crc = f.read(CRC.size)
        if len(payload) < length or len(crc) < CRC.size:
            raise ImageError(f"truncated: the {KIND_NAMES[kind]} record at byte {offset} "
                             "is cut short")
        if CRC.unpack(crc)[0] != zlib.crc32(payload, zlib.crc32(head)):
            raise ImageError(f"{KIND_NAMES[kind]} record at byte {offset}: checksum mismatch")
        if digest is not None and kind != TRAILER:
            digest.update(head)
            digest.update(payload)
            digest.update(crc)
        yield offset, kind, payload
        offset += RECORD.size + length + CRC.size


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@dataclass
class Image:
    """A verified image: its `header` and its sections, ready to restore.

    `sections` lists the keys in image order; `info[key]` gives each
    section's entry count (`files`), file bytes (`bytes`) and position.
    """

    path: str
    header: dict[str, Any]
    sections: list[str] = field(default_factory=list)
    size: int = 0
    info: dict[str, SectionCheck] = field(default_factory=dict)
    identity: tuple[int, ...] = ()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Image:
        """Verify the whole image; ImageError naming what is wrong and where."""
        path = os.fspath(path)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            pre = f.read(PREAMBLE.size)
            check_preamble(pre)
            digest.update(pre)
            header: dict[str, Any] | None = None
            info: dict[str, SectionCheck] = {}
            current: SectionCheck | None = None
            count = 0
            trailer_at: int | None = None
            for offset, kind, payload in _records(f, PREAMBLE.size, digest):
                name = KIND_NAMES[kind]
                if trailer_at is not None:
                    raise ImageError(f"data after the trailer at byte {offset}")
                if kind == TRAILER:
                    trailer = parse_json(kind, payload, offset)
                    if not isinstance(trailer, dict) or trailer.get("records") != count:
                        raise ImageError(f"trailer at byte {offset}: record count does not "
                                         "match: damaged")
                    if trailer.get("sha256") != digest.hexdigest():
                        raise ImageError(f"trailer at byte {offset}: SHA-256 does not match "
                                         "the image: damaged")
                    if current is not None:
                        raise ImageError(f"section {current.key!r} has no end")
                    trailer_at = offset
                    continue
                count += 1
                if header is None:
                    if kind != HEADER:
                        raise ImageError(f"the first record (byte {offset}) is not the header")
                    header = parse_json(kind, payload, offset)
                    if not isinstance(header, dict):
                        raise ImageError("the header is not a JSON object")
                elif kind == HEADER:
                    raise ImageError(f"a second header at byte {offset}")
                elif kind == SECTION:
                    if current is not None:
                        raise ImageError(f"section inside a section at byte {offset}")
                    meta = parse_json(kind, payload, offset)
                    key = meta.get("key") if isinstance(meta, dict) else None
                    if not isinstance(key, str) or key in info:
                        raise ImageError(f"section at byte {offset}: bad or repeated key "
                                         f"{key!r}")
                    current = info[key] = SectionCheck(key, offset)
                elif current is None:
                    raise ImageError(f"{name} record outside a section at byte {offset}")
                elif kind == NODE:
                    current.node(parse_json(kind, payload, offset), offset)
                elif kind == DATA:
                    current.data(len(payload), offset)
                else:
                    current.end(offset)
                    current = None
            if trailer_at is None:
                raise ImageError("truncated: the image has no trailer")
            size = f.tell()
            identity = _identity(os.fstat(f.fileno()))
        assert header is not None
        return cls(path, header, list(info), size, info, identity)

    async def restore_tree(self, key: str, into: Inode, progress: Progress | None = None
                           ) -> tuple[int, int]:
        """Fill the empty directory `into` (a fresh TmpFs root) with section
        `key`, its root's attributes included; returns (file bytes, files).

        ImageError for an unknown key or a file changed since it was verified;
        OSError ENOTEMPTY / ENOSPC when `into` is not empty or lacks room; all
        three before anything is created."""
        section = self.info.get(key)
        if section is None:
            raise ImageError(f"the image has no section {key!r}")
        if await into.readdir():
            raise OSError(errno.ENOTEMPTY, "restore needs an empty directory")
        await _check_room(into, section)
        builder = TreeBuilder(into, section.link_targets, progress)
        with open(self.path, "rb") as f:
            if _identity(os.fstat(f.fileno())) != self.identity:
                raise ImageError(f"{self.path} changed since it was verified")
            f.seek(section.offset)
            for _, kind, payload in _records(f, section.offset):
                if kind == NODE:
                    await builder.node(parse_json(kind, payload, 0))
                elif kind == DATA:
                    await builder.data(payload)
                elif kind == END:
                    break
        await builder.finish()
        return builder.bytes, builder.files


async def _check_room(into: Inode, section: SectionCheck) -> None:
    """ENOSPC up front when the target's statfs says the tree cannot fit (a
    filesystem that answers no statfs is trusted)."""
    try:
        fs = await into.statfs()
    except OSError:
        return
    need = section.pages * PAGE
    if need > fs.bavail * fs.frsize or section.inodes > fs.favail:
        raise OSError(errno.ENOSPC, f"the section needs {need} bytes and {section.inodes} "
                      f"inodes; the target has {fs.bavail * fs.frsize} and {fs.favail}")


def read_image(path: str | os.PathLike[str]) -> Image:
    """`Image.open`: the verified image at `path`, or ImageError."""
    return Image.open(path)

