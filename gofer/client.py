"""The trio 9P2000.L client that sandboxfs uses to reach its gofer (or diod).

Any number of trio tasks may call a `Client` at once: each call takes a tag,
sends its frame under the transport's send lock and waits; one reader task
routes replies to callers by tag. Donated fds (sandboxfs extension) arrive in
stream order, so the reader keeps a FIFO of fds received with the bytes and
hands the oldest to each reply whose `hasfd` flag is set (and to every Ropenat;
an Ropenatbatch takes one per file it opened).

A caller cancelled while waiting gets its request flushed (Tflush) in the
background; the tag is reused only after Rflush, and an fd that still
arrives for it is closed. When the connection is lost every pending and later
call raises OSError(EIO) at once; nothing waits for a reply that cannot come.

Every Rlerror is raised as `OSError(ecode, os.strerror(ecode))`.
"""

from __future__ import annotations

import collections
import errno
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import trio

from gofer import wire as w
from gofer.transport import Transport
from gofer.wire import Qid, Stat

__all__ = ["Client", "DirentAttr", "Qid", "Stat", "StatFs9", "open_client"]

_R = TypeVar("_R", bound=w.Message)
_ATTR_SIZE = 97 + 4  # one Rgetattrbatch result: status[4] attr[97]


@dataclass(frozen=True, slots=True)
class DirentAttr:
    """A directory entry; `stat` is None when it came from plain Treaddir."""

    name: bytes
    qid: Qid
    offset: int
    type: int
    stat: Stat | None


@dataclass(frozen=True, slots=True)
class StatFs9:
    """Rstatfs: the filesystem holding a fid."""

    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int


def _eio(why: str = "connection to the 9P server lost") -> OSError:
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)}: {why}")


