"""The 9P wire format's building blocks: constants, errors, the data types
carried in messages, the field codecs, the message base class and registry,
frame encoding and splitting, and directory entry payloads.

The messages themselves are declared in `gofer/wire.py` (9P2000.L) and
`gofer/wire_ext.py` (the sandboxfs extensions); every caller imports all of
it from `gofer.wire`. See `gofer/wire.py` for the error kinds and the checks.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

VERSION_L = b"9P2000.L"
VERSION_EXT = b"9P2000.L.sandboxfs.1"
VERSION_UNKNOWN = b"unknown"

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
HEADER_SIZE = 7  # size[4] type[1] tag[2]
#: bytes of an Rread/Rreaddir frame that are not payload: header + count[4]
READ_OVERHEAD = HEADER_SIZE + 4
#: bytes of a Twrite frame that are not payload: header + fid[4] offset[8] count[4]
WRITE_OVERHEAD = HEADER_SIZE + 4 + 8 + 4
#: what clients keep off msize for read/readdir counts (Linux's P9_IOHDRSZ); diod
#: refuses counts above msize - IOHDRSZ
IOHDRSZ = 24
#: smallest msize we accept: room for an Rgetattr and a path component or two
MIN_MSIZE = 4096
#: largest msize we accept; bigger ones are refused, not clamped (docs/protocol.md)
MAX_MSIZE = 1 << 20

# qid types
QTDIR = 0x80
QTSYMLINK = 0x02
QTFILE = 0x00

# Tgetattr request mask / Rgetattr valid bits
GETATTR_BASIC = 0x000007FF
GETATTR_ALL = 0x00003FFF

# Tsetattr valid bits
SETATTR_MODE = 0x001
SETATTR_UID = 0x002
SETATTR_GID = 0x004
SETATTR_SIZE = 0x008
SETATTR_ATIME = 0x010
SETATTR_MTIME = 0x020
SETATTR_CTIME = 0x040
SETATTR_ATIME_SET = 0x080
SETATTR_MTIME_SET = 0x100


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid 9P2000.L frame or message.

    `errno` is what to answer in Rlerror (EPROTO for a malformed body,
    EOPNOTSUPP for an unknown message type); `tag` is the frame's tag when the
    header was readable, so the receiver can answer that request and go on.
    """

    def __init__(self, message: str, *, tag: int | None = None,
                 error: int = errno.EPROTO) -> None:
        super().__init__(message)
        self.tag = tag
        self.errno = error


class FramingError(ProtocolError):
    """The frame boundaries themselves are lost: the only safe reply is to close."""


class UsageError(ValueError):
    """Our own caller asked to encode something that 9P cannot carry."""


@dataclass(frozen=True, slots=True)
class Qid:
    """The server's identity of a file: type bits, version, and path (= st_ino)."""

    type: int
    version: int
    path: int


@dataclass(frozen=True, slots=True)
class Stat:
    """Attributes of a file: Rgetattr's, or the extension attribute record.

    Times are nanoseconds since the epoch. `dev` is the host st_dev; plain
    Rgetattr has no device field, so it is 0 there (unknown).
    """

    qid: Qid
    mode: int
    uid: int
    gid: int
    nlink: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    dev: int = 0


@dataclass(frozen=True, slots=True)
class Dirent:
    """One entry of an Rreaddir payload."""

    qid: Qid
    offset: int
    type: int
    name: bytes


@dataclass(frozen=True, slots=True)
class DirentStat:
    """One entry of an Rreaddirattr payload: a dirent plus full attributes."""

    qid: Qid
    offset: int
    type: int
    name: bytes
    stat: Stat


@dataclass(frozen=True, slots=True)
class StatOrErrno:
    """One result of Rgetattrbatch: attributes, or the errno that prevented them."""

    stat: Stat | None
    error: int = 0


# ---------------------------------------------------------------------------
# Field codecs. A message class lists its fields as (name, kind); kinds:
#   b u8, w u16, d u32, q u64, s string, Q qid, S strings (u16 n), R qids
#   (u16 n), D data (u32 count + bytes), F fids (u16 n + u32 each), A attr
#   record, AS attr records (u16 n), B batch results (u16 n).

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_QID = struct.Struct("<BIQ")
_HEADER = struct.Struct("<IBH")
# qid[13] mode[4] uid[4] gid[4] nlink[8] rdev[8] size[8] blksize[8] blocks[8]
# atime_ns[8] mtime_ns[8] ctime_ns[8] (signed) dev[8]
_ATTR = struct.Struct("<BIQIIIQQQQQqqqQ")
_FIXED = {"b": _U8, "w": _U16, "d": _U32, "q": _U64}


