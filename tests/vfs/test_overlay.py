"""Overlay-specific behaviour: the upper's format, lowers' markers, copy-up,
inode numbers, hard links, layer precedence and concurrency."""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import trio

from sandboxfs.overlay import HIGH_BASE, OverlayFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Creds, Inode, SetAttr

from .helpers import (
    ROOT,
    Seed,
    digest,
    expect_errno,
    names,
    populate,
    read_all,
    walk,
    write_at,
    yielding,
)

OPAQUE = b"trusted.overlay.opaque"


async def layer(seed: Seed, ino_base: int = 1000) -> Inode:
    root = TmpFs(ino_base=ino_base).root
    await populate(root, seed)
    return root


async def overlay(*lowers: Inode, **upper_options: Any) -> tuple[OverlayFs, Inode]:
    upper = TmpFs(**upper_options).root
    return OverlayFs(upper, list(lowers)), upper


async def is_whiteout_in(upper_dir: Inode, name: bytes) -> bool:
    a = await (await upper_dir.lookup(name)).getattr()
    return stat.S_ISCHR(a.mode) and a.rdev == 0


LOWER: Seed = {
    "f": b"lower f",
    "g": b"lower g",
    "d/": None,
    "d/a": b"a",
    "d/sub/": None,
    "d/sub/b": b"b",
    "e/": None,
}


async def test_unlink_leaves_whiteout_and_create_replaces_it() -> None:
    lower = await layer(LOWER)
    before = await digest(lower)
    fs, upper = await overlay(lower)
    await fs.root.unlink(b"f")
    assert await is_whiteout_in(upper, b"f")
    assert b"f" not in await names(fs.root)
    await expect_errno(errno.ENOENT, fs.root.lookup(b"f"))
    f = await fs.root.create(b"f", 0o600, ROOT)
    assert await read_all(f) == b""
    assert stat.S_ISREG((await (await upper.lookup(b"f")).getattr()).mode)
    assert (await f.getattr()).ino >= HIGH_BASE
    assert await digest(lower) == before


async def test_rmdir_mkdir_is_opaque_and_hides_format() -> None:
    lower = await layer(LOWER)
    fs, upper = await overlay(lower)
    d = await fs.root.lookup(b"d")
    await expect_errno(errno.ENOTEMPTY, fs.root.rmdir(b"d"))
    await d.unlink(b"a")
    sub = await d.lookup(b"sub")
    await sub.unlink(b"b")
    await d.rmdir(b"sub")
    assert await names(d) == []
    await fs.root.rmdir(b"d")
    assert await is_whiteout_in(upper, b"d")
    new = await fs.root.mkdir(b"d", 0o755, ROOT)
    assert await names(new) == []
    await expect_errno(errno.ENOENT, new.lookup(b"a"))
    assert await (await upper.lookup(b"d")).getxattr(OPAQUE) == b"y"
    assert OPAQUE not in await new.listxattr()
    await expect_errno(errno.ENODATA, new.getxattr(OPAQUE))
    await expect_errno(errno.EPERM, new.setxattr(OPAQUE, b"n"))
    await expect_errno(errno.EPERM, new.removexattr(OPAQUE))
    # A fresh overlay on the same layers sees the same thing (the format says it all).
    again = OverlayFs(upper, [lower])
    assert await names(await again.root.lookup(b"d")) == []
    assert b"f" in await names(again.root)


