"""Renaming directories that have lower parts: the redirect xattr.

The moved directory is copied up alone and its upper gets
`trusted.overlay.redirect` naming where its lower parts are, so the move is
one rename and survives a remount (a new `OverlayFs` over the same layers).
"""

from __future__ import annotations

import errno

from sandboxfs.overlay import OverlayFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode

from .helpers import ROOT, Seed, digest, expect_errno, names, populate, read_all, walk

REDIRECT = b"trusted.overlay.redirect"

TREE: Seed = {
    "d/": None,
    "d/a": b"a",
    "d/sub/": None,
    "d/sub/b": b"b",
    "e/": None,
    "e/d/": None,
    "e/d/hidden": b"must not merge",
    "far/": None,
}


async def layer(seed: Seed, ino_base: int = 1000) -> Inode:
    root = TmpFs(ino_base=ino_base).root
    await populate(root, seed)
    return root


async def shape(root: Inode) -> list[tuple[bytes, int, bytes]]:
    """Every path with its type and bytes: what a user sees, whatever the
    inode numbers and times of the layers beneath."""
    seen: list[tuple[bytes, int, bytes]] = []

    async def visit(node: Inode, path: bytes) -> None:
        attr = await node.getattr()
        kind = attr.mode >> 12
        seen.append((path, kind, await read_all(node) if kind == 0o10 else b""))
        if kind == 0o04:
            for entry in await node.readdir():
                await visit(entry.inode, path + b"/" + entry.name)

    await visit(root, b"")
    return sorted(seen)


async def whiteout_at(upper_dir: Inode, name: bytes) -> bool:
    attr = await (await upper_dir.lookup(name)).getattr()
    return attr.mode >> 12 == 0o02 and attr.rdev == 0


async def test_rename_lower_directory_writes_redirect_and_survives_remount() -> None:
    lower = await layer(TREE)
    d_ino = (await (await lower.lookup(b"d")).getattr()).ino
    upper = TmpFs().root
    fs = OverlayFs(upper, [lower])
    await fs.root.rename(b"d", fs.root, b"moved")
    assert sorted(await names(await fs.root.lookup(b"moved"))) == [b"a", b"sub"]
    assert await read_all(await walk(fs.root, "moved/sub/b")) == b"b"
    await expect_errno(errno.ENOENT, fs.root.lookup(b"d"))
    assert await (await upper.lookup(b"moved")).getxattr(REDIRECT) == b"/d"
    assert await whiteout_at(upper, b"d")
    # Only the directory itself was copied up.
    assert sorted(await names(await upper.lookup(b"moved"))) == []
    assert (await (await fs.root.lookup(b"moved")).getattr()).ino == d_ino
    view = await digest(fs.root)
    again = OverlayFs(upper, [lower])
    assert await digest(again.root) == view
    assert (await (await again.root.lookup(b"moved")).getattr()).ino == d_ino
    # The redirect xattr belongs to the format: users never see it.
    moved = await again.root.lookup(b"moved")
    assert REDIRECT not in await moved.listxattr()
    await expect_errno(errno.ENODATA, moved.getxattr(REDIRECT))


async def test_redirected_directory_does_not_merge_with_the_name_it_lands_on() -> None:
    lower = await layer(TREE)
    upper = TmpFs().root
    fs = OverlayFs(upper, [lower])
    e = await fs.root.lookup(b"e")
    d_in_e = await e.lookup(b"d")
    await d_in_e.unlink(b"hidden")
    # e/d is now empty in the merged view: d may replace it.
    await fs.root.rename(b"d", e, b"d")
    assert sorted(await names(await walk(fs.root, "e/d"))) == [b"a", b"sub"]
    again = OverlayFs(upper, [lower])
    assert sorted(await names(await walk(again.root, "e/d"))) == [b"a", b"sub"]
    assert sorted(await names(again.root)) == [b"e", b"far"]


async def test_nested_renames_record_lower_paths() -> None:
    lower = await layer(TREE)
    upper = TmpFs().root
    fs = OverlayFs(upper, [lower])
    far = await fs.root.lookup(b"far")
    await fs.root.rename(b"d", far, b"x")
    x = await far.lookup(b"x")
    await x.rename(b"sub", fs.root, b"y")  # a child of a moved directory
    assert await (await upper.lookup(b"y")).getxattr(REDIRECT) == b"/d/sub"
    await fs.root.rename(b"y", far, b"y2")  # moved twice: still its lower path
    assert await (await walk(upper, "far/y2")).getxattr(REDIRECT) == b"/d/sub"
    await far.rename(b"x", fs.root, b"d")  # back where it came from
    view = await digest(fs.root)
    assert sorted(await names(fs.root)) == [b"d", b"e", b"far"]
    assert sorted(await names(await fs.root.lookup(b"d"))) == [b"a"]
    again = OverlayFs(upper, [lower])
    assert await digest(again.root) == view


async def test_exchange_of_two_lower_directories() -> None:
    lower = await layer(TREE)
    upper = TmpFs().root
    fs = OverlayFs(upper, [lower])
    await fs.root.rename(b"d", fs.root, b"e", 2)  # RENAME_EXCHANGE
    assert sorted(await names(await fs.root.lookup(b"e"))) == [b"a", b"sub"]
    assert sorted(await names(await fs.root.lookup(b"d"))) == [b"d"]
    view = await digest(fs.root)
    assert await digest(OverlayFs(upper, [lower]).root) == view


async def test_relative_redirect_as_the_kernel_writes_it() -> None:
    lower = await layer(TREE)
    upper = TmpFs().root
    await upper.mknod(b"d", 0o020000, 0, ROOT)  # whiteout: d was renamed away
    z = await upper.mkdir(b"z", 0o755, ROOT)
    await z.setxattr(REDIRECT, b"d")  # overlayfs's form for a rename in one directory
    fs = OverlayFs(upper, [lower])
    assert sorted(await names(await fs.root.lookup(b"z"))) == [b"a", b"sub"]
    assert sorted(await names(fs.root)) == [b"e", b"far", b"z"]


async def test_an_earlier_upper_with_redirects_works_as_a_lower() -> None:
    lower = await layer(TREE)
    first = TmpFs(ino_base=5000).root
    fs = OverlayFs(first, [lower])
    await fs.root.rename(b"d", fs.root, b"moved")
    await (await fs.root.lookup(b"moved")).create(b"new", 0o644, ROOT)
    view = await shape(fs.root)
    stacked = OverlayFs(TmpFs().root, [first, lower])
    assert await shape(stacked.root) == view
    assert sorted(await names(await stacked.root.lookup(b"moved"))) == [b"a", b"new", b"sub"]
    # And it moves again from there.
    await stacked.root.rename(b"moved", await stacked.root.lookup(b"far"), b"m2")
    assert sorted(await names(await walk(stacked.root, "far/m2"))) == [b"a", b"new", b"sub"]


async def test_lower_path_longer_than_overlayfs_follows_is_exdev() -> None:
    long = "n" * 200
    lower = await layer({f"{long}/": None, f"{long}/{long}/": None, f"{long}/{long}/f": b"f"})
    fs = OverlayFs(TmpFs().root, [lower])
    top = await fs.root.lookup(long.encode())
    await expect_errno(errno.EXDEV, top.rename(long.encode(), fs.root, b"short"))
    await fs.root.rename(long.encode(), fs.root, b"short")  # 201 bytes: fine
    assert sorted(await names(await fs.root.lookup(b"short"))) == [long.encode()]