class _Reader:
    """A cursor over one message body; every read is bounds-checked."""

    __slots__ = ("buf", "pos", "tag")

    def __init__(self, buf: bytes, tag: int) -> None:
        self.buf = buf
        self.pos = 0
        self.tag = tag

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            raise ProtocolError(f"body too short: need {n} bytes at offset {start}, "
                                f"have {len(self.buf) - start}", tag=self.tag)
        self.pos = start + n
        return start

    def fixed(self, st: struct.Struct) -> Any:
        return st.unpack_from(self.buf, self.take(st.size))[0]

    def string(self) -> bytes:
        n = self.fixed(_U16)
        start = self.take(n)
        return bytes(self.buf[start:start + n])

    def qid(self) -> Qid:
        return Qid(*_QID.unpack_from(self.buf, self.take(_QID.size)))

    def attr(self) -> Stat:
        v = _ATTR.unpack_from(self.buf, self.take(_ATTR.size))
        return Stat(Qid(v[0], v[1], v[2]), *v[3:])

    def data(self) -> bytes:
        n = self.fixed(_U32)
        start = self.take(n)
        return bytes(self.buf[start:start + n])

    def count(self) -> int:
        return int(self.fixed(_U16))


def _read_field(r: _Reader, kind: str) -> Any:
    st = _FIXED.get(kind)
    if st is not None:
        return r.fixed(st)
    if kind == "s":
        return r.string()
    if kind == "Q":
        return r.qid()
    if kind == "D":
        return r.data()
    if kind == "A":
        return r.attr()
    if kind == "S":
        return tuple(r.string() for _ in range(r.count()))
    if kind == "R":
        return tuple(r.qid() for _ in range(r.count()))
    if kind == "F":
        return tuple(r.fixed(_U32) for _ in range(r.count()))
    if kind == "AS":
        return tuple(r.attr() for _ in range(r.count()))
    if kind == "B":
        out = []
        for _ in range(r.count()):
            err = r.fixed(_U32)
            out.append(StatOrErrno(None, err) if err else StatOrErrno(r.attr()))
        return tuple(out)
    raise AssertionError(kind)


def _pack_fixed(st: struct.Struct, value: int) -> bytes:
    try:
        return st.pack(value)
    except struct.error as exc:
        raise UsageError(f"{value!r} does not fit a {st.size}-byte field") from exc


def _pack_string(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise UsageError(f"9P strings are bytes, not {type(value).__name__}")
    return _pack_fixed(_U16, len(value)) + value


def _pack_qid(q: Qid) -> bytes:
    try:
        return _QID.pack(q.type, q.version, q.path)
    except struct.error as exc:
        raise UsageError(f"bad qid {q!r}") from exc


def pack_attr(s: Stat) -> bytes:
    """The extension attribute record (97 bytes) of `s`."""
    try:
        return _ATTR.pack(s.qid.type, s.qid.version, s.qid.path, s.mode, s.uid, s.gid,
                          s.nlink, s.rdev, s.size, s.blksize, s.blocks, s.atime_ns,
                          s.mtime_ns, s.ctime_ns, s.dev)
    except struct.error as exc:
        raise UsageError(f"bad attributes {s!r}") from exc


def _count(n: int) -> bytes:
    return _pack_fixed(_U16, n)


def _write_field(kind: str, value: Any) -> bytes:
    st = _FIXED.get(kind)
    if st is not None:
        return _pack_fixed(st, value)
    if kind == "s":
        return _pack_string(value)
    if kind == "Q":
        return _pack_qid(value)
    if kind == "D":
        return _pack_fixed(_U32, len(value)) + bytes(value)
    if kind == "A":
        return pack_attr(value)
    if kind == "S":
        return _count(len(value)) + b"".join(_pack_string(v) for v in value)
    if kind == "R":
        return _count(len(value)) + b"".join(_pack_qid(v) for v in value)
    if kind == "F":
        return _count(len(value)) + b"".join(_pack_fixed(_U32, v) for v in value)
    if kind == "AS":
        return _count(len(value)) + b"".join(pack_attr(v) for v in value)
    if kind == "B":
        parts = [_count(len(value))]
        for item in value:
            if item.stat is None:
                if not item.error:
                    raise UsageError("a batch result needs a stat or a non-zero errno")
                parts.append(_pack_fixed(_U32, item.error))
            else:
                parts.append(_U32.pack(0) + pack_attr(item.stat))
        return b"".join(parts)
    raise AssertionError(kind)


# ---------------------------------------------------------------------------
# Messages. Each class: TYPE (message number) and FIELDS (wire order).


class Message:
    """Base of every 9P message; subclasses are frozen dataclasses."""

    __slots__ = ()
    TYPE: ClassVar[int]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]


