"""`TmpDir`: a directory, a dict of names, and rename(2)'s rules.

Timestamps follow Linux: a new or removed entry updates the directory's
mtime and ctime; link, unlink and rename update the target inode's ctime;
rename updates both parents. A directory with the set-group-ID bit passes
its gid to new entries and the bit itself to new subdirectories.
"""

from __future__ import annotations

import errno
import stat
from typing import TYPE_CHECKING

from sandboxfs.tmpfs.inode import TmpInode, check_name, err
from sandboxfs.tmpfs.regular_file import TmpFile
from sandboxfs.tmpfs.special import SPECIAL_TYPES, TmpSpecial
from sandboxfs.tmpfs.symlink import TmpSymlink
from sandboxfs.vfs import Creds, DirEntry, FileHandle, Inode, now_ns

if TYPE_CHECKING:
    from sandboxfs.tmpfs.filesystem import TmpFs

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

#: Linux tmpfs reports a directory's size as 20 bytes per entry (with . and ..).
BOGO_DIRENT_SIZE = 20


class TmpDir(TmpInode):
    """A directory. `parent` is None for the root and after rmdir."""

    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int,
                 parent: TmpDir | None) -> None:
        super().__init__(fs, stat.S_IFDIR | (mode & 0o7777), uid, gid)
        self.children: dict[bytes, TmpInode] = {}
        self.parent = parent
        # `.` counts now; the name in the parent counts when attached (the
        # root has no parent: its `..` is itself).
        self.nlink = 2 if parent is None else 1

    def size(self) -> int:
        return BOGO_DIRENT_SIZE * (len(self.children) + 2)

    def _live(self) -> None:
        """A removed directory takes no new entries."""
        if self.nlink == 0:
            raise err(errno.ENOENT)

    def _owner(self, creds: Creds) -> tuple[int, int]:
        gid = self.gid if self.mode & stat.S_ISGID else creds.gid
        return creds.uid, gid

    def _attach(self, name: bytes, child: TmpInode) -> TmpInode:
        self.children[name] = child
        child.nlink += 1
        if isinstance(child, TmpDir):
            self.nlink += 1
        self.touch_modified()
        return child

    def _free_name(self, name: bytes) -> None:
        check_name(name)
        self._live()
        if name in self.children:
            raise err(errno.EEXIST, name)

    # -- lookups -----------------------------------------------------------

    def child(self, name: bytes) -> TmpInode:
        found = self.children.get(name)
        if found is None:
            raise err(errno.ENOENT, name)
        return found

    async def lookup(self, name: bytes) -> Inode:
        return self.child(name)

    async def readdir(self) -> list[DirEntry]:
        return [DirEntry(name, child, child.attr()) for name, child in self.children.items()]

    async def open(self, flags: int) -> FileHandle:
        raise err(errno.EISDIR)

    # -- creation ----------------------------------------------------------

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:
        self._free_name(name)
        uid, gid = self._owner(creds)
        return self._attach(name, TmpFile(self.fs, mode, uid, gid))

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        self._free_name(name)
        uid, gid = self._owner(creds)
        mode &= 0o7777
        if self.mode & stat.S_ISGID:
            mode |= stat.S_ISGID
        return self._attach(name, TmpDir(self.fs, mode, uid, gid, self))

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        kind = stat.S_IFMT(mode)
        if kind in (0, stat.S_IFREG):
            return await self.create(name, mode, creds)
        if kind == stat.S_IFDIR:
            raise err(errno.EPERM)
        if kind not in SPECIAL_TYPES:
            raise err(errno.EINVAL)
        self._free_name(name)
        uid, gid = self._owner(creds)
        return self._attach(name, TmpSpecial(self.fs, mode, rdev, uid, gid))

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        self._free_name(name)
        uid, gid = self._owner(creds)
        return self._attach(name, TmpSymlink(self.fs, target, uid, gid))

    async def link(self, name: bytes, target: Inode) -> Inode:
        if not isinstance(target, TmpInode) or target.fs is not self.fs:
            raise err(errno.EXDEV)
        if isinstance(target, TmpDir):
            raise err(errno.EPERM)
        self._free_name(name)
        if target.nlink == 0:  # linking an unlinked file: as link(2) without O_TMPFILE
            raise err(errno.ENOENT)
        self._attach(name, target)
        target.touch_changed()
        return target

    # -- removal -----------------------------------------------------------

    async def unlink(self, name: bytes) -> None:
        child = self.child(name)
        if isinstance(child, TmpDir):
            raise err(errno.EISDIR, name)
        del self.children[name]
        self.touch_modified()
        child.drop_link()

    async def rmdir(self, name: bytes) -> None:
        child = self.child(name)
        if not isinstance(child, TmpDir):
            raise err(errno.ENOTDIR, name)
        if child.children:
            raise err(errno.ENOTEMPTY, name)
        del self.children[name]
        self._detach_dir(child)
        self.touch_modified()

    def _detach_dir(self, child: TmpDir) -> None:
        """`child` (empty) lost its name in self: it is gone, `..` included."""
        self.nlink -= 1
        child.parent = None
        child.nlink = 0
        child.touch_changed()
        child.maybe_free()

    # -- rename ------------------------------------------------------------

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == (
                RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise err(errno.EINVAL)
        if not isinstance(new_parent, TmpDir) or new_parent.fs is not self.fs:
            raise err(errno.EXDEV)
        check_name(new_name)
        src = self.child(name)
        dst = new_parent.children.get(new_name)
        new_parent._live()
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise err(errno.ENOENT, new_name)
            self._exchange(name, src, new_parent, new_name, dst)
            return
        if isinstance(src, TmpDir) and is_ancestor(src, new_parent):
            raise err(errno.EINVAL)
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise err(errno.EEXIST, new_name)
            if dst is src:
                return  # two names of one inode: rename(2) does nothing
            if isinstance(dst, TmpDir):
                if not isinstance(src, TmpDir):
                    raise err(errno.EISDIR, new_name)
                if dst.children:
                    raise err(errno.ENOTEMPTY, new_name)
            elif isinstance(src, TmpDir):
                raise err(errno.ENOTDIR, new_name)
        t = now_ns()
        del self.children[name]
        if dst is not None:
            del new_parent.children[new_name]
            if isinstance(dst, TmpDir):
                new_parent._detach_dir(dst)
            else:
                dst.drop_link()
        new_parent.children[new_name] = src
        if isinstance(src, TmpDir):
            src.parent = new_parent
            self.nlink -= 1
            new_parent.nlink += 1
        self.touch_modified(t)
        new_parent.touch_modified(t)
        src.touch_changed(t)

    def _exchange(self, name: bytes, src: TmpInode, new_parent: TmpDir, new_name: bytes,
                  dst: TmpInode) -> None:
        if src is dst:
            return
        if isinstance(src, TmpDir) and is_ancestor(src, new_parent):
            raise err(errno.EINVAL)
        if isinstance(dst, TmpDir) and is_ancestor(dst, self):
            raise err(errno.EINVAL)
        t = now_ns()
        self.children[name] = dst
        new_parent.children[new_name] = src
        if isinstance(src, TmpDir):
            src.parent = new_parent
            self.nlink -= 1
            new_parent.nlink += 1
        if isinstance(dst, TmpDir):
            dst.parent = self
            new_parent.nlink -= 1
            self.nlink += 1
        self.touch_modified(t)
        new_parent.touch_modified(t)
        src.touch_changed(t)
        dst.touch_changed(t)


def is_ancestor(ancestor: TmpDir, node: TmpDir | None) -> bool:
    """Whether `ancestor` is `node` or one of its parents (a rename into
    itself would cut the subtree off the tree: EINVAL)."""
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False
