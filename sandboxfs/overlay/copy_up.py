"""Copy-up: give a lower node an upper copy before its first change.

As gVisor's `copy_up.go`: return early when already done; copy the parent
first; take the node's lock; check again (another task may have finished
the copy while we waited); undo on failure, so a failed copy-up leaves the
upper as it was.

The parent's atime and mtime are restored after the copy lands in it.

A copied file records the inode number it shows (`inomap`).

What is copied: the file type, mode, owner, atime and mtime (ctime is the
upper's own: the copy is a new inode), xattrs except `trusted.overlay.*`,
symlink targets, device numbers, and the bytes of a regular file: in the
kernel (`copy_file_range`, else `sendfile`) when both sides have an fd,
else by 1 MiB reads and writes. The upper file is sized first, so a copy
that does not fit fails with ENOSPC before any byte is written.

Hard links: a lower inode with several names is one node. Its copy is made
under its first name, then linked under every other name known so far;
names met later are linked when met (`link_alias`). The upper then holds
every name, as a checkpoint of the upper needs.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

import trio

from sandboxfs.overlay.whiteout import (
    ORIGIN_INO,
    is_internal_xattr,
    maybe_lookup,
    write_format_xattr,
)
from sandboxfs.vfs import Attr, Creds, FileHandle, Inode, SetAttr

if TYPE_CHECKING:
    from sandboxfs.overlay.inode import OverlayInode

CHUNK = 1 << 20


async def copy_up(node: OverlayInode, *, data: bool = True) -> None:
    """Make sure `node` has an upper inode. `data=False` skips a regular
    file's bytes (the caller truncates them to zero anyway)."""
    if node.upper is not None:
        return
    parent = node.parent
    if parent is None:  # every name removed (the root always has an upper)
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
    await copy_up(parent)
    async with node.lock:
        if node.upper is not None:
            return  # raced with another copy-up, which did the work
        # The node's first name may have moved while we waited.
        if not node.aliases:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        parent, name = node.aliases[0]
        await copy_up(parent)
        assert parent.upper is not None
        layer, lower = node.lowers[0]
        attr = await lower.getattr()
        parent_times = await parent.upper.getattr()
        upper = await copy_node(parent.upper, name, lower, attr, data=data,
                                origin_ino=None if node.is_dir else node.ino)
        await _restore_times(parent.upper, parent_times)
        node.upper = upper
        node.fs.copied_up(node, upper)
        for other_parent, other_name in list(node.aliases[1:]):
            await _link_locked(node, other_parent, other_name)


async def link_alias(node: OverlayInode, parent: OverlayInode, name: bytes) -> None:
    """Give a copied-up hard-linked node's upper the name (parent, name) too."""
    async with node.lock:
        await _link_locked(node, parent, name)


async def _link_locked(node: OverlayInode, parent: OverlayInode, name: bytes) -> None:
    if (parent, name) not in node.aliases or parent.removed:
        return  # that name went away meanwhile
    await copy_up(parent)
    assert parent.upper is not None and node.upper is not None
    if await maybe_lookup(parent.upper, name) is not None:
        return  # already linked (or replaced: then the name is no longer ours)
    parent_times = await parent.upper.getattr()
    await parent.upper.link(name, node.upper)
    await _restore_times(parent.upper, parent_times)


async def _restore_times(upper_dir: Inode, before: Attr) -> None:
    """A copy-up is no change of the merged view: the parent keeps its atime and
    mtime (as overlayfs restores them), so tools comparing mtimes see nothing."""
    await upper_dir.setattr(SetAttr(atime_ns=before.atime_ns, mtime_ns=before.mtime_ns))


async def copy_node(upper_dir: Inode, name: bytes, lower: Inode, attr: Attr, *,
                    data: bool, origin_ino: int | None = None) -> Inode:
    """A copy of `lower` (whose attributes are `attr`) made as `name` in
    `upper_dir`; on failure nothing is left there. `origin_ino` is recorded
    on the copy, for its number after a remount (`inomap`)."""
    creds = Creds(uid=attr.uid, gid=attr.gid)
    perms = attr.mode & 0o7777
    kind = stat.S_IFMT(attr.mode)
    if kind == stat.S_IFDIR:
        new = await upper_dir.mkdir(name, perms, creds)
    elif kind == stat.S_IFREG:
        new = await upper_dir.create(name, perms, creds)
    elif kind == stat.S_IFLNK:
        new = await upper_dir.symlink(name, await lower.readlink(), creds)
    else:
        new = await upper_dir.mknod(name, attr.mode, attr.rdev, creds)
    try:
        await _copy_xattrs(lower, new)
        if origin_ino is not None:
            await write_format_xattr(new, ORIGIN_INO, b"%d" % origin_ino)
        if kind == stat.S_IFREG and data and attr.size:
            await _copy_data(lower, new, attr.size)
        await new.setattr(SetAttr(
            uid=attr.uid, gid=attr.gid,
            mode=None if kind == stat.S_IFLNK else perms,
            atime_ns=attr.atime_ns, mtime_ns=attr.mtime_ns))
    except BaseException:
        with trio.CancelScope(shield=True):
            try:
                if kind == stat.S_IFDIR:
                    await upper_dir.rmdir(name)
                else:
                    await upper_dir.unlink(name)
            except OSError:
                pass
        raise
    return new


async def _copy_xattrs(lower: Inode, new: Inode) -> None:
    try:
        names = await lower.listxattr()
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for xname in names:
        if is_internal_xattr(xname):
            continue
        try:
            value = await lower.getxattr(xname)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                continue
            raise
        await new.setxattr(xname, value)


async def _copy_data(lower: Inode, new: Inode, size: int) -> None:
    # Sizing first charges the upper's budget before any byte moves. A file
    # too big for the whole upper (EFBIG to a truncate) is, to a copy-up, no space.
    try:
        await new.setattr(SetAttr(size=size))
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None
        raise
    src = await lower.open(os.O_RDONLY)
    try:
        await src.read(0, 0)  # a handle that opens lazily has its fd after a first read
        dst = await new.open(os.O_WRONLY)
        try:
            sfd, dfd = src.fileno(), dst.fileno()
            if sfd is not None and dfd is not None and _kernel_copy(sfd, dfd, size):
                return
            await _chunk_copy(src, dst, size)
        finally:
            await dst.release()
    finally:
        await src.release()


def _kernel_copy(sfd: int, dfd: int, size: int) -> bool:
    """Copy in the kernel; False when neither way is supported for these fds."""
    offset = 0
    try:
        while offset < size:
            n = os.copy_file_range(sfd, dfd, size - offset, offset, offset)
            if n == 0:
                return True  # the lower is shorter than it said: the rest stays zero
            offset += n
        return True
    except OSError as exc:
        if offset or exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                                       errno.EOPNOTSUPP, errno.EBADF):
            raise
    try:
        os.lseek(dfd, 0, os.SEEK_SET)
        while offset < size:
            n = os.sendfile(dfd, sfd, offset, size - offset)
            if n == 0:
                return True
            offset += n
        return True
    except OSError as exc:
        if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    return False


async def _chunk_copy(src: FileHandle, dst: FileHandle, size: int) -> None:
    offset = 0
    while offset < size:
        chunk = await src.read(offset, min(CHUNK, size - offset))
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            n = await dst.write(offset, bytes(view))
            offset += n
            view = view[n:]