class _Pending:
    """One request waiting for its reply."""

    __slots__ = ("event", "reply", "fd", "fds", "orphaned")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: w.Message | None = None
        self.fd: int | None = None
        self.fds: list[int] = []  # the fds of an Ropenatbatch
        self.orphaned = False

    def close_fds(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class Client:
    """A 9P session over one socket; see `open_client`."""

    def __init__(self, transport: Transport, nursery: trio.Nursery) -> None:
        self._transport = transport
        self._nursery = nursery
        self._buffer = w.FrameBuffer(w.MAX_MSIZE)
        self._pending: dict[int, _Pending] = {}
        self._free_tags: list[int] = []
        self._next_tag = 0
        self._free_fids: list[int] = []
        self._next_fid = 1
        self._fds: collections.deque[int] = collections.deque()
        self._dead = False
        self.msize = 0
        self.version = ""
        self.extensions = False
        # Requests sent, by message type (the daemon's `stats`).
        self.sent: dict[str, int] = {}

    # -- session --------------------------------------------------------------

    async def _negotiate(self, msize: int, extensions: bool) -> None:
        """Tversion before the reader runs; falls back to plain 9P2000.L."""
        wanted = [w.VERSION_EXT, w.VERSION_L] if extensions else [w.VERSION_L]
        for version in wanted:
            await self._transport.send(w.encode(w.NOTAG, w.Tversion(msize, version)))
            reply = await self._receive_one()
            if isinstance(reply, w.Rversion) and reply.version in (w.VERSION_EXT, w.VERSION_L):
                if reply.msize < w.MIN_MSIZE or reply.msize > msize:
                    raise OSError(errno.EPROTO, f"server chose msize {reply.msize}")
                self.msize = reply.msize
                self.version = reply.version.decode()
                self.extensions = reply.version == w.VERSION_EXT
                self._buffer.max_size = self.msize
                return
        raise OSError(errno.EPROTONOSUPPORT, "server speaks no 9P2000.L")

    async def _receive_one(self) -> w.Message:
        while True:
            for type_, tag, body in self._buffer.frames():
                return w.decode(type_, tag, body)
            data, fds = await self._transport.receive()
            for fd in fds:
                os.close(fd)
            if not data:
                raise _eio("closed during version negotiation")
            self._buffer.feed(data)

    async def _receive_loop(self) -> None:
        try:
            while True:
                data, fds = await self._transport.receive()
                self._fds.extend(fds)
                if not data:
                    return
                self._buffer.feed(data)
                for type_, tag, body in self._buffer.frames():
                    self._route(tag, w.decode(type_, tag, body))
        except (OSError, w.ProtocolError):
            pass
        finally:
            self._fail_all()

    def _route(self, tag: int, msg: w.Message) -> None:
        fd = None
        batch: list[int] = []
        if isinstance(msg, w.Ropenat) or (isinstance(msg, w.Rlopenfd | w.Rlcreatefd)
                                          and msg.hasfd):
            if not self._fds:
                raise w.ProtocolError("reply flagged with an fd, but none arrived")
            fd = self._fds.popleft()
        elif isinstance(msg, w.Ropenatbatch) and msg.qids:
            if len(self._fds) < len(msg.qids):
                raise w.ProtocolError("Ropenatbatch came with too few fds")
            batch = [self._fds.popleft() for _ in msg.qids]
        p = self._pending.get(tag)
        if p is None or p.orphaned:  # orphaned: flushed; the flush frees the tag
            if fd is not None:
                os.close(fd)
            for extra in batch:
                os.close(extra)
            if p is not None:
                del self._pending[tag]
            return
        del self._pending[tag]
        p.reply, p.fd, p.fds = msg, fd, batch
        p.event.set()

    def _fail_all(self) -> None:
        self._dead = True
        for p in self._pending.values():
            p.event.set()
        self._pending.clear()
        while self._fds:
            os.close(self._fds.popleft())

    def _alloc_tag(self) -> int:
        if self._free_tags:
            return self._free_tags.pop()
        if self._next_tag >= w.NOTAG:
            raise OSError(errno.EAGAIN, "too many requests in flight")
        self._next_tag += 1
        return self._next_tag - 1

    async def _send(self, tag: int, msg: w.Message) -> None:
        kind = type(msg).__name__
        self.sent[kind] = self.sent.get(kind, 0) + 1
        try:
            await self._transport.send(w.encode(tag, msg))
        except OSError:
            self._fail_all()
            raise _eio() from None

    async def _rpc_fd(self, msg: w.Message, expect: type[_R]) -> tuple[_R, int | None]:
        """Send `msg`, wait for its reply; raise its Rlerror; return reply and fd."""
        reply, fd, extra = await self._rpc_fds(msg, expect)
        for stray in extra:
            os.close(stray)
        return reply, fd

    async def _rpc_fds(self, msg: w.Message,
                       expect: type[_R]) -> tuple[_R, int | None, list[int]]:
        """`_rpc_fd`, also returning the fds of an Ropenatbatch."""
        if self._dead:
            raise _eio()
        tag = self._alloc_tag()
        p = _Pending()
        self._pending[tag] = p
        try:
            await self._send(tag, msg)
            await p.event.wait()
        except trio.Cancelled:
            if self._pending.get(tag) is p:
                p.orphaned = True
                self._nursery.start_soon(self._flush, tag)
            else:
                p.close_fds()
                self._free_tags.append(tag)
            raise
        except BaseException:
            self._pending.pop(tag, None)
            raise
        self._free_tags.append(tag)
        reply = p.reply
        if reply is None:
            raise _eio()
        if isinstance(reply, w.Rlerror):
            raise OSError(reply.ecode, os.strerror(reply.ecode))
        if not isinstance(reply, expect):
            p.close_fds()
            raise OSError(errno.EPROTO, f"expected {expect.__name__}, got {type(reply).__name__}")
        return reply, p.fd, p.fds

    async def _rpc(self, msg: w.Message, expect: type[_R]) -> _R:
        reply, fd = await self._rpc_fd(msg, expect)
        if fd is not None:
            os.close(fd)
        return reply

    async def _flush(self, oldtag: int) -> None:
        """Tflush a cancelled request; its tag is free again only after Rflush."""
        try:
            await self._rpc(w.Tflush(oldtag), w.Rflush)
        except OSError:
            return  # connection gone: nothing will be reused
        self._pending.pop(oldtag, None)
        self._free_tags.append(oldtag)

    # -- fids -----------------------------------------------------------------

    def _alloc_fid(self) -> int:
        if self._free_fids:
            return self._free_fids.pop()
        self._next_fid += 1
        return self._next_fid - 1

    def _release_fid(self, fid: int) -> None:
        self._free_fids.append(fid)

    async def attach(self, aname: bytes = b"", uname: bytes = b"root",
                     n_uname: int = 0) -> tuple[int, Qid]:
        """Attach to the export `aname` names; returns (fid, qid) of its root."""
        fid = self._alloc_fid()
        try:
            r = await self._rpc(w.Tattach(fid, w.NOFID, uname, aname, n_uname), w.Rattach)
        except OSError:
            self._release_fid(fid)
            raise
        return fid, r.qid

    async def _walk_into(self, fid: int, names: Sequence[bytes],
                         ext: bool) -> tuple[int, list[Qid], list[Stat]]:
        """Walk in chunks of 16 (9P's MAXWELEM) into one new fid, all or nothing."""
        newfid = self._alloc_fid()
        qids: list[Qid] = []
        stats: list[Stat] = []
        src = fid
        chunks = [list(names[i:i + 16]) for i in range(0, len(names), 16)] or [[]]
        try:
            for chunk in chunks:
                if ext:
                    rg = await self._rpc(w.Twalkgetattr(src, newfid, tuple(chunk)),
                                         w.Rwalkgetattr)
                    got, st = list(rg.qids), list(rg.stats)
                else:
                    rw = await self._rpc(w.Twalk(src, newfid, tuple(chunk)), w.Rwalk)
                    got, st = list(rw.qids), []
                if len(got) != len(chunk):
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
                qids += got
                stats += st
                src = newfid
        except OSError:
            if src == newfid:  # an earlier chunk created it
                await self.clunk(newfid)
            else:
                self._release_fid(newfid)
            raise
        return newfid, qids, stats

    async def walk(self, fid: int, names: Sequence[bytes]) -> tuple[int, list[Qid]]:
        """A new fid for fid/names (a clone if names is empty); partial walks are ENOENT."""
        newfid, qids, _ = await self._walk_into(fid, names, False)
        return newfid, qids

    async def walk_getattr(self, fid: int,
                           names: Sequence[bytes]) -> tuple[int, list[Qid], list[Stat]]:
        """walk, plus the attributes of every component (one round trip with extensions)."""
        if self.extensions:
            return await self._walk_into(fid, names, True)
        newfid, qids = await self.walk(fid, names)
        stats: list[Stat | None] = [None] * len(names)

        async def one(i: int) -> None:
            if i == len(names) - 1:
                stats[i] = await self.getattr(newfid)
                return
            tmp, _ = await self.walk(fid, names[:i + 1])
            try:
                stats[i] = await self.getattr(tmp)
            finally:
                await self.clunk(tmp)

        try:
            async with trio.open_nursery() as nursery:
                for i in range(len(names)):
                    nursery.start_soon(one, i)
        except BaseException:
            await self.clunk(newfid)
            raise
        return newfid, qids, [s for s in stats if s is not None]

    async def clunk(self, fid: int) -> None:
        """Forget `fid` (closes what the server has open for it); always frees it."""
        try:
            await self._rpc(w.Tclunk(fid), w.Rclunk)
        finally:
            self._release_fid(fid)

    # -- attributes -----------------------------------------------------------

    async def getattr(self, fid: int) -> Stat:
        r = await self._rpc(w.Tgetattr(fid, w.GETATTR_ALL), w.Rgetattr)
        return Stat(r.qid, r.mode, r.uid, r.gid, r.nlink, r.rdev, r.size, r.blksize,
                    r.blocks, r.atime_sec * 10**9 + r.atime_nsec,
                    r.mtime_sec * 10**9 + r.mtime_nsec, r.ctime_sec * 10**9 + r.ctime_nsec)

    async def getattr_batch(self, fids: Sequence[int]) -> list[Stat | int]:
        """Attributes of every fid, or its errno; one round trip per msize with extensions."""
        out: list[Stat | int] = [0] * len(fids)
        if self.extensions:
            per = max(1, (self.msize - w.READ_OVERHEAD) // _ATTR_SIZE)
            for start in range(0, len(fids), per):
                chunk = tuple(fids[start:start + per])
                r = await self._rpc(w.Tgetattrbatch(chunk), w.Rgetattrbatch)
                if len(r.results) != len(chunk):
                    raise OSError(errno.EPROTO, "batch reply of the wrong length")
                for i, res in enumerate(r.results):
                    out[start + i] = res.stat if res.stat is not None else res.error
            return out

        async def one(i: int) -> None:
            try:
                out[i] = await self.getattr(fids[i])
            except OSError as exc:
                if self._dead:
                    raise
                out[i] = exc.errno or errno.EIO

        async with trio.open_nursery() as nursery:
            for i in range(len(fids)):
                nursery.start_soon(one, i)
        return out

    async def setattr(self, fid: int, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None) -> None:
        valid = 0
        if mode is not None:
            valid |= w.SETATTR_MODE
        if uid is not None:
            valid |= w.SETATTR_UID
        if gid is not None:
            valid |= w.SETATTR_GID
        if size is not None:
            valid |= w.SETATTR_SIZE
        if atime_ns is not None:
            valid |= w.SETATTR_ATIME | w.SETATTR_ATIME_SET
        if mtime_ns is not None:
            valid |= w.SETATTR_MTIME | w.SETATTR_MTIME_SET
        asec, ansec = divmod(atime_ns or 0, 10**9)
        msec, mnsec = divmod(mtime_ns or 0, 10**9)
        await self._rpc(w.Tsetattr(fid, valid, mode or 0, uid or 0, gid or 0, size or 0,
                                   asec, ansec, msec, mnsec), w.Rsetattr)

    async def statfs(self, fid: int) -> StatFs9:
        r = await self._rpc(w.Tstatfs(fid), w.Rstatfs)
        return StatFs9(r.type, r.bsize, r.blocks, r.bfree, r.bavail, r.files, r.ffree,
                       r.fsid, r.namelen)

    # -- open, read, write ----------------------------------------------------

    async def lopen(self, fid: int, flags: int) -> tuple[Qid, int, int | None]:
        """Open `fid`; returns (qid, iounit, donated fd or None). The caller owns the fd."""
        if self.extensions:
            r, fd = await self._rpc_fd(w.Tlopenfd(fid, flags), w.Rlopenfd)
            return r.qid, r.iounit, fd
        r2 = await self._rpc(w.Tlopen(fid, flags), w.Rlopen)
        return r2.qid, r2.iounit, None

    async def openat(self, fid: int, names: Sequence[bytes], flags: int) -> tuple[Qid, int]:
        """Open the regular file at `names` from `fid` and return (qid, donated fd),
        in one round trip and without a fid. EOPNOTSUPP without extensions or
        fd passing (then walk and lopen)."""
        if not self.extensions:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        r, fd = await self._rpc_fd(w.Topenat(fid, tuple(names), flags), w.Ropenat)
        if fd is None:
            raise OSError(errno.EPROTO, "Ropenat came without its fd")
        return r.qid, fd

    async def openat_batch(self, fid: int,
                           names: Sequence[bytes]) -> list[tuple[Qid, int] | int]:
        """Open each regular file fid/name read-only, in one round trip and
        without a fid (Topenatbatch, at most `wire.MAX_OPEN_BATCH` names): per
        name, (qid, donated fd) or the errno it failed with. The caller owns the
        fds. EOPNOTSUPP without extensions, fd passing, or Topenatbatch."""
        if not self.extensions:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        r, _, fds = await self._rpc_fds(w.Topenatbatch(fid, tuple(names)), w.Ropenatbatch)
        if len(r.errnos) != len(names) or r.errnos.count(0) != len(fds):
            for fd in fds:
                os.close(fd)
            raise OSError(errno.EPROTO, "Ropenatbatch does not match its request")
        out: list[tuple[Qid, int] | int] = []
        opened = iter(zip(r.qids, fds, strict=True))
        for code in r.errnos:
            out.append(next(opened) if code == 0 else code)
        return out

    async def lcreate(self, fid: int, name: bytes, flags: int, mode: int,
                      gid: int) -> tuple[Qid, int, int | None]:
        """Create `name` in directory `fid`; `fid` then refers to the new open file."""
        if self.extensions:
            r, fd = await self._rpc_fd(w.Tlcreatefd(fid, name, flags, mode, gid),
                                       w.Rlcreatefd)
            return r.qid, r.iounit, fd
        r2 = await self._rpc(w.Tlcreate(fid, name, flags, mode, gid), w.Rlcreate)
        return r2.qid, r2.iounit, None

    async def read(self, fid: int, offset: int, count: int) -> bytes:
        """One Tread; `count` is clamped to what fits in msize."""
        count = max(0, min(count, self.msize - w.IOHDRSZ))
        return (await self._rpc(w.Tread(fid, offset, count), w.Rread)).data

    async def write(self, fid: int, offset: int, data: bytes) -> int:
        """Write all of `data` in msize-sized Twrites; returns bytes written (short on a
        short server write)."""
        step = self.msize - w.IOHDRSZ
        done = 0
        view = memoryview(data)
        while True:
            chunk = bytes(view[done:done + step])
            r = await self._rpc(w.Twrite(fid, offset + done, chunk), w.Rwrite)
            done += r.count
            if r.count < len(chunk) or done >= len(data):
                return done

    async def fsync(self, fid: int) -> None:
        await self._rpc(w.Tfsync(fid, 0), w.Rfsync)

    # -- directories ----------------------------------------------------------

    async def readdir_all(self, fid: int) -> list[DirentAttr]:
        """Every entry of the open directory `fid` except "." and ".."."""
        out: list[DirentAttr] = []
        offset = 0
        count = self.msize - w.IOHDRSZ
        while True:
            if self.extensions:
                ra = await self._rpc(w.Treaddirattr(fid, offset, count), w.Rreaddirattr)
                ents = [DirentAttr(d.name, d.qid, d.offset, d.type, d.stat)
                        for d in w.unpack_dirent_stats(ra.data)]
            else:
                rd = await self._rpc(w.Treaddir(fid, offset, count), w.Rreaddir)
                ents = [DirentAttr(d.name, d.qid, d.offset, d.type, None)
                        for d in w.unpack_dirents(rd.data)]
            if not ents:
                return out
            out += [e for e in ents if e.name not in (b".", b"..")]
            offset = ents[-1].offset

    async def listdir(self, fid: int, names: Sequence[bytes] = ()) -> list[DirentAttr] | None:
        """Every entry, with attributes, of the directory at fid/names, in one round
        trip and without a fid (Tlistdir); None when the listing does not fit in
        one reply (then walk, lopen and readdir_all). EOPNOTSUPP without extensions
        or from a server that lacks it."""
        if not self.extensions:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        r = await self._rpc(w.Tlistdir(fid, tuple(names), self.msize - w.IOHDRSZ), w.Rlistdir)
        if not r.complete:
            return None
        return [DirentAttr(d.name, d.qid, d.offset, d.type, d.stat)
                for d in w.unpack_dirent_stats(r.data)]

    async def mkdir(self, dfid: int, name: bytes, mode: int, gid: int) -> Qid:
        return (await self._rpc(w.Tmkdir(dfid, name, mode, gid), w.Rmkdir)).qid

    async def symlink(self, dfid: int, name: bytes, target: bytes, gid: int) -> Qid:
        return (await self._rpc(w.Tsymlink(dfid, name, target, gid), w.Rsymlink)).qid

    async def mknod(self, dfid: int, name: bytes, mode: int, major: int, minor: int,
                    gid: int) -> Qid:
        return (await self._rpc(w.Tmknod(dfid, name, mode, major, minor, gid), w.Rmknod)).qid

    async def link(self, dfid: int, fid: int, name: bytes) -> None:
        await self._rpc(w.Tlink(dfid, fid, name), w.Rlink)

    async def readlink(self, fid: int) -> bytes:
        return (await self._rpc(w.Treadlink(fid), w.Rreadlink)).target

    async def renameat(self, olddfid: int, oldname: bytes, newdfid: int,
                       newname: bytes) -> None:
        """Trenameat; servers without it (diod 1.0) get walk + legacy Trename."""
        try:
            await self._rpc(w.Trenameat(olddfid, oldname, newdfid, newname), w.Rrenameat)
            return
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
        fid, _ = await self.walk(olddfid, [oldname])
        try:
            await self._rpc(w.Trename(fid, newdfid, newname), w.Rrename)
        finally:
            await self.clunk(fid)

    async def unlinkat(self, dfid: int, name: bytes, flags: int = 0) -> None:
        """Tunlinkat (flags AT_REMOVEDIR); servers without it get walk + legacy Tremove."""
        try:
            await self._rpc(w.Tunlinkat(dfid, name, flags), w.Runlinkat)
            return
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
        fid, _ = await self.walk(dfid, [name])
        try:
            await self._rpc(w.Tremove(fid), w.Rremove)
        finally:
            self._release_fid(fid)  # Tremove clunks the fid whatever happens

    # -- xattrs ---------------------------------------------------------------

    async def _xattr_read(self, fid: int, name: bytes) -> bytes:
        newfid = self._alloc_fid()
        try:
            r = await self._rpc(w.Txattrwalk(fid, newfid, name), w.Rxattrwalk)
        except OSError:
            self._release_fid(newfid)
            raise
        try:
            chunks: list[bytes] = []
            got = 0
            while got < r.size:
                data = await self.read(newfid, got, r.size - got)
                if not data:
                    break
                chunks.append(data)
                got += len(data)
            return b"".join(chunks)
        finally:
            await self.clunk(newfid)

    async def xattr_at(self, fid: int, names: Sequence[bytes], name: bytes) -> bytes:
        """The xattr `name` (b"": the NUL-separated name list) of the file at
        fid/names, in one round trip and without a fid (Txattrat). EOPNOTSUPP
        without extensions or from a server that lacks it; ERANGE when the
        value does not fit in one reply."""
        if not self.extensions:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return (await self._rpc(w.Txattrat(fid, tuple(names), name), w.Rxattrat)).data

    async def getxattr(self, fid: int, name: bytes) -> bytes:
        """The value of xattr `name` (ENODATA if absent)."""
        if not name:
            raise OSError(errno.EINVAL, "empty xattr name")
        return await self._xattr_read(fid, name)

    async def listxattr(self, fid: int) -> list[bytes]:
        return [n for n in (await self._xattr_read(fid, b"")).split(b"\0") if n]

    async def _xattr_write(self, fid: int, name: bytes, value: bytes, flags: int) -> None:
        newfid, _ = await self.walk(fid, [])
        try:
            await self._rpc(w.Txattrcreate(newfid, name, len(value), flags), w.Rxattrcreate)
            if value:
                await self.write(newfid, 0, value)
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    await self.clunk(newfid)
                except OSError:
                    pass
            raise
        await self.clunk(newfid)  # the server applies the change here

    async def setxattr(self, fid: int, name: bytes, value: bytes, flags: int = 0) -> None:
        """Set xattr `name`. An empty value removes it (Linux v9fs/QEMU convention)."""
        await self._xattr_write(fid, name, value, flags)

    async def removexattr(self, fid: int, name: bytes) -> None:
        """Txattrcreate with attr_size 0 and XATTR_REPLACE: the server removes `name`."""
        await self._xattr_write(fid, name, b"", 2)


@asynccontextmanager
async def open_client(sock: socket.socket, *, msize: int = 1 << 20,
                      extensions: bool = True) -> AsyncIterator[Client]:
    """A Client over `sock` (connected stream socket, unix or TCP), which it owns.

    Asks for 9P2000.L.sandboxfs.1 when `extensions`, and falls back to plain
    9P2000.L if the server answers otherwise or with an error. Runs the reader
    task until the block exits, then closes the socket.
    """
    transport = Transport.from_stdlib(sock)
    try:
        async with trio.open_nursery() as nursery:
            client = Client(transport, nursery)
            try:
                await client._negotiate(min(msize, w.MAX_MSIZE), extensions)
                nursery.start_soon(client._receive_loop)
                yield client
            finally:
                client._fail_all()
                nursery.cancel_scope.cancel()
    finally:
        transport.close()
