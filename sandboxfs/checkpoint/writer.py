"""Writing a checkpoint image: streamed, checksummed, atomic when given a path.

Trees are walked through the VFS `Inode` API; file bytes are read at most
CHUNK at a time (`pread` on the memfd when the handle has one, else
`FileHandle.read`) and written out as they come, so a 2 GiB upper needs a
few MiB of memory, never its size.

The destination is either a path, and then the image is written to a
temporary file beside it, fsynced, renamed over it and the directory
fsynced (a crash or an exception at any point leaves the previous image as
it was and no temporary file), or a descriptor the caller owns (the
confined daemon only gets one from the CLI, which does the renaming).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
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
from sandboxfs.checkpoint.tree import Progress, describe, join
from sandboxfs.vfs import Attr, DirEntry, Inode

Destination = int | str | os.PathLike[str]


class _Out:
    """The output stream: counts records, hashes every byte for the trailer."""

    def __init__(self, fd: int, progress: Progress | None) -> None:
        self.fd = fd
        self.digest = hashlib.sha256()
        self.records = 0
        self.bytes = 0  # file bytes (DATA payloads), as the progress shows
        self.written = 0  # image bytes
        self.files = 0
        self.progress = progress

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.written += len(data)

    def add(self, rec: bytes) -> None:
        self.write(rec)
        self.records += 1

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.bytes, self.files)


async def _xattrs(node: Inode) -> dict[bytes, bytes]:
    """Every xattr, `trusted.overlay.*` included: an upper's opaque markers
    are plain xattrs of its directories."""
    try:
        names = await node.listxattr()
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        try:
            out[name] = await node.getxattr(name)
        except OSError:  # removed between the two calls: not there
            continue
    return out


async def _write_tree(out: _Out, root: Inode) -> None:
    """Parents before children, names in byte order (the same tree always
    gives the same bytes); a second name of an inode becomes a `link` NODE.
    Depth-first with an explicit stack: a deep tree needs no deep recursion."""
    first_name: dict[int, str] = {}  # inode number of a multiply-linked entry → path
    stack: list[Iterator[DirEntry]] = []
    prefixes: list[str] = []

    async def emit(node: Inode, path: str, attr: Attr) -> None:
        target = await node.readlink() if stat.S_ISLNK(attr.mode) else None
        out.add(json_record(NODE, describe(path, attr, await _xattrs(node), target)))
        if path:
            out.files += 1
        if stat.S_ISREG(attr.mode) and attr.size:
            await _write_data(out, node, attr.size)
        out.report()
        if stat.S_ISDIR(attr.mode):
            stack.append(iter(sorted(await node.readdir(), key=lambda e: e.name)))
            prefixes.append(path)

    await emit(root, "", await root.getattr())
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            prefixes.pop()
            continue
        path = join(prefixes[-1], child.name)
        attr = child.attr
        if not stat.S_ISDIR(attr.mode) and attr.nlink > 1:
            if attr.ino in first_name:
                out.add(json_record(NODE, {"path": path, "type": "link",
                                           "link_to": first_name[attr.ino]}))
                continue
            first_name[attr.ino] = path
        await emit(child.inode, path, attr)


async def _write_data(out: _Out, node: Inode, size: int) -> None:
    """Exactly `size` bytes in DATA records of at most CHUNK bytes."""
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
            out.add(record(DATA, chunk[:want]))
            offset += min(len(chunk), want)
            out.bytes += min(len(chunk), want)
            out.report()
        while offset < size:  # the file shrank under us: keep the size promised
            n = min(CHUNK, size - offset)
            out.add(record(DATA, bytes(n)))
            offset += n
            out.bytes += n
    finally:
        await handle.release()


async def _write_all(fd: int, header: dict[str, Any], trees: Sequence[tuple[str, Inode]],
                     progress: Progress | None) -> tuple[int, int]:
    keys = [key for key, _ in trees]
    if len(set(keys)) != len(keys):
        raise ValueError(f"section keys repeat: {keys}")
    out = _Out(fd, progress)
    out.write(preamble())
    out.add(json_record(HEADER, header))
    for key, root in trees:
        out.add(json_record(SECTION, {"key": key}))
        await _write_tree(out, root)
        out.add(record(END, b""))
    out.write(json_record(TRAILER, {"records": out.records, "sha256": out.digest.hexdigest()}))
    out.report()
    return out.written, out.files


async def write_image(dest: Destination, header: dict[str, Any],
                      trees: Sequence[tuple[str, Inode]],
                      progress: Progress | None = None) -> tuple[int, int]:
    """Write the image of `trees` (section key, root directory) under `header`.

    `dest` a path: atomically replaced (see the module docstring). `dest` a
    descriptor: written from its current position, neither synced nor
    closed. `progress(file_bytes, files)` is called after every entry and
    every chunk. Returns (image bytes, files) written.
    """
    if isinstance(dest, int):
        return await _write_all(dest, header, trees, progress)
    path = os.fspath(dest)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory,
                       f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            result = await _write_all(fd, header, trees, progress)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:  # trio.Cancelled included: never leave the temporary file
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return result
