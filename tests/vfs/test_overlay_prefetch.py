"""Lower listings read ahead of a walk: one level below what was listed,
each listing read once even when a walk and a prefetch want it together,
and a prefetch that fails leaves the error to the walk."""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable

import trio

from sandboxfs.overlay import OverlayFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode

from .helpers import Proxy, Seed, expect_errno, names, populate, walk

TREE: Seed = {
    "a/": None, "a/x/": None, "a/x/deep/": None, "a/f": b"f",
    "b/": None, "b/y": b"y",
    "locked/": None, "locked/z": b"z",
}


class Counting(Proxy):
    """Counts readdir calls per directory inode, and refuses to list `locked`."""

    listed: list[int] = []
    locked: set[int] = set()

    async def around(self, name: str, call: Callable[..., Awaitable[object]],
                     args: tuple[object, ...]) -> object:
        if name == "readdir":
            await trio.sleep(0.01)  # a round trip, so walks and prefetches overlap
            if self.ino in Counting.locked:
                raise OSError(errno.EACCES, os.strerror(errno.EACCES))
            Counting.listed.append(self.ino)
        return await call(*args)


async def mounted() -> tuple[OverlayFs, Inode]:
    raw = TmpFs(ino_base=1000).root
    await populate(raw, TREE)
    Counting.listed = []
    Counting.locked = {(await raw.lookup(b"locked")).ino}
    lower: Inode = Counting(raw)  # type: ignore[assignment]
    return OverlayFs(TmpFs().root, [lower], prefetch=True), raw


async def test_subdirectories_are_listed_ahead_once_and_one_level_only() -> None:
    fs, raw = await mounted()
    ino = {p: (await walk(raw, p)).ino for p in ("a", "b", "a/x", "a/x/deep")}
    assert sorted(await names(fs.root)) == [b"a", b"b", b"locked"]
    await trio.sleep(0.1)  # the workers read a, b (and fail on locked)
    assert sorted(Counting.listed) == sorted([raw.ino, ino["a"], ino["b"]])
    # The walk finds them read; listing a looks one level further (a/x), not two.
    assert sorted(await names(await fs.root.lookup(b"a"))) == [b"f", b"x"]
    assert await names(await fs.root.lookup(b"b")) == [b"y"]
    await trio.sleep(0.1)
    assert sorted(Counting.listed) == sorted([raw.ino, ino["a"], ino["b"], ino["a/x"]])
    assert ino["a/x/deep"] not in Counting.listed


async def test_a_walk_and_a_prefetch_share_one_read() -> None:
    fs, raw = await mounted()
    a_ino = (await raw.lookup(b"a")).ino
    await names(fs.root)  # offers a, b, locked to the workers
    a = await fs.root.lookup(b"a")
    async with trio.open_nursery() as nursery:  # the walk asks while a prefetch reads
        for _ in range(3):
            nursery.start_soon(names, a)
    assert Counting.listed.count(a_ino) == 1


async def test_a_failed_prefetch_leaves_the_error_to_the_walk() -> None:
    fs, _ = await mounted()
    await names(fs.root)
    await trio.sleep(0.1)
    locked = await fs.root.lookup(b"locked")
    await expect_errno(errno.EACCES, locked.readdir())