async def test_oci_markers_in_lowers() -> None:
    bottom = await layer({"a": b"a", "b": b"b", "d/": None, "d/x": b"x", "d/y": b"y",
                          "e/": None, "e/old": b"old", "k/": None, "k/deep": b"deep"})
    top = await layer({".wh.a": b"", "d/": None, "d/.wh.x": b"", "d/z": b"z",
                       "e/": None, "e/.wh..wh..opq": b"", "e/new": b"new",
                       "k": b"now a file"}, ino_base=5000)
    fs, _ = await overlay(top, bottom)
    assert sorted(await names(fs.root)) == [b"b", b"d", b"e", b"k"]
    await expect_errno(errno.ENOENT, fs.root.lookup(b"a"))
    await expect_errno(errno.ENOENT, fs.root.lookup(b".wh.a"))
    d = await fs.root.lookup(b"d")
    assert sorted(await names(d)) == [b"y", b"z"]
    await expect_errno(errno.ENOENT, d.lookup(b"x"))
    e = await fs.root.lookup(b"e")
    assert await names(e) == [b"new"]
    await expect_errno(errno.ENOENT, e.lookup(b"old"))
    assert await read_all(await fs.root.lookup(b"k")) == b"now a file"
    # A name hidden by a marker can be created again, without the old contents.
    await fs.root.mkdir(b"a", 0o755, ROOT)
    await d.create(b"x", 0o644, ROOT)
    assert await read_all(await d.lookup(b"x")) == b""


async def test_overlay_format_in_lowers() -> None:
    """A former upper used as a lower: 0/0 whiteouts and the opaque xattr count."""
    bottom = await layer({"gone": b"x", "o/": None, "o/old": b"old", "m/": None,
                          "m/keep": b"keep"})
    former = await layer({"o/": None, "o/new": b"new", "m/": None}, ino_base=5000)
    await former.mknod(b"gone", stat.S_IFCHR, 0, ROOT)
    await (await former.lookup(b"o")).setxattr(OPAQUE, b"y")
    fs, _ = await overlay(former, bottom)
    assert sorted(await names(fs.root)) == [b"m", b"o"]
    assert await names(await fs.root.lookup(b"o")) == [b"new"]
    assert await names(await fs.root.lookup(b"m")) == [b"keep"]
    assert (await (await fs.root.lookup(b"m")).getattr()).nlink == 1  # merged


async def test_three_layers_precedence() -> None:
    l3 = await layer({"x": b"3", "d/": None, "d/from3": b"3", "d/both": b"3",
                      "fd/": None, "fd/hidden": b"h"}, ino_base=100)
    l2 = await layer({"x": b"2", "d/": None, "d/from2": b"2", "d/both": b"2",
                      "fd": b"file in 2"}, ino_base=200)
    l1 = await layer({"x": b"1", "d/": None, "d/from1": b"1"}, ino_base=300)
    fs, _ = await overlay(l1, l2, l3)
    assert await read_all(await fs.root.lookup(b"x")) == b"1"
    d = await fs.root.lookup(b"d")
    assert sorted(await names(d)) == [b"both", b"from1", b"from2", b"from3"]
    assert await read_all(await d.lookup(b"both")) == b"2"
    assert await read_all(await fs.root.lookup(b"fd")) == b"file in 2"
    # A change in the merged dir copies up only the top-most dir; the others still show.
    await d.create(b"new", 0o644, ROOT)
    assert sorted(await names(d)) == [b"both", b"from1", b"from2", b"from3", b"new"]
    await d.unlink(b"from3")
    assert sorted(await names(d)) == [b"both", b"from1", b"from2", b"new"]


