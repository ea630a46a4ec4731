"""A filesystem whose inodes live behind a gofer, reached through a 9P client.

Each `RemoteInode` knows its parent and name and walks a fid for itself only
when it needs one (to open, list or walk further), so a directory listing of
10,000 files costs one round trip and no fids. Attributes come with names:
the gofer's walk and readdir extensions return them in the same reply.

Cache policy (`CachePolicy`) decides how long what was learned stays true:
`EXCLUSIVE` (nothing else changes the tree: cache attributes, names and
listings for the life of the mount), `REVALIDATE` (a fact older than the
window is checked with the gofer before use: a name is walked again, an
attribute fetched again; a name whose (ino, type) changed on the host is a
new inode, one whose size or mtime changed is counted as an invalidation;
no negative entries are kept), `NONE` (the window is zero). Known inodes are
reused whatever the policy, so repeated lookups cost no new fids.

Data: the gofer donates the host fd on open, and reads go straight to it
with `os.pread`; without donation (TCP, a plain 9P server) reads fall back to
Tread. Donated read-only fds are kept per inode in a bounded `FdCache`.
"""

from __future__ import annotations

import enum
import errno
import math
import os
import resource
import stat as statmod
import time
from dataclasses import dataclass

import trio

from gofer.client import Client, DirentAttr, Qid, Stat
from sandboxfs.remote.fdcache import FdCache
from sandboxfs.remote.fids import FidTable
from sandboxfs.vfs import Attr, Creds, DirEntry, FileHandle, Inode, SetAttr, StatFs

AT_REMOVEDIR = 0x200


class CachePolicy(enum.Enum):
    """How long facts learned from the host stay true (see ARCHITECTURE.md)."""

    EXCLUSIVE = "exclusive"
    REVALIDATE = "revalidate"
    NONE = "none"


def attr_of(st: Stat) -> Attr:
    """The VFS attributes of a gofer stat: the host's own inode number and times."""
    return Attr(
        ino=st.qid.path,
        mode=st.mode,
        nlink=st.nlink,
        uid=st.uid,
        gid=st.gid,
        size=st.size,
        atime_ns=st.atime_ns,
        mtime_ns=st.mtime_ns,
        ctime_ns=st.ctime_ns,
        rdev=st.rdev,
        blocks=st.blocks,
        blksize=st.blksize or 4096,
    )


@dataclass(slots=True)
class CacheStats:
    """What the daemon's cache of one export did: for `pod stats` and tuning."""

    hits: int = 0  # answered from the cache
    misses: int = 0  # asked the gofer (first sight or past the window)
    invalidations: int = 0  # a cached fact found changed on the host

    def to_json(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "invalidations": self.invalidations}


def _same_file(a: Stat, b: Stat) -> bool:
    return a.qid.path == b.qid.path and statmod.S_IFMT(a.mode) == statmod.S_IFMT(b.mode)


def _no_such(name: bytes) -> OSError:
    return OSError(errno.ENOENT, os.strerror(errno.ENOENT), name.decode(errors="replace"))


