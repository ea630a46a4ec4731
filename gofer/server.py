"""The 9P2000.L server: one `Connection` per client, a fid table, dispatch by type.

Concurrency: one reader task per connection decodes frames in order. Host
metadata calls are fast syscalls, so their handlers run inline in the reader
(no task spawn: lowest latency, and they are atomic with respect to each
other). Handlers that may block for long -- reads and writes above
`THREAD_IO_THRESHOLD`, fsync, Tflush -- run as tasks in the connection's
nursery, so many tags are in flight at once and a slow one does not hold the
others. Replies go out under the transport's send lock, whole frames only.

Errors: an OSError from `host` becomes Rlerror(errno); a malformed message
body becomes Rlerror(EPROTO) and an unknown type Rlerror(EOPNOTSUPP); a broken
framing, or a tag reused while in flight, closes the connection. Any other
exception is logged and answered with EIO. Nothing that one connection does
stops the server from serving the others.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from gofer import wire as w
from gofer.host import Export, Node, qid_of, qid_of_dtype, stat_of
from gofer.transport import Transport, accept

log = logging.getLogger(__name__)

#: reads and writes at least this big go through a worker thread (measured:
#: below it the thread hop costs more than the syscall; docs/protocol.md)
THREAD_IO_THRESHOLD = 128 * 1024
#: 9P's MAXWELEM: a walk longer than this is refused with EINVAL
MAX_WALK = 16
XATTR_SIZE_MAX = 65536
_PRE_VERSION_MAX = 8192
_NO_UID = 0xFFFFFFFF


class _Close(Exception):
    """The connection must be closed (the peer broke the protocol beyond repair)."""


@dataclass
class _XattrWrite:
    name: bytes
    size: int
    flags: int
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Fid:
    """What one client fid refers to, and what it is opened as."""

    node: Node
    uid: int
    fd: int | None = None
    is_dir: bool = False
    dir_snapshot: list[tuple[bytes, w.Qid, int]] | None = None
    xattr_read: bytes | None = None
    xattr_write: _XattrWrite | None = None


@dataclass(frozen=True, slots=True)
class _WithFd:
    """A reply that donates `fd` (a tuple: several, Ropenatbatch): still owned
    by its fid (not closed), unless `close` (Ropenat: no fid holds it; closed
    once sent)."""

    msg: w.Message
    fd: int | tuple[int, ...]
    close: bool = False


Reply = w.Message | _WithFd


def find_export(exports: list[Export], aname: bytes) -> Export:
    """The export an attach name selects: "" or "/" for a lone export, else its path."""
    if aname in (b"", b"/") and len(exports) == 1:
        return exports[0]
    for ex in exports:
        names = {os.fsencode(ex.path), os.fsencode(os.path.realpath(ex.path))}
        if aname in names or aname.rstrip(b"/") in {n.rstrip(b"/") for n in names}:
            return ex
    raise OSError(errno.ENOENT, f"no export named {aname!r}")


class Connection:
    """Serves one client: version, fids and requests of one 9P session."""

    def __init__(self, transport: Transport, exports: list[Export], *,
                 max_msize: int = w.MAX_MSIZE) -> None:
        self.transport = transport
        self.exports = exports
        self.max_msize = max_msize
        self.msize = 0
        self.extensions = False
        self.fids: dict[int, Fid] = {}
        self._inflight: dict[int, tuple[trio.CancelScope, trio.Event]] = {}
        self._buffer = w.FrameBuffer(_PRE_VERSION_MAX)
        self._nursery: trio.Nursery | None = None
        self._sync: dict[type[w.Message], Callable[[Any], Reply]] = {
            w.Tattach: self._attach, w.Tauth: self._auth, w.Twalk: self._walk,
            w.Twalkgetattr: self._walkgetattr, w.Tgetattr: self._getattr,
            w.Tgetattrbatch: self._getattrbatch, w.Tsetattr: self._setattr,
            w.Tlopen: self._lopen, w.Tlopenfd: self._lopen, w.Topenat: self._openat,
            w.Topenatbatch: self._openatbatch,
            w.Tlcreate: self._lcreate,
            w.Tlcreatefd: self._lcreate, w.Treaddir: self._readdir,
            w.Treaddirattr: self._readdir, w.Tlistdir: self._listdir, w.Tmkdir: self._mkdir,
            w.Tsymlink: self._symlink,
            w.Tmknod: self._mknod, w.Tlink: self._link, w.Treadlink: self._readlink,
            w.Trenameat: self._renameat, w.Trename: self._rename,
            w.Tunlinkat: self._unlinkat, w.Tremove: self._remove, w.Tstatfs: self._statfs,
            w.Tclunk: self._clunk, w.Txattrwalk: self._xattrwalk,
            w.Txattrcreate: self._xattrcreate, w.Txattrat: self._xattrat,
        }
        self._async: dict[type[w.Message], Callable[[Any], Awaitable[Reply]]] = {
            w.Tread: self._read, w.Twrite: self._write, w.Tfsync: self._fsync,
            w.Tflush: self._flush,
        }

    # -- the receive loop -------------------------------------------------------

    async def serve(self) -> None:
        """Serve until the peer closes, breaks the framing, or we are cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._receive_loop()
                except (_Close, w.FramingError) as exc:
                    log.warning("closing connection: %s", exc)
                except OSError as exc:
                    log.info("connection lost: %s", exc)
                nursery.cancel_scope.cancel()
        finally:
            self._reset()
            self.transport.close()

    async def _receive_loop(self) -> None:
        while True:
            data, fds = await self.transport.receive()
            for fd in fds:  # clients have no business sending us fds
                os.close(fd)
            if not data:
                return
            self._buffer.feed(data)
            for type_, tag, body in self._buffer.frames():
                await self._dispatch(type_, tag, body)

    async def _dispatch(self, type_: int, tag: int, body: bytes) -> None:
        try:
            msg = w.decode(type_, tag, body)
        except w.ProtocolError as exc:
            log.info("bad message (type %d, tag %d): %s", type_, tag, exc)
            await self._send(tag, w.Rlerror(exc.errno))
            return
        if isinstance(msg, w.Tversion):
            await self._version(tag, msg)
            return
        if not self.msize:
            await self._send(tag, w.Rlerror(errno.EPROTO))
            return
        if tag in self._inflight:
            raise _Close(f"tag {tag} reused while in flight")
        if msg.TYPE in w.EXTENSION_TYPES and not self.extensions:
            await self._send(tag, w.Rlerror(errno.EOPNOTSUPP))
            return
        handler = self._sync.get(type(msg))
        if handler is not None:
            try:
                reply = handler(msg)
            except OSError as exc:
                reply = w.Rlerror(exc.errno or errno.EIO)
            except Exception:
                log.exception("handler for %s failed", type(msg).__name__)
                reply = w.Rlerror(errno.EIO)
            await self._send_reply(tag, reply)
            return
        ahandler = self._async.get(type(msg))
        if ahandler is None:  # an R-message, or a T-message we do not implement
            await self._send(tag, w.Rlerror(errno.EOPNOTSUPP))
            return
        if isinstance(msg, w.Tread | w.Twrite) and self._small_io(msg):
            reply = await self._call(ahandler, msg)
            await self._send_reply(tag, reply)
            return
        scope = trio.CancelScope()
        done = trio.Event()
        self._inflight[tag] = (scope, done)
        assert self._nursery is not None
        self._nursery.start_soon(self._run_async, tag, ahandler, msg, scope, done)

    @staticmethod
    def _small_io(msg: w.Tread | w.Twrite) -> bool:
        n = msg.count if isinstance(msg, w.Tread) else len(msg.data)
        return n < THREAD_IO_THRESHOLD

    @staticmethod
    async def _call(handler: Callable[[Any], Awaitable[Reply]], msg: w.Message) -> Reply:
        try:
            return await handler(msg)
        except OSError as exc:
            return w.Rlerror(exc.errno or errno.EIO)
        except Exception:
            log.exception("handler for %s failed", type(msg).__name__)
            return w.Rlerror(errno.EIO)

    async def _run_async(self, tag: int, handler: Callable[[Any], Awaitable[Reply]],
                         msg: w.Message, scope: trio.CancelScope, done: trio.Event) -> None:
        try:
            reply: Reply | None = None
            with scope:
                reply = await self._call(handler, msg)
            if reply is not None and not scope.cancel_called:
                await self._send_reply(tag, reply)
        except OSError as exc:
            log.info("reply for tag %d lost: %s", tag, exc)
        finally:
            # No checkpoint between the send and here: the client cannot have
            # reused the tag yet as far as our reader is concerned.
            del self._inflight[tag]
            done.set()

    async def _send_reply(self, tag: int, reply: Reply) -> None:
        if isinstance(reply, _WithFd):
            try:
                await self._send(tag, reply.msg, reply.fd)
            finally:
                if reply.close:
                    for fd in (reply.fd,) if isinstance(reply.fd, int) else reply.fd:
                        os.close(fd)
        else:
            await self._send(tag, reply)

    async def _send(self, tag: int, msg: w.Message,
                    fd: int | tuple[int, ...] | None = None) -> None:
        frame = w.encode(tag, msg)
        if self.msize and len(frame) > self.msize:
            frame = w.encode(tag, w.Rlerror(errno.EMSGSIZE))
            fd = None
        await self.transport.send(frame, fd)

    # -- session ----------------------------------------------------------------

    async def _version(self, tag: int, msg: w.Tversion) -> None:
        """Negotiate msize and dialect; a new Tversion aborts the whole session."""
        if msg.msize < w.MIN_MSIZE or msg.msize > w.MAX_MSIZE:
            await self._send(tag, w.Rlerror(errno.EINVAL))
            return
        for scope, _ in list(self._inflight.values()):
            scope.cancel()
        for _, done in list(self._inflight.values()):
            await done.wait()
        self._reset()
        msize = min(msg.msize, self.max_msize)
        if msg.version == w.VERSION_EXT:
            version = w.VERSION_EXT
        elif msg.version.startswith(w.VERSION_L):
            version = w.VERSION_L
        else:
            await self._send(tag, w.Rversion(msize, w.VERSION_UNKNOWN))
            return
        self.msize = msize
        self.extensions = version == w.VERSION_EXT
        self._buffer.max_size = msize
        await self._send(tag, w.Rversion(msize, version))

    def _reset(self) -> None:
        for fid in list(self.fids):
            self._drop(fid)
        self.msize = 0
        self.extensions = False

    def _drop(self, fid: int) -> Fid:
        f = self.fids.pop(fid)
        if f.fd is not None:
            os.close(f.fd)
            f.fd = None
        f.node.release()
        return f

    def _fid(self, fid: int) -> Fid:
        try:
            return self.fids[fid]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown fid {fid}") from None

    def _new_fid(self, fid: int) -> None:
        if fid in self.fids or fid == w.NOFID:
            raise OSError(errno.EBADF, f"fid {fid} in use")

    @property
    def iounit(self) -> int:
        return self.msize - w.WRITE_OVERHEAD

    # -- handlers: attach and walk ------------------------------------------------

    def _auth(self, msg: w.Tauth) -> Reply:
        # ENOENT, as diod answers when no authentication is required: its
        # clients (diodls, diodcat, mount.diod) then attach with afid NOFID.
        raise OSError(errno.ENOENT, "no authentication: attach with afid NOFID")

    def _attach(self, msg: w.Tattach) -> Reply:
        self._new_fid(msg.fid)
        if msg.afid != w.NOFID:
            raise OSError(errno.EINVAL, "no authentication")
        export = find_export(self.exports, msg.aname)
        node = export.root()
        self.fids[msg.fid] = Fid(node, 0 if msg.n_uname == _NO_UID else msg.n_uname)
        return w.Rattach(qid_of(node.lstat()))

    def _walk_nodes(self, f: Fid, names: tuple[bytes, ...],
                    partial: bool) -> tuple[Node, list[os.stat_result]]:
        """Walk `names` from `f`; returns the final node (owned) and each component's stat.

        With `partial`, stops at the first failing component after the first
        (9P's partial Rwalk) instead of raising; the node is then not the end.
        """
        if len(names) > MAX_WALK:
            raise OSError(errno.EINVAL, f"walk of {len(names)} names (max {MAX_WALK})")
        cur = f.node.incref()
        stats: list[os.stat_result] = []
        try:
            for i, name in enumerate(names):
                try:
                    child = cur.export.walk(cur, name)
                except OSError:
                    if partial and i > 0:
                        break
                    raise
                cur.release()
                cur = child
                stats.append(cur.lstat())
        except BaseException:
            cur.release()
            raise
        return cur, stats

    def _install(self, fid: int, newfid: int, node: Node) -> None:
        old = self.fids[fid]
        if newfid == fid:
            old.node.release()
            old.node = node
        else:
            self.fids[newfid] = Fid(node, old.uid)

    def _walk(self, msg: w.Twalk) -> Reply:
        f = self._fid(msg.fid)
        if msg.newfid != msg.fid:
            self._new_fid(msg.newfid)
        node, stats = self._walk_nodes(f, msg.names, partial=True)
        if len(stats) < len(msg.names):
            node.release()
        else:
            self._install(msg.fid, msg.newfid, node)
        return w.Rwalk(tuple(qid_of(s) for s in stats))

    def _walkgetattr(self, msg: w.Twalkgetattr) -> Reply:
        f = self._fid(msg.fid)
        if msg.newfid != msg.fid:
            self._new_fid(msg.newfid)
        node, stats = self._walk_nodes(f, msg.names, partial=False)
        self._install(msg.fid, msg.newfid, node)
        attrs = tuple(stat_of(s) for s in stats)
        return w.Rwalkgetattr(tuple(a.qid for a in attrs), attrs)

    # -- handlers: attributes -----------------------------------------------------

    def _getattr(self, msg: w.Tgetattr) -> Reply:
        st = self._fid(msg.fid).node.lstat()
        return w.Rgetattr(
            w.GETATTR_BASIC, qid_of(st), st.st_mode, st.st_uid, st.st_gid, st.st_nlink,
            st.st_rdev, st.st_size, st.st_blksize, st.st_blocks,
            *divmod(st.st_atime_ns, 10**9), *divmod(st.st_mtime_ns, 10**9),
            *divmod(st.st_ctime_ns, 10**9), 0, 0, 0, 0)

    def _getattrbatch(self, msg: w.Tgetattrbatch) -> Reply:
        results = []
        for fid in msg.fids:
            try:
                results.append(w.StatOrErrno(stat_of(self._fid(fid).node.lstat())))
            except OSError as exc:
                results.append(w.StatOrErrno(None, exc.errno or errno.EIO))
        return w.Rgetattrbatch(tuple(results))

    def _setattr(self, msg: w.Tsetattr) -> Reply:
        f = self._fid(msg.fid)
        v = msg.valid
        f.node.export.setattr(
            f.node,
            mode=msg.mode if v & w.SETATTR_MODE else None,
            uid=msg.uid if v & w.SETATTR_UID else None,
            gid=msg.gid if v & w.SETATTR_GID else None,
            size=msg.size if v & w.SETATTR_SIZE else None,
            atime_ns=msg.atime_sec * 10**9 + msg.atime_nsec
            if v & w.SETATTR_ATIME and v & w.SETATTR_ATIME_SET else None,
            mtime_ns=msg.mtime_sec * 10**9 + msg.mtime_nsec
            if v & w.SETATTR_MTIME and v & w.SETATTR_MTIME_SET else None,
            atime_now=bool(v & w.SETATTR_ATIME and not v & w.SETATTR_ATIME_SET),
            mtime_now=bool(v & w.SETATTR_MTIME and not v & w.SETATTR_MTIME_SET))
        return w.Rsetattr()

    def _statfs(self, msg: w.Tstatfs) -> Reply:
        f = self._fid(msg.fid)
        s = f.node.export.statfs(f.node)
        return w.Rstatfs(s.type, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree,
                         s.fsid, s.namelen)

    def _readlink(self, msg: w.Treadlink) -> Reply:
        f = self._fid(msg.fid)
        return w.Rreadlink(f.node.export.readlink(f.node))

    # -- handlers: open, read, write ----------------------------------------------

    def _opened_reply(self, msg: w.Message, f: Fid, st: os.stat_result) -> Reply:
        qid = qid_of(st)
        if isinstance(msg, w.Tlopen):
            return w.Rlopen(qid, self.iounit)
        if isinstance(msg, w.Tlcreate):
            return w.Rlcreate(qid, self.iounit)
        donate = self.transport.can_pass_fds and stat.S_ISREG(st.st_mode)
        cls = w.Rlopenfd if isinstance(msg, w.Tlopenfd) else w.Rlcreatefd
        reply = cls(qid, self.iounit, int(donate))
        assert f.fd is not None
        return _WithFd(reply, f.fd) if donate else reply

    def _lopen(self, msg: w.Tlopen | w.Tlopenfd) -> Reply:
        f = self._fid(msg.fid)
        if f.fd is not None or f.xattr_read is not None or f.xattr_write is not None:
            raise OSError(errno.EBADF, "fid already open")
        fd = f.node.export.open(f.node, msg.flags)
        st = os.fstat(fd)
        f.fd, f.is_dir = fd, stat.S_ISDIR(st.st_mode)
        return self._opened_reply(msg, f, st)

    def _openat(self, msg: w.Topenat) -> Reply:
        if not self.transport.can_pass_fds:
            raise OSError(errno.EOPNOTSUPP, "no fd passing on this transport")
        fd, st = self._open_regular_at(self._fid(msg.fid), msg.names, msg.flags)
        return _WithFd(w.Ropenat(qid_of(st)), fd, close=True)

    def _open_regular_at(self, f: Fid, names: tuple[bytes, ...],
                         flags: int) -> tuple[int, os.stat_result]:
        """Walk `names` from `f` and open the regular file there (Topenat and
        Topenatbatch donate only regular files: EINVAL for anything else)."""
        node, _ = self._walk_nodes(f, names, partial=False)
        try:
            fd = node.export.open(node, flags)
        finally:
            node.release()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "only regular files are opened at a path")
        return fd, st

    def _openatbatch(self, msg: w.Topenatbatch) -> Reply:
        if not self.transport.can_pass_fds:
            raise OSError(errno.EOPNOTSUPP, "no fd passing on this transport")
        if len(msg.names) > w.MAX_OPEN_BATCH:
            raise OSError(errno.EINVAL, f"more than {w.MAX_OPEN_BATCH} names")
        f = self._fid(msg.fid)
        errnos: list[int] = []
        qids: list[w.Qid] = []
        fds: list[int] = []
        try:
            for name in msg.names:
                try:
                    fd, st = self._open_regular_at(f, (name,), os.O_RDONLY)
                except OSError as exc:
                    errnos.append(exc.errno or errno.EIO)
                    continue
                errnos.append(0)
                qids.append(qid_of(st))
                fds.append(fd)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        reply = w.Ropenatbatch(tuple(errnos), tuple(qids))
        return _WithFd(reply, tuple(fds), close=True) if fds else reply

    def _lcreate(self, msg: w.Tlcreate | w.Tlcreatefd) -> Reply:
        f = self._fid(msg.fid)
        if f.fd is not None:
            raise OSError(errno.EBADF, "fid already open")
        node, fd = f.node.export.create(f.node, msg.name, msg.flags, msg.mode, f.uid, msg.gid)
        f.node.release()
        f.node, f.fd = node, fd
        return self._opened_reply(msg, f, os.fstat(fd))

    def _io_fd(self, f: Fid) -> int:
        if f.fd is None:
            raise OSError(errno.EBADF, "fid not open")
        return f.fd

    async def _read(self, msg: w.Tread) -> Reply:
        f = self._fid(msg.fid)
        count = min(msg.count, self.msize - w.READ_OVERHEAD)
        if f.xattr_read is not None:
            return w.Rread(f.xattr_read[msg.offset:msg.offset + count])
        fd = self._io_fd(f)
        if count >= THREAD_IO_THRESHOLD:
            return w.Rread(await trio.to_thread.run_sync(os.pread, fd, count, msg.offset))
        return w.Rread(os.pread(fd, count, msg.offset))

    async def _write(self, msg: w.Twrite) -> Reply:
        f = self._fid(msg.fid)
        if f.xattr_write is not None:
            xw = f.xattr_write
            if msg.offset != len(xw.data) or len(xw.data) + len(msg.data) > xw.size:
                raise OSError(errno.EINVAL, "xattr value written out of order or too long")
            xw.data += msg.data
            return w.Rwrite(len(msg.data))
        if f.node.export.readonly:
            raise OSError(errno.EROFS, "read-only export")
        fd = self._io_fd(f)
        if len(msg.data) >= THREAD_IO_THRESHOLD:
            n = await trio.to_thread.run_sync(os.pwrite, fd, msg.data, msg.offset)
        else:
            n = os.pwrite(fd, msg.data, msg.offset)
        return w.Rwrite(n)

    async def _fsync(self, msg: w.Tfsync) -> Reply:
        fd = self._io_fd(self._fid(msg.fid))
        await trio.to_thread.run_sync(os.fdatasync if msg.datasync else os.fsync, fd)
        return w.Rfsync()

    async def _flush(self, msg: w.Tflush) -> Reply:
        entry = self._inflight.get(msg.oldtag)
        if entry is not None:
            scope, done = entry
            scope.cancel()
            await done.wait()
        return w.Rflush()

    # -- handlers: directories ----------------------------------------------------

    def _snapshot(self, f: Fid) -> list[tuple[bytes, w.Qid, int]]:
        """The directory's entries, without "." and "..": the served namespace has no
        dot entries (walks refuse them), and a ".." of the root would describe a
        directory outside the export."""
        assert f.fd is not None
        return [(e.name, qid_of_dtype(e.dtype, e.ino), e.dtype)
                for e in f.node.export.list_dir(f.fd)]

    def _readdir(self, msg: w.Treaddir | w.Treaddirattr) -> Reply:
        f = self._fid(msg.fid)
        if f.fd is None or not f.is_dir:
            raise OSError(errno.ENOTDIR if f.fd is not None else errno.EBADF,
                          "fid is not an open directory")
        if msg.offset == 0 or f.dir_snapshot is None:
            f.dir_snapshot = self._snapshot(f)
        limit = min(msg.count, self.msize - w.READ_OVERHEAD)
        parts: list[bytes] = []
        used = 0
        with_attrs = isinstance(msg, w.Treaddirattr)
        for index in range(msg.offset, len(f.dir_snapshot)):
            name, qid, dtype = f.dir_snapshot[index]
            if with_attrs:
                try:
                    st = f.node.export.stat_entry(f.fd, name)
                except FileNotFoundError:
                    continue
                a = stat_of(st)
                blob = w.pack_dirent_stat(w.DirentStat(a.qid, index + 1, dtype, name, a))
            else:
                blob = w.pack_dirent(w.Dirent(qid, index + 1, dtype, name))
            if used + len(blob) > limit:
                if not parts:
                    raise OSError(errno.EINVAL, "count too small for one entry")
                break
            parts.append(blob)
            used += len(blob)
        data = b"".join(parts)
        return w.Rreaddirattr(data) if with_attrs else w.Rreaddir(data)

    def _listdir(self, msg: w.Tlistdir) -> Reply:
        node, _ = self._walk_nodes(self._fid(msg.fid), msg.names, partial=False)
        try:
            fd = node.export.open(node, os.O_RDONLY | os.O_DIRECTORY)
        finally:
            node.release()
        try:
            export = node.export
            limit = min(msg.count, self.msize - w.READ_OVERHEAD - 1)
            parts: list[bytes] = []
            used = 0
            for index, e in enumerate(export.list_dir(fd)):
                try:
                    st = export.stat_entry(fd, e.name)
                except FileNotFoundError:
                    continue
                a = stat_of(st)
                blob = w.pack_dirent_stat(w.DirentStat(a.qid, index + 1, e.dtype, e.name, a))
                used += len(blob)
                if used > limit:
                    return w.Rlistdir(0, b"")
                parts.append(blob)
        finally:
            os.close(fd)
        return w.Rlistdir(1, b"".join(parts))

    def _mkdir(self, msg: w.Tmkdir) -> Reply:
        f = self._fid(msg.dfid)
        return w.Rmkdir(qid_of(f.node.export.mkdir(f.node, msg.name, msg.mode, f.uid,
                                                   msg.gid)))

    def _symlink(self, msg: w.Tsymlink) -> Reply:
        f = self._fid(msg.fid)
        return w.Rsymlink(qid_of(f.node.export.symlink(f.node, msg.name, msg.target, f.uid,
                                                       msg.gid)))

    def _mknod(self, msg: w.Tmknod) -> Reply:
        f = self._fid(msg.dfid)
        return w.Rmknod(qid_of(f.node.export.mknod(f.node, msg.name, msg.mode, msg.major,
                                                   msg.minor, f.uid, msg.gid)))

    def _link(self, msg: w.Tlink) -> Reply:
        d, f = self._fid(msg.dfid), self._fid(msg.fid)
        d.node.export.link(d.node, f.node, msg.name)
        return w.Rlink()

    def _renameat(self, msg: w.Trenameat) -> Reply:
        a, b = self._fid(msg.olddirfid), self._fid(msg.newdirfid)
        a.node.export.rename(a.node, msg.oldname, b.node, msg.newname)
        return w.Rrenameat()

    def _rename(self, msg: w.Trename) -> Reply:
        f, d = self._fid(msg.fid), self._fid(msg.dfid)
        f.node.export.rename_node(f.node, d.node, msg.name)
        return w.Rrename()

    def _unlinkat(self, msg: w.Tunlinkat) -> Reply:
        f = self._fid(msg.dirfid)
        f.node.export.unlink(f.node, msg.name, msg.flags)
        return w.Runlinkat()

    def _remove(self, msg: w.Tremove) -> Reply:
        f = self._fid(msg.fid)
        try:
            f.node.export.remove(f.node)
        finally:
            self._drop(msg.fid)  # Tremove clunks the fid whatever happens
        return w.Rremove()

    def _clunk(self, msg: w.Tclunk) -> Reply:
        f = self._fid(msg.fid)
        try:
            xw = f.xattr_write
            if xw is not None:
                if len(xw.data) != xw.size:
                    raise OSError(errno.EINVAL, "xattr value shorter than announced")
                if xw.size == 0:  # as QEMU and Linux v9fs: an empty create removes
                    f.node.export.removexattr(f.node, xw.name)
                else:
                    f.node.export.setxattr(f.node, xw.name, bytes(xw.data), xw.flags)
        finally:
            self._drop(msg.fid)  # the fid is gone even if the xattr change failed
        return w.Rclunk()

    # -- handlers: xattrs -----------------------------------------------------------

    def _xattrat(self, msg: w.Txattrat) -> Reply:
        node, _ = self._walk_nodes(self._fid(msg.fid), msg.names, partial=False)
        try:
            ex = node.export
            if msg.name:
                data = ex.getxattr(node, msg.name)
            else:
                data = b"".join(n + b"\0" for n in ex.listxattr(node))
        finally:
            node.release()
        if len(data) > self.msize - w.READ_OVERHEAD:
            raise OSError(errno.ERANGE, "xattr too big for one reply")
        return w.Rxattrat(data)

    def _xattrwalk(self, msg: w.Txattrwalk) -> Reply:
        f = self._fid(msg.fid)
        if msg.newfid != msg.fid:
            self._new_fid(msg.newfid)
        ex = f.node.export
        if msg.name:
            data = ex.getxattr(f.node, msg.name)
        else:
            data = b"".join(n + b"\0" for n in ex.listxattr(f.node))
        if msg.newfid == msg.fid:
            f.xattr_read = data
        else:
            self.fids[msg.newfid] = Fid(f.node.incref(), f.uid, xattr_read=data)
        return w.Rxattrwalk(len(data))

    def _xattrcreate(self, msg: w.Txattrcreate) -> Reply:
        f = self._fid(msg.fid)
        if f.node.export.readonly:
            raise OSError(errno.EROFS, "read-only export")
        if msg.attr_size > XATTR_SIZE_MAX:
            raise OSError(errno.E2BIG, "xattr value too large")
        if f.fd is not None:
            raise OSError(errno.EBADF, "fid is open")
        f.xattr_write = _XattrWrite(msg.name, msg.attr_size, msg.flags)
        return w.Rxattrcreate()


async def serve_transport(transport: Transport, exports: list[Export]) -> None:
    """Serve one connection; never lets its failure reach the caller's nursery."""
    try:
        await Connection(transport, exports).serve()
    except Exception:
        log.exception("connection failed")


async def serve_listener(listener: socket.socket, exports: list[Export]) -> None:
    """Accept connections for ever, each served in its own task."""
    async with trio.open_nursery() as nursery:
        while True:
            try:
                transport = await accept(listener)
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                await trio.sleep(0.05)
                continue
            nursery.start_soon(serve_transport, transport, exports)
