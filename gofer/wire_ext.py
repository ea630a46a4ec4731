"""The sandboxfs extensions to 9P2000.L (message numbers 150-199), usable only
on a connection that negotiated `VERSION_EXT`; layouts in docs/protocol.md."""

from __future__ import annotations

from dataclasses import dataclass

from gofer.wire_codec import MESSAGES, Message, Qid, Stat, StatOrErrno, _msg

# --- sandboxfs extensions (only after VERSION_EXT was negotiated) -----------


@_msg(150, "fid:d flags:d")
@dataclass(frozen=True, slots=True)
class Tlopenfd(Message):
    """Tlopen that may donate the opened host fd (regular files, unix sockets)."""

    fid: int
    flags: int


@_msg(151, "qid:Q iounit:d hasfd:b")
@dataclass(frozen=True, slots=True)
class Rlopenfd(Message):
    """hasfd=1: exactly one fd came with this frame's bytes (SCM_RIGHTS)."""

    qid: Qid
    iounit: int
    hasfd: int


@_msg(152, "fid:d name:s flags:d mode:d gid:d")
@dataclass(frozen=True, slots=True)
class Tlcreatefd(Message):
    fid: int
    name: bytes
    flags: int
    mode: int
    gid: int


@_msg(153, "qid:Q iounit:d hasfd:b")
@dataclass(frozen=True, slots=True)
class Rlcreatefd(Message):
    qid: Qid
    iounit: int
    hasfd: int


@_msg(154, "fid:d newfid:d names:S")
@dataclass(frozen=True, slots=True)
class Twalkgetattr(Message):
    """Twalk that is all-or-nothing and returns every component's attributes."""

    fid: int
    newfid: int
    names: tuple[bytes, ...]


@_msg(155, "qids:R stats:AS")
@dataclass(frozen=True, slots=True)
class Rwalkgetattr(Message):
    qids: tuple[Qid, ...]
    stats: tuple[Stat, ...]


@_msg(156, "fids:F")
@dataclass(frozen=True, slots=True)
class Tgetattrbatch(Message):
    fids: tuple[int, ...]


@_msg(157, "results:B")
@dataclass(frozen=True, slots=True)
class Rgetattrbatch(Message):
    results: tuple[StatOrErrno, ...]


@_msg(158, "fid:d offset:q count:d")
@dataclass(frozen=True, slots=True)
class Treaddirattr(Message):
    fid: int
    offset: int
    count: int


@_msg(159, "data:D")
@dataclass(frozen=True, slots=True)
class Rreaddirattr(Message):
    data: bytes


@_msg(160, "fid:d names:S flags:d")
@dataclass(frozen=True, slots=True)
class Topenat(Message):
    """Walk `names` from `fid` and open the regular file there, donating its fd.

    No fid is made: one round trip replaces Twalk + Tlopenfd + Tclunk. Only
    where fds can be passed (else EOPNOTSUPP); a non-regular file is EINVAL.
    """

    fid: int
    names: tuple[bytes, ...]
    flags: int


@_msg(161, "qid:Q")
@dataclass(frozen=True, slots=True)
class Ropenat(Message):
    """Exactly one fd comes with this frame's bytes (SCM_RIGHTS); the client owns it."""

    qid: Qid


@_msg(162, "fid:d names:S count:d")
@dataclass(frozen=True, slots=True)
class Tlistdir(Message):
    """Walk `names` from `fid`, open the directory there, and return every entry
    with its attributes (as Rreaddirattr entries), in one round trip and
    without a fid: replaces Twalk + Tlopenfd + Treaddirattr... + Tclunk.

    At most `count` bytes of entries (and what fits in msize); `complete` is 0
    when the listing was cut short: the client then lists the usual way.
    """

    fid: int
    names: tuple[bytes, ...]
    count: int


@_msg(163, "complete:b data:D")
@dataclass(frozen=True, slots=True)
class Rlistdir(Message):
    complete: int
    data: bytes


@_msg(164, "fid:d names:S name:s")
@dataclass(frozen=True, slots=True)
class Txattrat(Message):
    """Walk `names` from `fid` and read the xattr `name` of the file there (an
    empty name: the NUL-terminated list of its xattr names), in one round trip
    and without a fid: replaces Twalk + Txattrwalk + Tread + Tclunk. The value
    must fit in one reply (else ERANGE: the client then asks the usual way)."""

    fid: int
    names: tuple[bytes, ...]
    name: bytes


@_msg(165, "data:D")
@dataclass(frozen=True, slots=True)
class Rxattrat(Message):
    data: bytes


#: most names in one Topenatbatch (its fds travel in one SCM_RIGHTS message)
MAX_OPEN_BATCH = 16


@_msg(166, "fid:d names:S")
@dataclass(frozen=True, slots=True)
class Topenatbatch(Message):
    """Open, read-only, each regular file `fid/name` (one name each, at most
    MAX_OPEN_BATCH) and donate the fds of those that opened, in one round trip
    and without a fid: Topenat for several files of one directory at once."""

    fid: int
    names: tuple[bytes, ...]


@_msg(167, "errnos:F qids:R")
@dataclass(frozen=True, slots=True)
class Ropenatbatch(Message):
    """One errno per name (0: opened); one qid per name opened, in order, and
    as many fds attached to the frame (SCM_RIGHTS), in the same order."""

    errnos: tuple[int, ...]
    qids: tuple[Qid, ...]


#: message numbers that exist only on a connection that negotiated VERSION_EXT
EXTENSION_TYPES = frozenset(t for t in MESSAGES if 150 <= t < 200)