async def test_copy_up_data_metadata_xattrs() -> None:
    big = os.urandom(3 << 20)
    lower = await layer({"big": big, "s": ("symlink", "big"), "p": ("fifo",),
                         "dir/": None, "dir/f": b"f"})
    big_node = await lower.lookup(b"big")
    await big_node.setxattr(b"user.a", b"1")
    await big_node.setxattr(b"security.b", b"2")
    await big_node.setattr(SetAttr(mode=0o4751, uid=11, gid=22, atime_ns=123, mtime_ns=456))
    dir_node = await lower.lookup(b"dir")
    await dir_node.setattr(SetAttr(mode=0o710, uid=3, gid=4, mtime_ns=789))
    await dir_node.setxattr(b"user.dir", b"d")
    before = await digest(lower)
    fs, upper = await overlay(lower)
    node = await fs.root.lookup(b"big")
    la = await big_node.getattr()
    oa = await node.getattr()
    assert (oa.ino, oa.mtime_ns, oa.ctime_ns, oa.size) == (la.ino, la.mtime_ns, la.ctime_ns,
                                                           la.size)
    reader = await node.open(os.O_RDONLY)
    await node.setxattr(b"user.c", b"3")  # copy-up
    assert await reader.read(0, 10) == big[:10]  # opened before: still the lower's bytes
    await reader.release()
    up = await upper.lookup(b"big")
    ua = await up.getattr()
    assert (ua.mode, ua.uid, ua.gid, ua.atime_ns, ua.mtime_ns, ua.size) == (
        la.mode, 11, 22, 123, 456, len(big))
    assert await read_all(up) == big
    assert sorted(await up.listxattr()) == [b"security.b", b"trusted.overlay.sandboxfs.ino",
                                            b"user.a", b"user.c"]
    assert (await node.getattr()).ino == la.ino
    # Parents are copied with their metadata; symlinks and fifos copy too.
    await write_at(await walk(fs.root, "dir/f"), 0, b"F", os.O_RDWR)
    ud = await (await upper.lookup(b"dir")).getattr()
    assert (stat.S_IMODE(ud.mode), ud.uid, ud.gid, ud.mtime_ns) == (0o710, 3, 4, 789)
    assert await (await upper.lookup(b"dir")).getxattr(b"user.dir") == b"d"
    await (await fs.root.lookup(b"s")).setattr(SetAttr(uid=9))
    assert await (await upper.lookup(b"s")).readlink() == b"big"
    await (await fs.root.lookup(b"p")).setattr(SetAttr(mode=0o600))
    assert stat.S_ISFIFO((await (await upper.lookup(b"p")).getattr()).mode)
    assert await digest(lower) == before


async def test_copy_up_without_room_leaves_nothing() -> None:
    lower = await layer({"dir/": None, "dir/big": b"z" * (200 << 10), "small": b"s"})
    fs, upper = await overlay(lower, size_limit=64 << 10)
    big = await walk(fs.root, "dir/big")
    await expect_errno(errno.ENOSPC, big.open(os.O_RDWR))
    assert await names(await upper.lookup(b"dir")) == []
    assert await read_all(big) == b"z" * (200 << 10)
    h = await big.open(os.O_WRONLY | os.O_TRUNC)  # no bytes to copy: fits
    await h.release()
    assert await read_all(big) == b""
    assert (await upper.statfs()).bfree == 16


async def test_lower_hard_links_are_one_file() -> None:
    lower = await layer({"a/": None, "a/h1": b"shared", "b/": None, "b/h2": ("hardlink", "a/h1"),
                         "b/h3": ("hardlink", "a/h1")})
    fs, upper = await overlay(lower)
    h1 = await walk(fs.root, "a/h1")
    h2 = await walk(fs.root, "b/h2")
    assert h1 is h2
    ino = (await h1.getattr()).ino
    await write_at(h1, 0, b"SHARED", os.O_RDWR)
    assert await read_all(await walk(fs.root, "b/h2")) == b"SHARED"
    h3 = await walk(fs.root, "b/h3")  # met after the copy-up: linked then
    assert h3 is h1
    up = await walk(upper, "a/h1")
    assert (await walk(upper, "b/h2")) is up and (await walk(upper, "b/h3")) is up
    for node in (h1, h2, h3):
        a = await node.getattr()
        assert (a.ino, a.nlink) == (ino, 3)
    await (await walk(fs.root, "b")).unlink(b"h3")
    assert (await h1.getattr()).nlink == 2
    await fs.root.link(b"top", h1)
    assert (await h1.getattr()).nlink == 3


