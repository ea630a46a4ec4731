"""Writing a checkpoint image: streamed, checksummed, to a file descriptor.

Trees are walked through the VFS `Inode` API; file bytes are read in CHUNK
pieces (from the memfd with `pread` when the handle has one), so a 2 GiB
upper needs a few MiB of daemon memory. The caller makes the file atomic
(temporary name, fsync, rename): the daemon only has the descriptor.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from typing import Any

from sandboxfs.checkpoint.format import (
    CHUNK,
    DATA,
    END,
    HEADER,
    NODE,
    SECTION,
    TRAILER,
    json_record,
    preamble,
    record,
)
from sandboxfs.vfs import Attr, Inode

Progress = Callable[[int, int], None]  # bytes written, files written


class _Out:
    def __init__(self, fd: int, progress: Progress | None) -> None:
        self.fd = fd
        self.digest = hashlib.sha256()
        self.records = 0
        self.bytes = 0
        self.files = 0
        self.progress = progress

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.bytes += len(data)

    def add(self, rec: bytes) -> None:
        self.write(rec)
        self.records += 1


def _kind(attr: Attr) -> str:
    mode = attr.mode
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk"),
                       (stat.S_ISSOCK, "sock")):
        if test(mode):
            return name
    raise ValueError(f"unknown file type {mode:o}")


def _meta(path: str, attr: Attr) -> dict[str, Any]:
    return {"path": path, "type": _kind(attr), "mode": stat.S_IMODE(attr.mode),
            "uid": attr.uid, "gid": attr.gid, "size": attr.size, "rdev": attr.rdev,
            "atime_ns": attr.atime_ns, "mtime_ns": attr.mtime_ns, "ctime_ns": attr.ctime_ns}


async def _xattrs(node: Inode) -> dict[str, str]:
    out = {}
    try:
        names = await node.listxattr()
    except OSError:
        return {}
    for name in names:
        try:
            out[name.hex()] = (await node.getxattr(name)).hex()
        except OSError:
            continue
    return out


async def _write_tree(out: _Out, root: Inode) -> None:
    first_name: dict[int, str] = {}  # inode number → path of its first name

    async def walk(directory: Inode, prefix: str) -> None:
        for entry in sorted(await directory.readdir(), key=lambda e: e.name):
            path = prefix + entry.name.hex()
            attr = entry.attr
            if not stat.S_ISDIR(attr.mode) and attr.nlink > 1:
                if attr.ino in first_name:
                    out.add(json_record(NODE, {"path": path, "type": "link",
                                               "link_to": first_name[attr.ino]}))
                    continue
                first_name[attr.ino] = path
            meta = _meta(path, attr)
            meta["xattrs"] = await _xattrs(entry.inode)
            if stat.S_ISLNK(attr.mode):
                meta["target"] = (await entry.inode.readlink()).hex()
            out.add(json_record(NODE, meta))
            out.files += 1
            if stat.S_ISREG(attr.mode) and attr.size:
                await _write_data(out, entry.inode, attr.size)
            if stat.S_ISDIR(attr.mode):
                await walk(entry.inode, path + "/")
            if out.progress is not None:
                out.progress(out.bytes, out.files)

    root_attr = await root.getattr()
    meta = _meta("", root_attr)
    meta["xattrs"] = await _xattrs(root)
    out.add(json_record(NODE, meta))
    await walk(root, "")


async def _write_data(out: _Out, node: Inode, size: int) -> None:
    handle = await node.open(os.O_RDONLY)
    try:
        fd = handle.fileno()
        offset = 0
        while offset < size:
            want = min(CHUNK, size - offset)
            chunk = os.pread(fd, want, offset) if fd is not None \
                else await handle.read(offset, want)
            if not chunk:
                break
            out.add(record(DATA, chunk))
            offset += len(chunk)
        if offset < size:  # the file shrank under us: keep the size promised
            out.add(record(DATA, b"\0" * (size - offset)))
    finally:
        await handle.release()


async def write_image(fd: int, header: dict[str, Any], trees: Sequence[tuple[str, Inode]],
                      progress: Progress | None = None) -> tuple[int, int]:
    """Write the whole image to `fd`; returns (bytes, files) written."""
    out = _Out(fd, progress)
    out.write(preamble())
    out.add(json_record(HEADER, header))
    for key, root in trees:
        out.add(json_record(SECTION, {"key": key}))
        await _write_tree(out, root)
        out.add(record(END, b""))
    trailer = {"records": out.records, "sha256": out.digest.hexdigest()}
    out.write(json_record(TRAILER, trailer))
    return out.bytes, out.files
