"""`RemoteInode`: a host file, directory, symlink or special file behind the gofer.

It knows its parent and name and walks a fid for itself only when it needs
one; what it learned is trusted for its filesystem's window (see
`sandboxfs.remote.filesystem`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
import time
from typing import TYPE_CHECKING

from gofer.client import DirentAttr, Stat
from gofer.wire import MAX_OPEN_BATCH
from sandboxfs.remote.attrs import AT_REMOVEDIR, attr_of, no_such, same_file
from sandboxfs.remote.regular_file import RemoteFile
from sandboxfs.vfs import Attr, Creds, DirEntry, FileHandle, Inode, SetAttr, StatFs

if TYPE_CHECKING:
    from sandboxfs.remote.filesystem import RemoteFs

#: A directory this size or smaller (st_size, bytes) is listed at its first
#: lookup on an exclusive mount (ext4: about 8,000 entries).
LIST_TO_LOOKUP_MAX = 256 << 10
#: Of a sibling opened ahead in a batch, this much is read ahead on the host.
PREFETCH_BYTES = 256 << 10


class RemoteInode:
    """A host file, directory, symlink or special file behind the gofer."""

    def __init__(self, fs: RemoteFs, parent: RemoteInode | None, name: bytes, st: Stat,
                 fid: int | None = None) -> None:
        self._fs = fs
        self._parent = parent
        self._name = name
        self._stat = st
        self._fid = fid
        self._children: dict[bytes, RemoteInode] = {}
        self._missing: set[bytes] = set()
        self._listing: list[DirEntry] | None = None
        self._listed_at = 0.0
        self._link_target: bytes | None = None
        self._checked = time.monotonic()  # when _stat was last confirmed by the gofer
        self._attr = attr_of(st)
        self._attr_of = st  # the stat `_attr` was made from
        # When a walk or listing last confirmed that our name still names this file
        # (a getattr through our fid cannot tell: it follows the file, not the name).
        self._named = self._checked
        self._walks = 0  # names walked here one by one (see lookup)
        self._read_opens = 0  # files opened here for reading one by one (see cached_read_fd)

    # -- helpers -----------------------------------------------------------

    @property
    def ino(self) -> int:
        return self._stat.qid.path

    @property
    def is_dir(self) -> bool:
        return statmod.S_ISDIR(self._stat.mode)

    async def fid(self) -> int:
        """This inode's fid, walked from the parent's on first need."""
        if self._fid is None:
            assert self._parent is not None
            parent_fid = await self._parent.fid()
            fid = await self._fs.walk(parent_fid, [self._name])
            if self._fid is None:
                self._fid = fid
            else:  # another task walked it meanwhile
                await self._fs.client.clunk(fid)
        if self._parent is not None:  # the root's fid is never given back
            self._fs.fid_table.touch(self)
        return self._fid

    def drop_fid(self) -> int | None:
        fid, self._fid = self._fid, None
        return fid

    def _take_fid(self, fid: int) -> None:
        """A fid just walked for this inode: keep it if it has none."""
        if self._fid is None:
            self._fid = fid
            self._fs.fid_table.touch(self)
        else:
            self._fs.orphan(fid)

    def _forget_listing(self) -> None:
        self._listing = None
        self._missing.clear()

    def _fresh(self, since: float) -> bool:
        return time.monotonic() - since < self._fs.window

    def _confirm(self, st: Stat) -> None:
        """Attributes just read from the gofer for this same file."""
        old = self._stat
        if old.size != st.size or old.mtime_ns != st.mtime_ns:
            self._fs.stats.invalidations += 1
            self._link_target = None
            self._listing = None
        self._stat = st
        self._checked = time.monotonic()

    def _child(self, name: bytes, st: Stat, fid: int | None = None) -> RemoteInode:
        """The inode for `name` now statted as `st`: the known one if it is the
        same file, else a new one (the host replaced it)."""
        known = self._children.get(name)
        if known is not None and same_file(known._stat, st):
            known._confirm(st)
            known._named = known._checked
            if fid is not None:
                known._take_fid(fid)
            return known
        if known is not None:
            self._fs.stats.invalidations += 1
            self._fs.fid_table.forget(known)
            if known._fid is not None:
                # Its fid names the replaced file: later uses walk the name again.
                self._fs.orphan(known._fid)
                known._fid = None
        child = RemoteInode(self._fs, self, name, st)
        if fid is not None:
            child._take_fid(fid)
        self._children[name] = child
        self._missing.discard(name)
        return child

    def _require_dir(self) -> None:
        if not self.is_dir:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))

    # -- attributes --------------------------------------------------------

    async def getattr(self) -> Attr:
        if self._fresh(self._checked):
            self._fs.stats.hits += 1
        else:
            self._fs.stats.misses += 1
            self._confirm(await self._fs.client.getattr(await self.fid()))
        if self._attr_of is not self._stat:  # made once per stat the gofer gave
            self._attr, self._attr_of = attr_of(self._stat), self._stat
        return self._attr

    async def setattr(self, changes: SetAttr) -> Attr:
        self._fs.check_writable()
        if changes.size is not None and self.is_dir:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        client = self._fs.client
        fid = await self.fid()
        await client.setattr(fid, mode=changes.mode, uid=changes.uid, gid=changes.gid,
                             size=changes.size, atime_ns=changes.atime_ns,
                             mtime_ns=changes.mtime_ns)
        self._stat = await client.getattr(fid)
        return attr_of(self._stat)

    # -- directories -------------------------------------------------------

    async def lookup(self, name: bytes) -> Inode:
        self._require_dir()
        fs = self._fs
        known = self._children.get(name)
        if known is not None and self._fresh(known._named):
            fs.stats.hits += 1
            return known
        if fs.caches and name in self._missing:
            fs.stats.hits += 1
            raise no_such(name)
        if fs.caches and self._listing is None and self._walks >= 1 \
                and self._stat.size <= LIST_TO_LOOKUP_MAX:
            # A second name looked up here, on an exclusive mount, in a directory
            # not too big: one listing (names with attributes) answers this lookup
            # and every later one, found or not, where a walk costs a round trip
            # each. (One lookup alone, as an open of a single file, just walks.)
            await self.readdir()
        if fs.caches and self._listing is not None:
            found = self._children.get(name)
            if found is None:
                self._missing.add(name)
                raise no_such(name)
            return found
        if known is not None and self._listing is not None:
            # A listed directory revalidates all its names at once: one listing
            # (names with attributes) instead of a walk per stale name.
            await self.readdir()
            again = self._children.get(name)
            if again is None:
                raise no_such(name)
            return again
        fs.stats.misses += 1
        self._walks += 1
        try:
            fid, _, stats = await fs.walk_getattr(await self.fid(), name)
        except FileNotFoundError:
            if known is not None:
                self._removed(name)
                fs.stats.invalidations += 1
            if fs.caches:
                self._missing.add(name)
            raise
        return self._child(name, stats[-1], fid=fid)

    async def readdir(self) -> list[DirEntry]:
        self._require_dir()
        if self._listing is not None and self._fresh(self._listed_at):
            self._fs.stats.hits += 1
            return self._listing
        self._fs.stats.misses += 1
        dirents = await self._list() if self._fs.can_listdir else None
        if dirents is None:
            client = self._fs.client
            dfid = await self._fs.walk(await self.fid(), [])
            try:
                await client.lopen(dfid, os.O_RDONLY | os.O_DIRECTORY)
                dirents = await client.readdir_all(dfid)
            finally:
                await client.clunk(dfid)
        entries = [await self._entry_of(d) for d in dirents]
        listed = {d.name for d in dirents}
        for gone in [name for name in self._children if name not in listed]:
            self._children.pop(gone)
        self._listing = entries
        self._listed_at = time.monotonic()
        return entries

    async def _list(self) -> list[DirentAttr] | None:
        """The listing in one round trip (Tlistdir), from our fid, or from the
        parent's by name when we have none (no fid walked just to list); None
        when it does not fit in one reply or the gofer lacks Tlistdir."""
        if self._fid is None and self._parent is not None:
            fid, names = await self._parent.fid(), [self._name]
        else:
            fid, names = await self.fid(), []
        try:
            return await self._fs.client.listdir(fid, names)
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            self._fs.can_listdir = False
            return None

    async def _entry_of(self, dirent: DirentAttr) -> DirEntry:
        st = dirent.stat
        if st is None:  # plain 9P2000.L: one getattr walk per name
            known = self._children.get(dirent.name)
            if known is not None:
                st = known._stat
            else:
                fid, _, stats = await self._fs.client.walk_getattr(await self.fid(),
                                                                   [dirent.name])
                st = stats[-1]
                child = self._child(dirent.name, st, fid=fid)
                return DirEntry(dirent.name, child, attr_of(st))
        child = self._child(dirent.name, st)
        return DirEntry(dirent.name, child, attr_of(st))

    async def _created(self, name: bytes, creds: Creds, mode: int = 0) -> Inode:
        """The inode just made as `name`, owned by `creds.uid`. 9P2000.L makes
        entries as the attaching user with the asked-for gid; another owner
        is a Tsetattr after (with the mode again: a chown clears set-user-ID
        and set-group-ID)."""
        self._forget_listing()
        client = self._fs.client
        fid, _, stats = await client.walk_getattr(await self.fid(), [name])
        st = stats[-1]
        if st.uid != creds.uid:
            kill_bits = mode & 0o6000 and not statmod.S_ISDIR(st.mode)
            try:
                await client.setattr(fid, uid=creds.uid,
                                     mode=mode & 0o7777 if kill_bits else None)
                st = await client.getattr(fid)
            except BaseException:
                await client.clunk(fid)
                raise
        await self._refresh()
        return self._child(name, st, fid=fid)

    async def _refresh_held(self) -> None:
        """Re-read the attributes through the fid this inode holds, if it holds
        one: never walk to it, its name may be gone or another file's now."""
        fid = self._fid
        if fid is None:
            return
        try:
            self._confirm(await self._fs.client.getattr(fid))
        except OSError:
            pass  # the cached attributes stay; nothing else depends on them

    async def _refresh(self) -> None:
        self._confirm(await self._fs.client.getattr(await self.fid()))

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:
        self._fs.check_writable()
        self._require_dir()
        client = self._fs.client
        fid = await self._fs.walk(await self.fid(), [])
        try:
            _, _, fd = await client.lcreate(fid, name, os.O_RDWR | os.O_CREAT | os.O_EXCL,
                                            mode & 0o7777, creds.gid)
            if fd is not None:
                os.close(fd)
        finally:
            await client.clunk(fid)
        return await self._created(name, creds, mode)

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        self._fs.check_writable()
        self._require_dir()
        await self._fs.client.mkdir(await self.fid(), name, mode & 0o7777, creds.gid)
        return await self._created(name, creds, mode)

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        self._fs.check_writable()
        self._require_dir()
        await self._fs.client.mknod(await self.fid(), name, mode, os.major(rdev),
                                    os.minor(rdev), creds.gid)
        return await self._created(name, creds, mode)

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        self._fs.check_writable()
        self._require_dir()
        await self._fs.client.symlink(await self.fid(), name, target, creds.gid)
        return await self._created(name, creds)

    async def link(self, name: bytes, target: Inode) -> Inode:
        self._fs.check_writable()
        if not isinstance(target, RemoteInode) or target._fs is not self._fs:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        await self._fs.client.link(await self.fid(), await target.fid(), name)
        self._forget_listing()
        await target._refresh()
        await self._refresh()
        self._children[name] = target
        return target

    async def unlink(self, name: bytes) -> None:
        self._fs.check_writable()
        gone = self._children.get(name)
        await self._fs.client.unlinkat(await self.fid(), name, 0)
        self._removed(name)
        await self._refresh()
        if gone is not None:
            await gone._refresh_held()  # one name less: its open handles see nlink drop

    async def rmdir(self, name: bytes) -> None:
        self._fs.check_writable()
        await self._fs.client.unlinkat(await self.fid(), name, AT_REMOVEDIR)
        self._removed(name)
        await self._refresh()

    def _removed(self, name: bytes) -> None:
        self._children.pop(name, None)
        self._forget_listing()

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        self._fs.check_writable()
        if not isinstance(new_parent, RemoteInode) or new_parent._fs is not self._fs:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        if flags:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        await self._fs.client.renameat(await self.fid(), name, await new_parent.fid(), new_name)
        moved = self._children.pop(name, None)
        replaced = new_parent._children.pop(new_name, None)
        if replaced is not None and replaced is not moved and not replaced.is_dir:
            await replaced._refresh_held()  # one name of it less
        self._forget_listing()
        new_parent._forget_listing()
        if moved is not None:
            # Its fid still names the moved file on the host; only its path changed.
            moved._parent, moved._name = new_parent, new_name
            new_parent._children[new_name] = moved
        await self._refresh()
        if new_parent is not self:
            await new_parent._refresh()

    # -- files -------------------------------------------------------------

    async def open(self, flags: int) -> FileHandle:
        if self.is_dir:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        writing = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if writing:
            self._fs.check_writable()
        fds = self._fs.fds
        if not writing:
            cached = fds.get(self.ino)
            if cached is not None:
                return RemoteFile(self, None, cached, cached=True)
        open_flags = flags & (os.O_ACCMODE | os.O_TRUNC | os.O_APPEND)
        if self._fs.can_openat and self._parent is not None and statmod.S_ISREG(self._stat.mode):
            if not writing:
                # Opened at the first read: when the kernel's page cache already
                # holds the bytes, no read comes and the gofer is never asked.
                return RemoteFile(self, None, None, cached=True)
            try:
                donated = await self._openat(open_flags)
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise
            else:
                if open_flags & os.O_TRUNC:
                    await self._refresh()
                return RemoteFile(self, None, donated, cached=False)
        client = self._fs.client
        # Walk the name from the parent (a directory keeps its fid) rather than
        # cloning our own: one round trip, and no fid kept per opened file.
        if self._parent is not None:
            fid = await self._fs.walk(await self._parent.fid(), [self._name])
        else:
            fid = await self._fs.walk(await self.fid(), [])
        try:
            _, _, fd = await client.lopen(fid, open_flags)
        except BaseException:
            self._fs.orphan(fid)
            raise
        if open_flags & os.O_TRUNC:
            await self._refresh()
        if fd is None:
            return RemoteFile(self, fid, None, cached=False)
        self._fs.orphan(fid)  # clunked with the next walk, in its round trip
        if not writing:
            fd = fds.put(self.ino, fd)
            return RemoteFile(self, None, fd, cached=True)
        return RemoteFile(self, None, fd, cached=False)

    async def _openat(self, flags: int) -> int:
        """The host fd of this file, opened by the gofer in one round trip
        (Topenat: walk from the parent, open, donate; no fid made)."""
        assert self._parent is not None
        try:
            _, fd = await self._fs.client.openat(await self._parent.fid(), [self._name], flags)
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                self._fs.can_openat = False
            raise
        return fd

    async def cached_read_fd(self) -> int:
        """A read-only host fd for this file from the fd cache, opened if missing.

        From the second file of a listed directory opened this way on, the
        file is opened together with up to MAX_OPEN_BATCH - 1 of its regular
        siblings not in the cache (the names after it, in name order, then
        those before), in one round trip: a reader going through a
        directory's files (cat, tar, cp -r, an indexer) then finds their fds
        cached, and the host already reading their first PREFETCH_BYTES
        (POSIX_FADV_WILLNEED). One file opened alone in a directory is opened
        alone.
        """
        fds = self._fs.fds
        fd = fds.get(self.ino)
        if fd is None:
            parent = self._parent
            if parent is not None and self._fs.can_open_batch:
                parent._read_opens += 1
                if parent._read_opens >= 2 and parent._listing is not None:
                    fd = await parent._open_batch(self)
            if fd is None:
                fd = fds.put(self.ino, await self._openat(os.O_RDONLY))
        return fd

    async def _open_batch(self, first: RemoteInode) -> int | None:
        """Open `first` and some of its siblings (see `cached_read_fd`); the fd
        of `first`, or None when it did not open that way (then Topenat)."""
        fs = self._fs
        fds = fs.fds
        others = sorted(name for name, child in self._children.items()
                        if child is not first and statmod.S_ISREG(child._stat.mode)
                        and child.ino not in fds)
        after = [name for name in others if name > first._name]
        before = [name for name in others if name < first._name]
        batch = [first._name, *(after + before)[:MAX_OPEN_BATCH - 1]]
        try:
            results = await fs.client.openat_batch(await self.fid(), batch)
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            fs.can_open_batch = False
            return None
        mine = None
        for name, result in zip(batch, results, strict=True):
            if isinstance(result, int):
                continue  # gone, or not readable: its own open will say why
            qid, fd = result
            child = first if name == first._name else self._children.get(name)
            if child is None or child.ino != qid.path:
                os.close(fd)  # the host replaced it since the listing
                continue
            got = fds.put(child.ino, fd)
            if child is first:
                mine = got
            elif got == fd and child._stat.size:
                # Likely read next: have the host start reading it now, so its
                # disk reads overlap our work on the files before it.
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, min(child._stat.size, PREFETCH_BYTES),
                                     os.POSIX_FADV_WILLNEED)
        return mine

    async def readlink(self) -> bytes:
        if not statmod.S_ISLNK(self._stat.mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if self._link_target is None or not self._fresh(self._checked):
            if not self._fresh(self._checked):
                await self.getattr()
            self._link_target = await self._fs.client.readlink(await self.fid())
        return self._link_target

    # -- extended attributes -----------------------------------------------

    async def _xattr_at(self, name: bytes) -> bytes | None:
        """xattr `name` (b"": the name list) in one round trip (Txattrat), from our
        fid, or from the parent's by name when we have none (a copy-up reads the
        lower's xattrs once: no fid walked for that); None: ask the usual way."""
        fs = self._fs
        if not fs.can_xattr_at:
            return None
        if self._fid is None and self._parent is not None:
            fid, names = await self._parent.fid(), [self._name]
        else:
            fid, names = await self.fid(), []
        try:
            return await fs.client.xattr_at(fid, names, name)
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                fs.can_xattr_at = False
            elif exc.errno != errno.ERANGE:
                raise
            return None

    async def getxattr(self, name: bytes) -> bytes:
        if not name:
            raise OSError(errno.EINVAL, "empty xattr name")
        value = await self._xattr_at(name)
        if value is not None:
            return value
        return await self._fs.client.getxattr(await self.fid(), name)

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        self._fs.check_writable()
        await self._fs.client.setxattr(await self.fid(), name, value, flags)

    async def listxattr(self) -> list[bytes]:
        listing = await self._xattr_at(b"")
        if listing is not None:
            return [n for n in listing.split(b"\0") if n]
        return await self._fs.client.listxattr(await self.fid())

    async def removexattr(self, name: bytes) -> None:
        self._fs.check_writable()
        await self._fs.client.removexattr(await self.fid(), name)

    async def statfs(self) -> StatFs:
        st = await self._fs.client.statfs(await self.fid())
        return StatFs(bsize=st.bsize, frsize=st.bsize, blocks=st.blocks, bfree=st.bfree,
                      bavail=st.bavail, files=st.files, ffree=st.ffree, favail=st.ffree,
                      namemax=st.namelen or 255)

    def invalidate(self) -> None:
        """Forget cached names and listings (the host changed under us)."""
        self._children.clear()
        self._forget_listing()
