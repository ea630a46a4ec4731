"""`OverlayInode`: one file or directory of the merged view.

A node knows its upper inode (None until copied up) and its lower inodes
(for a non-directory at most one, its origin; for a directory every lower
directory merged under it, top-most first). Reads go to the top-most layer
that has the node; every change goes to the upper after copy-up
(`copy_up.py`). Directory operations live in `directory.py` (lookup, merged
readdir) and `namespace.py` (create, link, unlink, rename).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from typing import TYPE_CHECKING

import trio

from sandboxfs.overlay import namespace
from sandboxfs.overlay.copy_up import copy_up
from sandboxfs.overlay.directory import is_merged, lookup, readdir
from sandboxfs.overlay.regular_file import LowerFileHandle
from sandboxfs.overlay.whiteout import is_internal_xattr
from sandboxfs.vfs import Attr, Creds, DirEntry, FileHandle, Inode, SetAttr, StatFs

if TYPE_CHECKING:
    from sandboxfs.overlay.filesystem import OverlayFs


def err(code: int, what: bytes | None = None) -> OSError:
    if what is None:
        return OSError(code, os.strerror(code))
    return OSError(code, os.strerror(code), what.decode(errors="replace"))


def opens_for_write(flags: int) -> bool:
    return (flags & os.O_ACCMODE) != os.O_RDONLY or bool(flags & os.O_TRUNC)


class OverlayInode:
    """A node of the merged view; see the module docstring."""

    def __init__(self, fs: OverlayFs, kind: int, ino: int, *, upper: Inode | None = None,
                 lowers: list[tuple[int, Inode]] | None = None,
                 nlink: int | None = None) -> None:
        self.fs = fs
        self.kind = kind
        self._ino = ino
        self._attr_cache: tuple[Attr, int, Attr] | None = None
        #: The upper inode; set once, by copy-up or creation.
        self.upper = upper
        #: (layer, inode) of the lower parts, top-most first. For directories
        #: the candidates until `resolved`, then trimmed at the first opaque one.
        self.lowers: list[tuple[int, Inode]] = lowers or []
        self.resolved = not self.is_dir or not self.lowers
        #: Directories: the path (from the layers' roots) its lower parts were
        #: found at when that is not its own: it was renamed (a redirect).
        self.redirect: bytes | None = None
        #: Every visible name of the node: (parent directory node, name).
        #: A directory has one (none for the root).
        self.aliases: list[tuple[OverlayInode, bytes]] = []
        #: Link count of a node with a lower origin, kept by the overlay (as
        #: overlayfs with index=on does): the lower's at first, +1 per link,
        #: -1 per unlink. None: ask the upper.
        self.nlink = nlink
        self._lock: trio.Lock | None = None
        # Directories only: names already resolved (None: known absent), the
        # merged listing (dropped on every change), a change counter, and
        # whether rmdir removed it.
        self.children: dict[bytes, OverlayInode | None] = {}
        self.names: list[tuple[bytes, OverlayInode]] | None = None
        self.generation = 0
        self.removed = False

    def __repr__(self) -> str:
        where = b"/".join(n for _, n in self.aliases[:1]) or b"/"
        return f"<OverlayInode {self._ino} {where!r} upper={self.upper is not None}>"

    # -- small helpers -----------------------------------------------------

    @property
    def ino(self) -> int:
        return self._ino

    @property
    def is_dir(self) -> bool:
        return self.kind == stat.S_IFDIR

    @property
    def lock(self) -> trio.Lock:
        """Serializes this node's copy-up (created on first need: most nodes never need one)."""
        if self._lock is None:
            self._lock = trio.Lock()
        return self._lock

    @property
    def parent(self) -> OverlayInode | None:
        return self.aliases[0][0] if self.aliases else None

    def top(self) -> Inode:
        """The inode reads go to: the upper if any, else the top-most lower."""
        if self.upper is not None:
            return self.upper
        return self.lowers[0][1]

    def add_alias(self, parent: OverlayInode, name: bytes) -> None:
        if (parent, name) not in self.aliases:
            self.aliases.append((parent, name))

    def drop_alias(self, parent: OverlayInode, name: bytes) -> None:
        if (parent, name) in self.aliases:
            self.aliases.remove((parent, name))

    def mark_resolved(self) -> None:
        self.resolved = True

    def changed(self) -> None:
        """A name in this directory changed: drop the merged listing."""
        self.names = None
        self.generation += 1

    def require_dir(self) -> None:
        if not self.is_dir:
            raise err(errno.ENOTDIR)

    # -- attributes --------------------------------------------------------

    async def getattr(self) -> Attr:
        attr = await self.top().getattr()
        nlink = attr.nlink
        if self.is_dir:
            if await is_merged(self):
                # As overlayfs: counting subdirectories of every layer is not
                # worth it; 1 keeps find(1) and friends from optimizing.
                nlink = 1
        elif self.nlink is not None:
            nlink = self.nlink
        if attr.ino == self._ino and attr.nlink == nlink:
            return attr
        cached = self._attr_cache
        if cached is not None and cached[0] is attr and cached[1] == nlink:
            return cached[2]  # the same layer attributes as last time: no new object
        merged = dataclasses.replace(attr, ino=self._ino, nlink=nlink)
        self._attr_cache = (attr, nlink, merged)
        return merged

    async def setattr(self, changes: SetAttr) -> Attr:
        if changes.size is not None and self.is_dir:
            raise err(errno.EISDIR)
        await copy_up(self, data=changes.size != 0)
        assert self.upper is not None
        await self.upper.setattr(changes)
        return await self.getattr()

    # -- directories -------------------------------------------------------

    async def lookup(self, name: bytes) -> Inode:
        namespace.check_name(name)
        return await lookup(self, name)

    async def readdir(self) -> list[DirEntry]:
        return await readdir(self)

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:

        async def make(upper_dir: Inode) -> Inode:
            return await upper_dir.create(name, mode, creds)
        return await namespace.create_entry(self, name, make, is_dir=False)

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:

        async def make(upper_dir: Inode) -> Inode:
            return await upper_dir.mkdir(name, mode, creds)
        return await namespace.create_entry(self, name, make, is_dir=True)

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        namespace.check_name(name)
        if stat.S_ISCHR(mode) and rdev == 0:
            # That is a whiteout in the upper's format: the file would vanish.
            raise err(errno.EPERM, name)

        async def make(upper_dir: Inode) -> Inode:
            return await upper_dir.mknod(name, mode, rdev, creds)
        return await namespace.create_entry(self, name, make, is_dir=stat.S_ISDIR(mode))

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:

        async def make(upper_dir: Inode) -> Inode:
            return await upper_dir.symlink(name, target, creds)
        return await namespace.create_entry(self, name, make, is_dir=False)

    async def link(self, name: bytes, target: Inode) -> Inode:
        return await namespace.link(self, name, target)

    async def unlink(self, name: bytes) -> None:
        await namespace.unlink(self, name)

    async def rmdir(self, name: bytes) -> None:
        await namespace.rmdir(self, name)

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        await namespace.rename(self, name, new_parent, new_name, flags)

    # -- files and links ---------------------------------------------------

    async def open(self, flags: int) -> FileHandle:
        if self.is_dir:
            raise err(errno.EISDIR)
        if opens_for_write(flags):
            # O_TRUNC: no point copying bytes about to be cut (as overlayfs).
            await copy_up(self, data=not flags & os.O_TRUNC)
        if self.upper is not None:
            return await self.upper.open(flags)
        return LowerFileHandle(await self.lowers[0][1].open(os.O_RDONLY))

    async def readlink(self) -> bytes:
        return await self.top().readlink()

    # -- extended attributes -----------------------------------------------

    async def getxattr(self, name: bytes) -> bytes:
        if is_internal_xattr(name):
            raise err(errno.ENODATA, name)
        return await self.top().getxattr(name)

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        if is_internal_xattr(name):
            raise err(errno.EPERM, name)
        await copy_up(self)
        assert self.upper is not None
        await self.upper.setxattr(name, value, flags)

    async def listxattr(self) -> list[bytes]:
        try:
            names = await self.top().listxattr()
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return []
            raise
        return [n for n in names if not is_internal_xattr(n)]

    async def removexattr(self, name: bytes) -> None:
        if is_internal_xattr(name):
            raise err(errno.EPERM, name)
        # ENODATA without a copy-up when there is nothing to remove.
        await self.getxattr(name)
        await copy_up(self)
        assert self.upper is not None
        await self.upper.removexattr(name)

    async def statfs(self) -> StatFs:
        return await self.fs.upper_root.statfs()
