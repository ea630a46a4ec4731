"""`MountedInode`: an inode seen through the mount namespace.

Every inode the FUSE adapter holds is wrapped with the mount it belongs to
and, while the walk is on a path that leads to further mounts, its place in
the mount-point tree. The wrapper is where crossing into a mount happens
(a lookup of a mount point answers the mounted root), where stub
directories stand in for missing mount points, and where the mount's flags
are enforced: EROFS on a read-only mount, EBUSY for removing or renaming a
mount point, EXDEV for a rename or link between mounts, EPERM for a device
node on `nodev`, EACCES for executing on `noexec`, set-id bits hidden on
`nosuid`. Inode numbers are the namespace's (see `MountNamespace.ino_for`).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from typing import TYPE_CHECKING

from sandboxfs.mountns.mount import Mount
from sandboxfs.mountns.stub import StubDir
from sandboxfs.mountns.tree import TreeNode
from sandboxfs.vfs import Attr, Creds, DirEntry, FileHandle, Inode, SetAttr, StatFs

if TYPE_CHECKING:
    from sandboxfs.mountns.namespace import MountNamespace

#: The open flag the kernel sets when it opens a file to execute it (__FMODE_EXEC).
FMODE_EXEC = 0o40
_SETID = stat.S_ISUID | stat.S_ISGID


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def opens_for_write(flags: int) -> bool:
    return (flags & os.O_ACCMODE) != os.O_RDONLY or bool(flags & os.O_TRUNC)


class MountedInode:
    """`inner` (an inode of `mount`'s filesystem, or a stub) at `node` of the tree."""

    __slots__ = ("_inner", "_mount", "_node", "_ns")

    def __init__(self, ns: MountNamespace, inner: Inode, mount: Mount,
                 node: TreeNode | None) -> None:
        self._ns = ns
        self._inner = inner
        self._mount = mount
        self._node = node

    @property
    def inner(self) -> Inode:
        return self._inner

    @property
    def mount(self) -> Mount:
        return self._mount

    @property
    def ino(self) -> int:
        return self._ns.ino_for(self._mount, self._inner.ino)

    # -- helpers -----------------------------------------------------------

    def _wrap(self, inner: Inode, node: TreeNode | None = None) -> MountedInode:
        return MountedInode(self._ns, inner, self._mount, node)

    def _attr(self, attr: Attr) -> Attr:
        return self._ns.attr_for(self._mount, attr)

    def _require_writable(self) -> None:
        if self._mount.readonly:
            raise _err(errno.EROFS)

    def _is_mount_point(self, name: bytes) -> bool:
        return self._node is not None and name in self._node.children

    def _same_mount(self, other: Inode) -> MountedInode:
        if not isinstance(other, MountedInode) or other._mount is not self._mount \
                or isinstance(other._inner, StubDir) != isinstance(self._inner, StubDir):
            raise _err(errno.EXDEV)
        return other

    # -- attributes --------------------------------------------------------

    async def getattr(self) -> Attr:
        return self._attr(await self._inner.getattr())

    async def setattr(self, changes: SetAttr) -> Attr:
        self._require_writable()
        return self._attr(await self._inner.setattr(changes))

    # -- directories -------------------------------------------------------

    async def lookup(self, name: bytes) -> Inode:
        node = self._node.children.get(name) if self._node is not None else None
        if node is None:
            return self._wrap(await self._inner.lookup(name))
        if node.mount is not None:
            return MountedInode(self._ns, node.mount.root, node.mount, node)
        # On the way to a deeper mount: the directory below if there is one,
        # else a stub of the mount-point tree.
        try:
            below: Inode | None = await self._inner.lookup(name)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            below = None
        if below is not None and stat.S_ISDIR((await below.getattr()).mode):
            return self._wrap(below, node)
        return self._wrap(self._ns.stub(node), node)

    async def readdir(self) -> list[DirEntry]:
        entries = await self._inner.readdir()
        if self._node is None or not self._node.children:
            return [DirEntry(e.name, self._wrap(e.inode), self._attr(e.attr)) for e in entries]
        out: list[DirEntry] = []
        shown: set[bytes] = set()
        for e in entries:
            if e.name in self._node.children:
                shown.add(e.name)
                child = await self.lookup(e.name)
                out.append(DirEntry(e.name, child, await child.getattr()))
            else:
                out.append(DirEntry(e.name, self._wrap(e.inode), self._attr(e.attr)))
        for name in self._node.children:
            if name not in shown:
                child = await self.lookup(name)
                out.append(DirEntry(name, child, await child.getattr()))
        return out

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:
        self._require_new(name)
        return self._wrap(await self._inner.create(name, mode, creds))

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        self._require_new(name)
        return self._wrap(await self._inner.mkdir(name, mode, creds))

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        self._require_new(name)
        if self._mount.nodev and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
            raise _err(errno.EPERM)
        return self._wrap(await self._inner.mknod(name, mode, rdev, creds))

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        self._require_new(name)
        return self._wrap(await self._inner.symlink(name, target, creds))

    async def link(self, name: bytes, target: Inode) -> Inode:
        source = self._same_mount(target)
        self._require_new(name)
        return self._wrap(await self._inner.link(name, source._inner))

    async def unlink(self, name: bytes) -> None:
        self._require_removable(name)
        await self._inner.unlink(name)

    async def rmdir(self, name: bytes) -> None:
        self._require_removable(name)
        await self._inner.rmdir(name)

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        target = self._same_mount(new_parent)
        self._require_removable(name)
        target._require_removable(new_name)
        await self._inner.rename(name, target._inner, new_name, flags)

    def _require_new(self, name: bytes) -> None:
        self._require_writable()
        if self._is_mount_point(name):
            raise _err(errno.EEXIST)

    def _require_removable(self, name: bytes) -> None:
        self._require_writable()
        if self._is_mount_point(name):
            raise _err(errno.EBUSY)

    # -- files and links ---------------------------------------------------

    async def open(self, flags: int) -> FileHandle:
        if self._mount.readonly and opens_for_write(flags):
            raise _err(errno.EROFS)
        if self._mount.noexec and flags & FMODE_EXEC:
            raise _err(errno.EACCES)
        return await self._inner.open(flags)

    async def readlink(self) -> bytes:
        return await self._inner.readlink()

    # -- extended attributes -----------------------------------------------

    async def getxattr(self, name: bytes) -> bytes:
        return await self._inner.getxattr(name)

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        self._require_writable()
        await self._inner.setxattr(name, value, flags)

    async def listxattr(self) -> list[bytes]:
        return await self._inner.listxattr()

    async def removexattr(self, name: bytes) -> None:
        self._require_writable()
        await self._inner.removexattr(name)

    async def statfs(self) -> StatFs:
        return await self._inner.statfs()


def hide_setid(attr: Attr) -> Attr:
    """A `nosuid` mount never shows set-id bits on files (so none take effect)."""
    if stat.S_ISREG(attr.mode) and attr.mode & _SETID:
        return dataclasses.replace(attr, mode=attr.mode & ~_SETID)
    return attr