def default_fd_cache_size() -> int:
    """A quarter of the descriptors this process may open: donated fds are
    the cheapest reads there are, but memfds and sockets need room too."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(256, min(soft // 4, 1 << 16))


class RemoteFs:
    """One gofer export, attached once; `root` is its root directory."""

    def __init__(self, client: Client, root_fid: int, root_stat: Stat, *,
                 readonly: bool, policy: CachePolicy = CachePolicy.EXCLUSIVE,
                 window: float = 1.0, fd_cache_size: int | None = None,
                 fid_capacity: int = 4096) -> None:
        self.client = client
        self.readonly = readonly
        self.policy = policy
        #: Seconds a fact learned from the host is trusted without asking again.
        self.window = {CachePolicy.EXCLUSIVE: math.inf, CachePolicy.REVALIDATE: window,
                       CachePolicy.NONE: 0.0}[policy]
        self.stats = CacheStats()
        self.fds = FdCache(fd_cache_size or default_fd_cache_size())
        self.fid_table = FidTable(fid_capacity)
        #: Topenat (walk+open+donate in one round trip) works on this connection.
        self.can_openat = client.extensions
        self.root = RemoteInode(self, None, b"", root_stat, fid=root_fid)

    @classmethod
    async def attach(cls, client: Client, *, aname: bytes = b"", readonly: bool,
                     policy: CachePolicy = CachePolicy.EXCLUSIVE,
                     window: float = 1.0) -> RemoteFs:
        fid, _ = await client.attach(aname)
        root_stat = await client.getattr(fid)
        return cls(client, fid, root_stat, readonly=readonly, policy=policy, window=window)

    @property
    def caches(self) -> bool:
        """True when nothing but us changes the tree (negative entries may be kept)."""
        return self.policy is CachePolicy.EXCLUSIVE

    def orphan(self, fid: int) -> None:
        """A fid of an inode replaced on the host: clunked at the next lookup."""
        self.fid_table.retire_now(fid)

    async def walk_getattr(self, fid: int, name: bytes) -> tuple[int, list[Qid], list[Stat]]:
        """Walk one name with its attributes (see `_walk`)."""
        return await self._walk(fid, [name], attrs=True)

    async def walk(self, fid: int, names: list[bytes]) -> int:
        """Walk `names` (none: clone) to a new fid (see `_walk`)."""
        newfid, _, _ = await self._walk(fid, names, attrs=False)
        return newfid

    async def _walk(self, fid: int, names: list[bytes], *,
                    attrs: bool) -> tuple[int, list[Qid], list[Stat]]:
        """Every walk also clunks the fids given back since the last one, in the
        same round trip (requests are pipelined), so fids never pile up."""
        orphans = self.fid_table.due()

        async def go() -> tuple[int, list[Qid], list[Stat]]:
            if attrs:
                return await self.client.walk_getattr(fid, names)
            newfid, qids = await self.client.walk(fid, names)
            return newfid, qids, []

        if not orphans:
            return await go()
        result: tuple[int, list[Qid], list[Stat]] | OSError
        async with trio.open_nursery() as nursery:
            for orphan in orphans:
                nursery.start_soon(self._clunk_quietly, orphan)
            try:
                result = await go()
            except OSError as exc:
                result = exc
        if isinstance(result, OSError):
            raise result
        return result

    async def _clunk_quietly(self, fid: int) -> None:
        try:
            await self.client.clunk(fid)
        except OSError:
            pass  # the fid is freed either way

    def check_writable(self) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def close(self) -> None:
        self.fds.close_all()


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
        # When a walk or listing last confirmed that our name still names this file
        # (a getattr through our fid cannot tell: it follows the file, not the name).
        self._named = self._checked

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
        if known is not None and _same_file(known._stat, st):
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
        return attr_of(self._stat)

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
            raise _no_such(name)
        if known is not None and self._listing is not None:
            # A listed directory revalidates all its names at once: one listing
            # (names with attributes) instead of a walk per stale name.
            await self.readdir()
            again = self._children.get(name)
            if again is None:
                raise _no_such(name)
            return again
        fs.stats.misses += 1
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

    async def _created(self, name: bytes) -> Inode:
        self._forget_listing()
        fid, _, stats = await self._fs.client.walk_getattr(await self.fid(), [name])
        await self._refresh()
        return self._child(name, stats[-1], fid=fid)

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
        return await self._created(name)

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        self._fs.check_writable()
        self._require_dir()
        await self._fs.client.mkdir(await self.fid(), name, mode & 0o7777, creds.gid)
        return await self._created(name)

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        self._fs.check_writable()
        self._require_dir()
        await self._fs.client.mknod(await self.fid(), name, mode, os.major(rdev),
                                    os.minor(rdev), creds.gid)
        return await self._created(name)

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        self._fs.check_writable()
        self._require_dir()
        await self._fs.client.symlink(await self.fid(), name, target, creds.gid)
        return await self._created(name)

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
        await self._fs.client.unlinkat(await self.fid(), name, 0)
        self._removed(name)
        await self._refresh()

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
        new_parent._children.pop(new_name, None)
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
        """A read-only host fd for this file from the fd cache, opened if missing."""
        fds = self._fs.fds
        fd = fds.get(self.ino)
        if fd is None:
            fd = fds.put(self.ino, await self._openat(os.O_RDONLY))
        return fd

    async def readlink(self) -> bytes:
        if not statmod.S_ISLNK(self._stat.mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if self._link_target is None or not self._fresh(self._checked):
            if not self._fresh(self._checked):
                await self.getattr()
            self._link_target = await self._fs.client.readlink(await self.fid())
        return self._link_target

    # -- extended attributes -----------------------------------------------

    async def getxattr(self, name: bytes) -> bytes:
        return await self._fs.client.getxattr(await self.fid(), name)

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        self._fs.check_writable()
        await self._fs.client.setxattr(await self.fid(), name, value, flags)

    async def listxattr(self) -> list[bytes]:
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


class RemoteFile:
    """An open host file: pread/pwrite on the donated fd, else Tread/Twrite.

    A read-only handle may start with neither (a lazy open): its first read
    takes the inode's cached fd, or has the gofer open one.
    """

    def __init__(self, inode: RemoteInode, fid: int | None, fd: int | None,
                 *, cached: bool) -> None:
        self._inode = inode
        self._fid = fid
        self._fd = fd
        self._cached = cached
        if fd is not None and cached:
            inode._fs.fds.acquire(fd)

    async def read(self, offset: int, size: int) -> bytes:
        if self._fd is None and self._fid is None:
            self._fd = await self._inode.cached_read_fd()  # the lazy open
            self._inode._fs.fds.acquire(self._fd)
        if self._fd is not None:
            return os.pread(self._fd, size, offset)
        assert self._fid is not None
        client = self._inode._fs.client
        chunks: list[bytes] = []
        while size > 0:
            chunk = await client.read(self._fid, offset, size)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    async def write(self, offset: int, data: bytes) -> int:
        if self._fd is not None:
            written = os.pwrite(self._fd, data, offset)
        else:
            assert self._fid is not None
            written = await self._inode._fs.client.write(self._fid, offset, data)
        self._inode._stat = await self._inode._fs.client.getattr(await self._inode.fid())
        return written

    async def flush(self) -> None:
        return None

    async def fsync(self, datasync: bool) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        elif self._fid is not None:
            await self._inode._fs.client.fsync(self._fid)

    async def release(self) -> None:
        if self._fd is not None:
            if self._cached:
                self._inode._fs.fds.release(self._fd)
            else:
                os.close(self._fd)
            self._fd = None
        if self._fid is not None:
            fid, self._fid = self._fid, None
            await self._inode._fs.client.clunk(fid)

    def fileno(self) -> int | None:
        return self._fd