async def test_inode_numbers_stable_and_unique() -> None:
    lower = await layer({"f": b"f", "d/": None, "d/g": b"g", "s": ("symlink", "f")})
    other = await layer({"x": b"x", "y/": None}, ino_base=1000)  # same numbers as `lower`
    fs, _ = await overlay(lower, other)
    assert fs.root.ino == 1 and (await fs.root.getattr()).ino == 1
    seen: dict[int, bytes] = {}

    async def walk_all(d: Inode, path: bytes) -> None:
        for e in await d.readdir():
            assert e.attr.ino not in seen, (path + e.name, seen.get(e.attr.ino))
            seen[e.attr.ino] = path + e.name
            if stat.S_ISDIR(e.attr.mode):
                await walk_all(e.inode, path + e.name + b"/")

    await walk_all(fs.root, b"/")
    f_lower = await (await lower.lookup(b"f")).getattr()
    f = await fs.root.lookup(b"f")
    assert (await f.getattr()).ino == f_lower.ino
    await write_at(f, 0, b"F", os.O_RDWR)
    assert (await f.getattr()).ino == f_lower.ino
    d_lower = await (await lower.lookup(b"d")).getattr()
    d = await fs.root.lookup(b"d")
    await d.create(b"new", 0o644, ROOT)
    assert (await d.getattr()).ino == d_lower.ino
    assert (await (await d.lookup(b"new")).getattr()).ino >= HIGH_BASE
    assert (await (await walk(fs.root, "f")).getattr()).ino == f_lower.ino
    # Upper-only hard links share one number.
    n = await fs.root.create(b"n", 0o644, ROOT)
    await fs.root.link(b"n2", n)
    assert (await (await fs.root.lookup(b"n2")).getattr()).ino == (await n.getattr()).ino


async def test_rename_rules() -> None:
    lower = await layer(LOWER)
    fs, upper = await overlay(lower)
    new = await fs.root.mkdir(b"new", 0o755, ROOT)
    await new.create(b"x", 0o644, ROOT)
    await fs.root.rename(b"new", await fs.root.lookup(b"e"), b"moved")
    assert await names(await walk(fs.root, "e/moved")) == [b"x"]
    # A lower file renamed: copied up, old name whiteouted.
    await fs.root.rename(b"f", await fs.root.lookup(b"d"), b"f-moved")
    assert await is_whiteout_in(upper, b"f")
    assert await read_all(await walk(fs.root, "d/f-moved")) == b"lower f"
    # Over a lower file, then over a lower empty directory with a dir.
    await fs.root.rename(b"g", await fs.root.lookup(b"d"), b"a")
    assert await read_all(await walk(fs.root, "d/a")) == b"lower g"
    assert b"g" not in await names(fs.root)


async def test_directory_moved_over_hidden_lower_dir_is_opaque() -> None:
    lower = await layer({"d/": None, "d/secret": b"s"})
    fs, upper = await overlay(lower)
    d = await fs.root.lookup(b"d")
    await d.unlink(b"secret")
    await fs.root.rmdir(b"d")
    mine = await fs.root.mkdir(b"mine", 0o755, ROOT)
    await fs.root.rename(b"mine", fs.root, b"d")
    assert await names(await fs.root.lookup(b"d")) == []
    assert await (await upper.lookup(b"d")).getxattr(OPAQUE) == b"y"
    again = OverlayFs(upper, [lower])
    assert await names(await again.root.lookup(b"d")) == []
    assert mine is await fs.root.lookup(b"d")


async def test_rmdir_lower_empty_dir_and_merged_with_whiteouts() -> None:
    lower = await layer(LOWER)
    fs, upper = await overlay(lower)
    await fs.root.rmdir(b"e")
    assert await is_whiteout_in(upper, b"e")
    d = await fs.root.lookup(b"d")
    await d.create(b"tmp", 0o644, ROOT)
    await d.unlink(b"tmp")
    await d.unlink(b"a")
    await expect_errno(errno.ENOTEMPTY, fs.root.rmdir(b"d"))
    sub = await d.lookup(b"sub")
    await sub.unlink(b"b")
    await d.rmdir(b"sub")
    await fs.root.rmdir(b"d")
    assert await is_whiteout_in(upper, b"d")
    assert sorted(await names(fs.root)) == [b"f", b"g"]


