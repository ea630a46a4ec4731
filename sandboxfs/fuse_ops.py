"""The thin pyfuse3 adapter: kernel node ids, open handles, errno mapping, cache timeouts.

This is the only module below the CLI that imports pyfuse3. It turns each FUSE
request into one call on a VFS `Inode` or `FileHandle` and turns the result
(or the `OSError`) into the reply. It holds no filesystem logic of its own.

Node ids: pyfuse3 uses one number as both the kernel's node id and the
reported `st_ino`, so the adapter uses `Attr.ino` as the node id, except for
the root, which FUSE fixes at 1. Filesystems keep `ino` unique and stable
(the overlay reserves 1 for its root). The inode table counts kernel lookups
and drops an entry when the kernel forgets it.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3

from sandboxfs import fuse_shim
from sandboxfs.idmap import IdMapping
from sandboxfs.pause import Pauser
from sandboxfs.vfs import Attr, Creds, DirEntry, FileHandle, Inode, SetAttr

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ROOT_ID: int = pyfuse3.ROOT_INODE
#: Bound of the cache of reply objects (cleared whole when full: simple, and rare).
ENTRY_CACHE_SIZE = 1 << 17


def fuse_errors(
    handler: Callable[Concatenate[FuseOps, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[FuseOps, P], Coroutine[Any, Any, R]]:
    """Run a handler through the pause gate and turn every exception into a `FUSEError`.

    An `OSError` keeps its errno; anything else is a bug: it is logged with its
    traceback and answered with EIO, so one bad request never kills the daemon.
    While the filesystem is paused (checkpoint), the request waits first.
    """

    @functools.wraps(handler)
    async def wrapper(self: FuseOps, *args: P.args, **kwargs: P.kwargs) -> R:
        gate = self.pauser
        if gate.paused:
            await gate.wait_open()
        gate.enter()
        self.requests[handler.__name__] += 1
        try:
            return await handler(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("internal error in %s", handler.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None
        finally:
            gate.leave()

    return wrapper


@dataclass(frozen=True, slots=True)
class CacheTimeouts:
    """Kernel entry and attribute cache lifetimes (seconds) and page-cache policy.

    Exclusive mounts (nothing but this daemon changes the tree) use long
    timeouts and keep the page cache across opens; every change made through
    the mount reaches the kernel's caches through FUSE replies anyway.
    """

    entry: float
    attr: float
    keep_cache: bool
    negative: bool = False  # absent names cached by the kernel too, for `entry`

    @classmethod
    def exclusive(cls) -> CacheTimeouts:
        return cls(entry=86400.0, attr=86400.0, keep_cache=True, negative=True)

    @classmethod
    def none(cls) -> CacheTimeouts:
        return cls(entry=0.0, attr=0.0, keep_cache=False)


@dataclass(slots=True)
class _Node:
    inode: Inode
    lookups: int = 0


@dataclass(slots=True)
class _DirHandle:
    inode: Inode
    entries: list[DirEntry] = field(default_factory=list)


class FuseOps(pyfuse3.Operations):
    """pyfuse3 operations over one VFS root."""

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, root: Inode, timeouts: CacheTimeouts | None = None, *,
                 timeouts_for: Callable[[Inode], CacheTimeouts] | None = None,
                 idmap: IdMapping | None = None) -> None:
        """`timeouts` apply to every inode, unless `timeouts_for` gives each
        inode's own (per-mount cache policies). `idmap` shifts owners between
        the filesystem and the kernel (an id-mapped mount, sandboxfs/idmap.py)."""
        super().__init__()
        self._idmap = idmap
        #: FUSE requests answered, by operation (`sandboxfs stats`; the bench's profiles).
        self.requests: Counter[str] = Counter()
        self._timeouts = timeouts or CacheTimeouts.exclusive()
        self._timeouts_for = timeouts_for
        self.pauser = Pauser()
        # Reply objects by node id, kept while the attributes object is the same
        # (filesystems hand back one Attr until something changes).
        self._entries: dict[int, tuple[Attr, CacheTimeouts, pyfuse3.EntryAttributes]] = {}
        self._root = root
        self._nodes: dict[int, _Node] = {ROOT_ID: _Node(root, lookups=1)}
        self._files: dict[int, FileHandle] = {}
        self._dirs: dict[int, _DirHandle] = {}
        self._next_fh = 1

    # -- tables ------------------------------------------------------------

    def _inode(self, node_id: int) -> Inode:
        node = self._nodes.get(node_id)
        if node is None:
            raise pyfuse3.FUSEError(errno.ESTALE)
        return node.inode

    def _node_id(self, inode: Inode, attr: Attr) -> int:
        return ROOT_ID if inode is self._root else attr.ino

    def _remember(self, inode: Inode, attr: Attr) -> int:
        """Count one kernel lookup of `inode`; returns its node id."""
        node_id = self._node_id(inode, attr)
        node = self._nodes.get(node_id)
        if node is None:
            self._nodes[node_id] = _Node(inode, lookups=1)
        else:
            node.inode = inode
            node.lookups += 1
        return node_id

    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def _timeouts_of(self, inode: Inode) -> CacheTimeouts:
        if self._timeouts_for is None:
            return self._timeouts
        return self._timeouts_for(inode)

    def _entry(self, node_id: int, attr: Attr, inode: Inode) -> pyfuse3.EntryAttributes:
        timeouts = self._timeouts_of(inode)
        cached = self._entries.get(node_id)
        if cached is not None and cached[0] is attr and cached[1] == timeouts:
            return cached[2]  # the same attributes object as the last reply: reuse it
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = node_id
        entry.generation = 0
        entry.entry_timeout = timeouts.entry
        entry.attr_timeout = timeouts.attr
        entry.st_mode = attr.mode
        entry.st_nlink = attr.nlink
        if self._idmap is None:
            entry.st_uid = attr.uid
            entry.st_gid = attr.gid
        else:
            entry.st_uid = self._idmap.uid.shown(attr.uid)
            entry.st_gid = self._idmap.gid.shown(attr.gid)
        entry.st_rdev = attr.rdev
        entry.st_size = attr.size
        entry.st_blksize = attr.blksize
        entry.st_blocks = attr.blocks
        entry.st_atime_ns = attr.atime_ns
        entry.st_mtime_ns = attr.mtime_ns
        entry.st_ctime_ns = attr.ctime_ns
        if len(self._entries) >= ENTRY_CACHE_SIZE:
            self._entries.clear()
        self._entries[node_id] = (attr, timeouts, entry)
        return entry

    def _negative_entry(self, parent: Inode) -> pyfuse3.EntryAttributes:
        """ENOENT that the kernel keeps (st_ino 0) on an exclusive mount, for its
        entry timeout: `git status` and compilers look up the same absent names
        over and over. A name created through the mount replaces the kernel's
        negative entry. Mounts whose tree may change behind the kernel
        (revalidate, none) answer a plain ENOENT, so a file the host creates
        shows at the next lookup."""
        timeouts = self._timeouts_of(parent)
        if not timeouts.negative or not timeouts.entry:
            raise pyfuse3.FUSEError(errno.ENOENT)
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = 0
        entry.entry_timeout = timeouts.entry
        return entry

    async def _reply_entry(self, inode: Inode) -> pyfuse3.EntryAttributes:
        attr = await inode.getattr()
        return self._entry(self._remember(inode, attr), attr, inode)

    def _creds(self, ctx: pyfuse3.RequestContext) -> Creds:
        if self._idmap is None:
            return Creds(uid=ctx.uid, gid=ctx.gid)
        return Creds(uid=self._idmap.uid.stored(ctx.uid), gid=self._idmap.gid.stored(ctx.gid))

    # -- lookups and attributes --------------------------------------------

    @fuse_errors
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self._inode(parent_inode)
        try:
            child = await parent.lookup(name)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return self._negative_entry(parent)
        return await self._reply_entry(child)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for node_id, count in inode_list:
            node = self._nodes.get(node_id)
            if node is None or node_id == ROOT_ID:
                continue
            node.lookups -= count
            if node.lookups <= 0:
                del self._nodes[node_id]

    @fuse_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self._inode(inode)
        return self._entry(inode, await node.getattr(), node)

    @fuse_errors
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        uid = attr.st_uid if fields.update_uid else None
        gid = attr.st_gid if fields.update_gid else None
        if self._idmap is not None:
            uid = None if uid is None else self._idmap.uid.stored(uid)
            gid = None if gid is None else self._idmap.gid.stored(gid)
        changes = SetAttr(
            mode=(attr.st_mode & 0o7777) if fields.update_mode else None,
            uid=uid,
            gid=gid,
            size=attr.st_size if fields.update_size else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
        )
        node = self._inode(inode)
        new = await node.setattr(changes) if not changes.is_empty() else await node.getattr()
        return self._entry(inode, new, node)

    @fuse_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._inode(inode).readlink()

    @fuse_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = await self._root.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = st.bsize
        out.f_frsize = st.frsize
        out.f_blocks = st.blocks
        out.f_bfree = st.bfree
        out.f_bavail = st.bavail
        out.f_files = st.files
        out.f_ffree = st.ffree
        out.f_favail = st.favail
        out.f_namemax = st.namemax
        return out

    # -- namespace changes -------------------------------------------------

    @fuse_errors
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        child = await self._inode(parent_inode).mknod(name, mode, rdev, self._creds(ctx))
        return await self._reply_entry(child)

    @fuse_errors
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        child = await self._inode(parent_inode).mkdir(name, mode, self._creds(ctx))
        return await self._reply_entry(child)

    @fuse_errors
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        child = await self._inode(parent_inode).symlink(name, target, self._creds(ctx))
        return await self._reply_entry(child)

    @fuse_errors
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        target = self._inode(inode)
        child = await self._inode(new_parent_inode).link(new_name, target)
        return await self._reply_entry(child)

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._inode(parent_inode).unlink(name)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._inode(parent_inode).rmdir(name)

    @fuse_errors
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        await self._inode(parent_inode_old).rename(
            name_old, self._inode(parent_inode_new), name_new, flags)

    # -- files -------------------------------------------------------------

    def _file_info(self, handle: FileHandle, inode: Inode) -> pyfuse3.FileInfo:
        fh = self._new_fh()
        self._files[fh] = handle
        return pyfuse3.FileInfo(fh=fh, keep_cache=self._timeouts_of(inode).keep_cache)

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._inode(inode)
        return self._file_info(await node.open(flags), node)

    @fuse_errors
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        child = await self._inode(parent_inode).create(name, mode, self._creds(ctx))
        handle = await child.open(flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC))
        entry = await self._reply_entry(child)
        return self._file_info(handle, child), entry

    def _handle(self, fh: int) -> FileHandle:
        handle = self._files.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return handle

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._handle(fh).read(off, size)

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self._handle(fh).write(off, buf)

    # No `flush`: pyfuse3's default answers ENOSYS, after which the kernel stops
    # sending FLUSH on every close(2). No filesystem here has anything to do
    # then (writes are synchronous); that saves one request per file opened.

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._handle(fh).fsync(datasync)

    @fuse_errors
    async def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is not None:
            await handle.release()

    # -- directories -------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self._inode(inode)
        attr = await node.getattr()
        if (attr.mode & 0o170000) != 0o040000:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        fh = self._new_fh()
        if self._timeouts_of(node).keep_cache:
            fh |= fuse_shim.CACHE_DIR_BIT  # nothing changes it behind the kernel: keep its listing
        self._dirs[fh] = _DirHandle(node)
        return fh

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self._dirs.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if start_id == 0:
            handle.entries = await handle.inode.readdir()
        for index in range(start_id, len(handle.entries)):
            entry = handle.entries[index]
            node_id = self._node_id(entry.inode, entry.attr)
            if not pyfuse3.readdir_reply(token, entry.name,
                                         self._entry(node_id, entry.attr, entry.inode),
                                         index + 1):
                break
            self._remember(entry.inode, entry.attr)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None

    # -- extended attributes -----------------------------------------------

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._inode(inode).getxattr(name)

    @fuse_errors
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        await self._inode(inode).setxattr(name, value)

    @fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        return await self._inode(inode).listxattr()

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._inode(inode).removexattr(name)

    # -- introspection -----------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Table sizes, for `pod stats` and leak checks in tests."""
        return {"nodes": len(self._nodes), "files": len(self._files), "dirs": len(self._dirs),
                "requests": dict(self.requests), "listing_cache": fuse_shim.loaded()}
