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

import errno
import math
import os

import trio

from gofer.client import Client, Qid, Stat
from sandboxfs.remote.attrs import CachePolicy, CacheStats, default_fd_cache_size
from sandboxfs.remote.fdcache import FdCache
from sandboxfs.remote.fids import FidTable
from sandboxfs.remote.inode import RemoteInode

__all__ = ["CachePolicy", "CacheStats", "RemoteFs", "RemoteInode"]

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
        self.can_listdir = client.extensions  # Tlistdir: a directory listed in one round trip
        self.can_xattr_at = client.extensions  # Txattrat: an xattr read in one round trip
        self.can_open_batch = client.extensions  # Topenatbatch: siblings opened together
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
