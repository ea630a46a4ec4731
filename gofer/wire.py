"""Sans-I/O 9P2000.L codec: messages as frozen dataclasses, bytes in, messages out.

Nothing here touches a socket. `encode` turns a message into one frame;
`FrameBuffer` is fed received bytes and yields whole frames; `decode` turns a
frame into a message. The server and the client share this module, so both
sides agree on every layout by construction.

Every length on the wire is checked: a frame whose size field, string length,
count or element number does not match its body raises `ProtocolError`,
never `IndexError` or `struct.error`. Two error kinds, as in h11:

* `ProtocolError` -- the *peer* sent something malformed. `FramingError` (a
  subclass) means the byte stream itself cannot be resynchronised (bad size
  field) and the connection must be closed; a plain `ProtocolError` carries
  the tag and an errno so the receiver can answer `Rlerror` and go on.
* `UsageError` -- *our* caller tried to encode something unencodable (an
  integer out of range, a string longer than 65535 bytes).

Message numbers are the standard 9P2000.L / 9P2000 ones; the sandboxfs
extensions (negotiated with the version string `VERSION_EXT`) live in the
150-199 range, which neither 9P2000.L nor 9P2000.u uses. Layouts are listed in
docs/protocol.md.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from gofer.wire_codec import (
    GETATTR_ALL,
    GETATTR_BASIC,
    HEADER_SIZE,
    IOHDRSZ,
    MAX_MSIZE,
    MESSAGES,
    MIN_MSIZE,
    NOFID,
    NOTAG,
    QTDIR,
    QTFILE,
    QTSYMLINK,
    READ_OVERHEAD,
    SETATTR_ATIME,
    SETATTR_ATIME_SET,
    SETATTR_CTIME,
    SETATTR_GID,
    SETATTR_MODE,
    SETATTR_MTIME,
    SETATTR_MTIME_SET,
    SETATTR_SIZE,
    SETATTR_UID,
    VERSION_EXT,
    VERSION_L,
    VERSION_UNKNOWN,
    WRITE_OVERHEAD,
    Dirent,
    DirentStat,
    FrameBuffer,
    FramingError,
    Message,
    ProtocolError,
    Qid,
    Stat,
    StatOrErrno,
    UsageError,
    _msg,
    _read_field,
    _Reader,
    encode,
    pack_attr,
    pack_dirent,
    pack_dirent_stat,
    unpack_dirent_stats,
    unpack_dirents,
)
from gofer.wire_ext import (
    EXTENSION_TYPES,
    MAX_OPEN_BATCH,
    Rgetattrbatch,
    Rlcreatefd,
    Rlistdir,
    Rlopenfd,
    Ropenat,
    Ropenatbatch,
    Rreaddirattr,
    Rwalkgetattr,
    Rxattrat,
    Tgetattrbatch,
    Tlcreatefd,
    Tlistdir,
    Tlopenfd,
    Topenat,
    Topenatbatch,
    Treaddirattr,
    Twalkgetattr,
    Txattrat,
)

# Everything callers use comes from here: the building blocks (wire_codec.py),
# the 9P2000.L messages below and the extensions (wire_ext.py).
__all__ = [
    "decode", "Dirent", "DirentStat", "encode", "EXTENSION_TYPES", "FrameBuffer",
    "FramingError", "GETATTR_ALL", "GETATTR_BASIC", "HEADER_SIZE", "IOHDRSZ", "MAX_MSIZE",
    "MAX_OPEN_BATCH", "Message", "MESSAGES", "MIN_MSIZE", "NOFID", "NOTAG", "pack_attr",
    "pack_dirent", "pack_dirent_stat", "ProtocolError", "Qid", "QTDIR", "QTFILE", "QTSYMLINK",
    "Rattach", "Rauth", "Rclunk", "READ_OVERHEAD", "Rflush", "Rfsync", "Rgetattr",
    "Rgetattrbatch", "Rlcreate", "Rlcreatefd", "Rlerror", "Rlink", "Rlistdir", "Rlopen",
    "Rlopenfd", "Rmkdir", "Rmknod", "Ropenat", "Ropenatbatch", "Rread", "Rreaddir",
    "Rreaddirattr", "Rreadlink", "Rremove", "Rrename", "Rrenameat", "Rsetattr", "Rstatfs",
    "Rsymlink", "Runlinkat", "Rversion", "Rwalk", "Rwalkgetattr", "Rwrite", "Rxattrat",
    "Rxattrcreate", "Rxattrwalk", "SETATTR_ATIME", "SETATTR_ATIME_SET", "SETATTR_CTIME",
    "SETATTR_GID", "SETATTR_MODE", "SETATTR_MTIME", "SETATTR_MTIME_SET", "SETATTR_SIZE",
    "SETATTR_UID", "Stat", "StatOrErrno", "Tattach", "Tauth", "Tclunk", "Tflush", "Tfsync",
    "Tgetattr", "Tgetattrbatch", "Tlcreate", "Tlcreatefd", "Tlink", "Tlistdir", "Tlopen",
    "Tlopenfd", "Tmkdir", "Tmknod", "Topenat", "Topenatbatch", "Tread", "Treaddir",
    "Treaddirattr", "Treadlink", "Tremove", "Trename", "Trenameat", "Tsetattr", "Tstatfs",
    "Tsymlink", "Tunlinkat", "Tversion", "Twalk", "Twalkgetattr", "Twrite", "Txattrat",
    "Txattrcreate", "Txattrwalk", "unpack_dirent_stats", "unpack_dirents", "UsageError",
    "VERSION_EXT", "VERSION_L", "VERSION_UNKNOWN", "WRITE_OVERHEAD",
]


@_msg(7, "ecode:d")
@dataclass(frozen=True, slots=True)
class Rlerror(Message):
    ecode: int


@_msg(8, "fid:d")
@dataclass(frozen=True, slots=True)
class Tstatfs(Message):
    fid: int


@_msg(9, "type:d bsize:d blocks:q bfree:q bavail:q files:q ffree:q fsid:q namelen:d")
@dataclass(frozen=True, slots=True)
class Rstatfs(Message):
    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int


@_msg(12, "fid:d flags:d")
@dataclass(frozen=True, slots=True)
class Tlopen(Message):
    fid: int
    flags: int


@_msg(13, "qid:Q iounit:d")
@dataclass(frozen=True, slots=True)
class Rlopen(Message):
    qid: Qid
    iounit: int


@_msg(14, "fid:d name:s flags:d mode:d gid:d")
@dataclass(frozen=True, slots=True)
class Tlcreate(Message):
    fid: int
    name: bytes
    flags: int
    mode: int
    gid: int


@_msg(15, "qid:Q iounit:d")
@dataclass(frozen=True, slots=True)
class Rlcreate(Message):
    qid: Qid
    iounit: int


@_msg(16, "fid:d name:s target:s gid:d")
@dataclass(frozen=True, slots=True)
class Tsymlink(Message):
    fid: int
    name: bytes
    target: bytes
    gid: int


@_msg(17, "qid:Q")
@dataclass(frozen=True, slots=True)
class Rsymlink(Message):
    qid: Qid


@_msg(18, "dfid:d name:s mode:d major:d minor:d gid:d")
@dataclass(frozen=True, slots=True)
class Tmknod(Message):
    dfid: int
    name: bytes
    mode: int
    major: int
    minor: int
    gid: int


@_msg(19, "qid:Q")
@dataclass(frozen=True, slots=True)
class Rmknod(Message):
    qid: Qid


@_msg(20, "fid:d dfid:d name:s")
@dataclass(frozen=True, slots=True)
class Trename(Message):
    fid: int
    dfid: int
    name: bytes


@_msg(21, "")
@dataclass(frozen=True, slots=True)
class Rrename(Message):
    pass


@_msg(22, "fid:d")
@dataclass(frozen=True, slots=True)
class Treadlink(Message):
    fid: int


@_msg(23, "target:s")
@dataclass(frozen=True, slots=True)
class Rreadlink(Message):
    target: bytes


@_msg(24, "fid:d request_mask:q")
@dataclass(frozen=True, slots=True)
class Tgetattr(Message):
    fid: int
    request_mask: int


@_msg(25, "valid:q qid:Q mode:d uid:d gid:d nlink:q rdev:q size:q blksize:q blocks:q "
          "atime_sec:q atime_nsec:q mtime_sec:q mtime_nsec:q ctime_sec:q ctime_nsec:q "
          "btime_sec:q btime_nsec:q gen:q data_version:q")
@dataclass(frozen=True, slots=True)
class Rgetattr(Message):
    valid: int
    qid: Qid
    mode: int
    uid: int
    gid: int
    nlink: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_sec: int
    atime_nsec: int
    mtime_sec: int
    mtime_nsec: int
    ctime_sec: int
    ctime_nsec: int
    btime_sec: int
    btime_nsec: int
    gen: int
    data_version: int


@_msg(26, "fid:d valid:d mode:d uid:d gid:d size:q atime_sec:q atime_nsec:q "
          "mtime_sec:q mtime_nsec:q")
@dataclass(frozen=True, slots=True)
class Tsetattr(Message):
    fid: int
    valid: int
    mode: int
    uid: int
    gid: int
    size: int
    atime_sec: int
    atime_nsec: int
    mtime_sec: int
    mtime_nsec: int


@_msg(27, "")
@dataclass(frozen=True, slots=True)
class Rsetattr(Message):
    pass


@_msg(30, "fid:d newfid:d name:s")
@dataclass(frozen=True, slots=True)
class Txattrwalk(Message):
    fid: int
    newfid: int
    name: bytes


@_msg(31, "size:q")
@dataclass(frozen=True, slots=True)
class Rxattrwalk(Message):
    size: int


@_msg(32, "fid:d name:s attr_size:q flags:d")
@dataclass(frozen=True, slots=True)
class Txattrcreate(Message):
    fid: int
    name: bytes
    attr_size: int
    flags: int


@_msg(33, "")
@dataclass(frozen=True, slots=True)
class Rxattrcreate(Message):
    pass


@_msg(40, "fid:d offset:q count:d")
@dataclass(frozen=True, slots=True)
class Treaddir(Message):
    fid: int
    offset: int
    count: int


@_msg(41, "data:D")
@dataclass(frozen=True, slots=True)
class Rreaddir(Message):
    data: bytes


@_msg(50, "fid:d datasync:d")
@dataclass(frozen=True, slots=True)
class Tfsync(Message):
    """Linux sends datasync[4] after the fid; older clients omit it (decoded as 0)."""

    fid: int
    datasync: int = 0


@_msg(51, "")
@dataclass(frozen=True, slots=True)
class Rfsync(Message):
    pass


@_msg(70, "dfid:d fid:d name:s")
@dataclass(frozen=True, slots=True)
class Tlink(Message):
    dfid: int
    fid: int
    name: bytes


@_msg(71, "")
@dataclass(frozen=True, slots=True)
class Rlink(Message):
    pass


@_msg(72, "dfid:d name:s mode:d gid:d")
@dataclass(frozen=True, slots=True)
class Tmkdir(Message):
    dfid: int
    name: bytes
    mode: int
    gid: int


@_msg(73, "qid:Q")
@dataclass(frozen=True, slots=True)
class Rmkdir(Message):
    qid: Qid


@_msg(74, "olddirfid:d oldname:s newdirfid:d newname:s")
@dataclass(frozen=True, slots=True)
class Trenameat(Message):
    olddirfid: int
    oldname: bytes
    newdirfid: int
    newname: bytes


@_msg(75, "")
@dataclass(frozen=True, slots=True)
class Rrenameat(Message):
    pass


@_msg(76, "dirfid:d name:s flags:d")
@dataclass(frozen=True, slots=True)
class Tunlinkat(Message):
    dirfid: int
    name: bytes
    flags: int


@_msg(77, "")
@dataclass(frozen=True, slots=True)
class Runlinkat(Message):
    pass


@_msg(100, "msize:d version:s")
@dataclass(frozen=True, slots=True)
class Tversion(Message):
    msize: int
    version: bytes


@_msg(101, "msize:d version:s")
@dataclass(frozen=True, slots=True)
class Rversion(Message):
    msize: int
    version: bytes


@_msg(102, "afid:d uname:s aname:s n_uname:d")
@dataclass(frozen=True, slots=True)
class Tauth(Message):
    afid: int
    uname: bytes
    aname: bytes
    n_uname: int


@_msg(103, "aqid:Q")
@dataclass(frozen=True, slots=True)
class Rauth(Message):
    aqid: Qid


@_msg(104, "fid:d afid:d uname:s aname:s n_uname:d")
@dataclass(frozen=True, slots=True)
class Tattach(Message):
    fid: int
    afid: int
    uname: bytes
    aname: bytes
    n_uname: int


@_msg(105, "qid:Q")
@dataclass(frozen=True, slots=True)
class Rattach(Message):
    qid: Qid


@_msg(108, "oldtag:w")
@dataclass(frozen=True, slots=True)
class Tflush(Message):
    oldtag: int


@_msg(109, "")
@dataclass(frozen=True, slots=True)
class Rflush(Message):
    pass


@_msg(110, "fid:d newfid:d names:S")
@dataclass(frozen=True, slots=True)
class Twalk(Message):
    fid: int
    newfid: int
    names: tuple[bytes, ...]


@_msg(111, "qids:R")
@dataclass(frozen=True, slots=True)
class Rwalk(Message):
    qids: tuple[Qid, ...]


@_msg(116, "fid:d offset:q count:d")
@dataclass(frozen=True, slots=True)
class Tread(Message):
    fid: int
    offset: int
    count: int


@_msg(117, "data:D")
@dataclass(frozen=True, slots=True)
class Rread(Message):
    data: bytes


@_msg(118, "fid:d offset:q data:D")
@dataclass(frozen=True, slots=True)
class Twrite(Message):
    fid: int
    offset: int
    data: bytes


@_msg(119, "count:d")
@dataclass(frozen=True, slots=True)
class Rwrite(Message):
    count: int


@_msg(120, "fid:d")
@dataclass(frozen=True, slots=True)
class Tclunk(Message):
    fid: int


@_msg(121, "")
@dataclass(frozen=True, slots=True)
class Rclunk(Message):
    pass


@_msg(122, "fid:d")
@dataclass(frozen=True, slots=True)
class Tremove(Message):
    fid: int


@_msg(123, "")
@dataclass(frozen=True, slots=True)
class Rremove(Message):
    pass


# ---------------------------------------------------------------------------
# Decoding (here, beside the messages: one of them has a legacy form)


def decode(type_: int, tag: int, body: bytes) -> Message:
    """The message in one frame's body. Raises ProtocolError (with the tag) if malformed."""
    cls = MESSAGES.get(type_)
    if cls is None:
        raise ProtocolError(f"unknown message type {type_}", tag=tag, error=errno.EOPNOTSUPP)
    if cls is Tfsync and len(body) == 4:  # clients from before datasync existed
        body = bytes(body) + b"\0\0\0\0"
    r = _Reader(body, tag)
    values = [_read_field(r, kind) for _, kind in cls.FIELDS]
    if r.pos != len(body):
        raise ProtocolError(f"{cls.__name__}: {len(body) - r.pos} trailing bytes", tag=tag)
    return cls(*values)