async def test_concurrent_copy_ups() -> None:
    seed: dict[str, object] = {"a/": None, "a/b/": None, "a/b/c/": None}
    for i in range(20):
        seed[f"a/b/c/f{i}"] = b"%d" % i * 1000
    seed["a/b/c/shared"] = b"." * 100
    lower = await layer(seed)
    before = await digest(lower)
    upper = TmpFs().root
    fs = OverlayFs(yielding(upper), [yielding(lower)])
    c = await walk(fs.root, "a/b/c")

    async def write_own(i: int) -> None:
        node = await c.lookup(b"f%d" % i)
        await write_at(node, 0, b"X", os.O_RDWR)

    async def write_shared(i: int) -> None:
        node = await c.lookup(b"shared")
        await write_at(node, i, b"#", os.O_RDWR)

    async def chmod_dir(_: int) -> None:
        await c.setattr(SetAttr(mode=0o700))

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(write_own, i)
            nursery.start_soon(write_shared, i)
            nursery.start_soon(chmod_dir, i)
    uc = await walk(upper, "a/b/c")
    assert sorted(await names(uc)) == sorted([b"f%d" % i for i in range(20)] + [b"shared"])
    for i in range(20):
        assert await read_all(await c.lookup(b"f%d" % i)) == b"X" + (b"%d" % i * 1000)[1:]
    assert await read_all(await c.lookup(b"shared")) == b"#" * 20 + b"." * 80
    assert await digest(lower) == before


async def test_concurrent_namespace_changes() -> None:
    lower = await layer({"d/": None, **{f"d/f{i}": b"x" for i in range(10)}})
    upper = TmpFs().root
    fs = OverlayFs(yielding(upper), [yielding(lower)])
    d = await fs.root.lookup(b"d")

    async def churn(i: int) -> None:
        await d.unlink(b"f%d" % i)
        await d.create(b"f%d" % i, 0o644, ROOT)
        await d.rename(b"f%d" % i, d, b"g%d" % i)
        await d.mkdir(b"f%d" % i, 0o755, ROOT)

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(churn, i)
            nursery.start_soon(d.readdir)
    got = sorted(await names(d))
    assert got == sorted([b"f%d" % i for i in range(10)] + [b"g%d" % i for i in range(10)])
    fresh = OverlayFs(upper, [lower])  # the upper's format says the same
    assert sorted(await names(await fresh.root.lookup(b"d"))) == got


async def test_lower_listing_is_read_once() -> None:
    lower = await layer({"d/": None, **{f"d/f{i}": b"" for i in range(50)}})
    calls = 0
    d_lower = await lower.lookup(b"d")
    real = d_lower.readdir

    async def counting() -> list:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        return await real()

    d_lower.readdir = counting  # type: ignore[method-assign]
    fs, _ = await overlay(lower)
    d = await fs.root.lookup(b"d")
    for _ in range(3):
        assert len(await d.readdir()) == 50
    await d.create(b"new", 0o644, ROOT)
    assert len(await d.readdir()) == 51
    assert calls == 1


async def test_mknod_whiteout_device_refused() -> None:
    fs, _ = await overlay(await layer({}))
    await expect_errno(errno.EPERM, fs.root.mknod(b"c", stat.S_IFCHR | 0o600, 0, Creds()))


async def test_overlong_names_are_enametoolong_before_anything_else() -> None:
    ofs, _ = await overlay(await layer(LOWER))
    long = b"x" * 256
    await expect_errno(errno.ENAMETOOLONG, ofs.root.lookup(long))
    # mknod of a 0/0 char device is EPERM, but the name is checked first (as the kernel).
    await expect_errno(errno.ENAMETOOLONG, ofs.root.mknod(long, stat.S_IFCHR | 0o644, 0, ROOT))
    await expect_errno(errno.ENOENT, ofs.root.lookup(b"y" * 255))
