"""Facts about host files as the remote filesystem keeps them: attributes,
cache policies and counters, and the small helpers every part shares."""

from __future__ import annotations

import enum
import errno
import os
import resource
import stat as statmod
from dataclasses import dataclass

from gofer.client import Stat
from sandboxfs.vfs import Attr

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


def same_file(a: Stat, b: Stat) -> bool:
    return a.qid.path == b.qid.path and statmod.S_IFMT(a.mode) == statmod.S_IFMT(b.mode)


def no_such(name: bytes) -> OSError:
    return OSError(errno.ENOENT, os.strerror(errno.ENOENT), name.decode(errors="replace"))


def default_fd_cache_size() -> int:
    """A quarter of the descriptors this process may open: donated fds are
    the cheapest reads there are, but memfds and sockets need room too."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(256, min(soft // 4, 1 << 16))