MESSAGES: dict[int, type[Message]] = {}


_M = TypeVar("_M", bound=type[Message])


def _msg(type_: int, spec: str) -> Callable[[_M], _M]:
    """Class decorator: register the message dataclass under number `type_`.

    `spec` is "name:kind name:kind ..." and must list the dataclass fields in
    order; it is checked here so a typo fails at import, not on the wire.
    """

    def wrap(cls: _M) -> _M:
        pairs = tuple((a, b) for a, _, b in (p.partition(":") for p in spec.split()))
        if [p[0] for p in pairs] != [f.name for f in fields(cls)]:  # type: ignore[arg-type]
            raise AssertionError(f"{cls.__name__}: spec does not match fields")
        cls.TYPE = type_
        cls.FIELDS = pairs
        MESSAGES[type_] = cls
        return cls

    return wrap


# ---------------------------------------------------------------------------
# Frames


def encode(tag: int, msg: Message) -> bytes:
    """One whole frame for `msg` with `tag`. Raises UsageError for unencodable values."""
    body = b"".join([_write_field(kind, getattr(msg, name)) for name, kind in msg.FIELDS])
    if len(body) + HEADER_SIZE > 0xFFFFFFFF:
        raise UsageError("message too large")
    if not 0 <= tag <= 0xFFFF:
        raise UsageError(f"tag {tag!r} out of range")
    return _HEADER.pack(len(body) + HEADER_SIZE, msg.TYPE, tag) + body


class FrameBuffer:
    """Accumulates received bytes and yields whole frames, bounded by `max_size`.

    A size field below the header size or above `max_size` is a FramingError:
    we cannot know where the next frame starts, and we refuse to buffer more
    than one maximal frame. The bound can be changed (after Tversion).
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def frames(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield (type, tag, body) for every complete frame buffered so far."""
        buf = self._buf
        pos = 0
        try:
            while len(buf) - pos >= 4:
                (size,) = _U32.unpack_from(buf, pos)
                if size < HEADER_SIZE or size > self.max_size:
                    raise FramingError(f"frame size {size} outside [{HEADER_SIZE}, "
                                       f"{self.max_size}]")
                if len(buf) - pos < size:
                    break
                _, type_, tag = _HEADER.unpack_from(buf, pos)
                body = bytes(buf[pos + HEADER_SIZE:pos + size])
                pos += size
                yield type_, tag, body
        finally:
            del buf[:pos]


# ---------------------------------------------------------------------------
# Directory entry payloads (Rreaddir, Rreaddirattr)


def pack_dirent(d: Dirent) -> bytes:
    """qid[13] offset[8] type[1] name[s]: one Rreaddir entry."""
    return _pack_qid(d.qid) + _pack_fixed(_U64, d.offset) + _pack_fixed(_U8, d.type) \
        + _pack_string(d.name)


def unpack_dirents(data: bytes) -> list[Dirent]:
    """Every entry of an Rreaddir payload; ProtocolError if one is cut short."""
    r = _Reader(data, NOTAG)
    out = []
    while r.pos < len(data):
        out.append(Dirent(r.qid(), r.fixed(_U64), r.fixed(_U8), r.string()))
    return out


def pack_dirent_stat(d: DirentStat) -> bytes:
    """qid[13] offset[8] type[1] name[s] attr[97]: one Rreaddirattr entry."""
    return pack_dirent(Dirent(d.qid, d.offset, d.type, d.name)) + pack_attr(d.stat)


def unpack_dirent_stats(data: bytes) -> list[DirentStat]:
    """Every entry of an Rreaddirattr payload; ProtocolError if one is cut short."""
    r = _Reader(data, NOTAG)
    out = []
    while r.pos < len(data):
        out.append(DirentStat(r.qid(), r.fixed(_U64), r.fixed(_U8), r.string(), r.attr()))
    return out
