"""Trees and comparisons shared by the checkpoint tests (tests/vfs/test_checkpoint_*)."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path
from typing import Any

from sandboxfs.checkpoint import CHUNK, read_image, write_image
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Creds, Inode, SetAttr

from .helpers import ROOT, read_all, walk, write_at

BIG = CHUNK * 3 + 12345  # several chunks and a partial one
SMALL_FILES = 1200
HEADER: dict[str, Any] = {
    "mounts": [{"index": 0, "destination": "/", "type": "9p", "device": "9pfs-/",
                "flags": ["rw"], "options": [], "cache": "exclusive", "memory": True}],
    "meta": {"fingerprint": "abc"}}


async def rich_tree() -> TmpFs:
    """Every kind of entry and attribute an upper can hold."""
    rng = random.Random(6)
    fs = TmpFs()
    root = fs.root
    await root.setxattr(b"user.root", b"r")
    d = await root.mkdir(b"d", 0o755, ROOT)
    e = await d.mkdir(b"e", 0o700, Creds(5, 6))
    f = await e.create(b"f", 0o644, ROOT)
    await write_at(f, 0, b"deep")
    await f.setxattr(b"user.note", b"\x00binary\xff")
    await f.setxattr(b"security.selinux", b"system_u:object_r:x:s0")
    await d.link(b"hard", f)
    await root.link(b"hard2", f)  # three names, nlink 3
    many = await root.mkdir(b"many", 0o755, ROOT)
    nested = await many.mkdir(b"nested", 0o750, Creds(2, 2))
    for i in range(SMALL_FILES):
        sub = many if i % 3 else nested
        node = await sub.create(f"small{i:04}".encode(), 0o644, Creds(i % 7, i % 5))
        await write_at(node, 0, f"file {i}\n".encode() * (i % 13))
    big = await root.create(b"big", 0o600, Creds(1000, 1000))
    await write_at(big, 0, rng.randbytes(BIG))
    exact = await root.create(b"exact", 0o644, ROOT)
    await write_at(exact, 0, b"x" * CHUNK)
    sparse = await root.create(b"sparse", 0o644, ROOT)
    await sparse.setattr(SetAttr(size=CHUNK * 2 + 7))
    await write_at(sparse, CHUNK + 3, b"middle")
    await root.create(b"empty", 0o644, ROOT)
    await root.symlink(b"sym", b"d/e/f", ROOT)
    await d.symlink(b"dangling", b"/nowhere/\xff", Creds(3, 4))
    sym = await walk(root, "sym")
    await sym.setxattr(b"trusted.sym", b"s")
    await root.mknod(b"fifo", stat.S_IFIFO | 0o640, 0, Creds(9, 9))
    await root.mknod(b"sock", stat.S_IFSOCK | 0o777, 0, ROOT)
    await root.mknod(b"whiteout", stat.S_IFCHR, 0, ROOT)
    await root.mknod(b"null", stat.S_IFCHR | 0o666, os.makedev(1, 3), ROOT)
    await root.mknod(b"disk", stat.S_IFBLK | 0o660, os.makedev(8, 1), Creds(0, 6))
    ws = await root.mknod(b"whiteout2", stat.S_IFCHR, 0, ROOT)
    await d.link(b"whiteout2-link", ws)
    opaque = await root.mkdir(b"opaque", 0o755, ROOT)
    await opaque.setxattr(b"trusted.overlay.opaque", b"y")
    await opaque.mknod(b"gone", stat.S_IFCHR, 0, ROOT)
    await root.mkdir(b"\xffodd name\x01", 0o000, Creds(65534, 65534))
    odd = await root.create(b"setuid", 0o4755, Creds(7, 8))
    await odd.setattr(SetAttr(mode=0o6755, atime_ns=1_000_000_123, mtime_ns=2_000_000_456,
                              ctime_ns=3_000_000_789))
    old = await root.create(b"before-1970", 0o644, ROOT)
    await old.setattr(SetAttr(atime_ns=-5_000_000_001, mtime_ns=-1, ctime_ns=7))
    deep: Inode = root
    for i in range(40):
        deep = await deep.mkdir(f"level{i}".encode(), 0o755, ROOT)
    await deep.create(b"bottom", 0o644, ROOT)
    await d.setattr(SetAttr(mode=0o1777, mtime_ns=5_000_000_000))
    sgid = await root.mkdir(b"sgid", 0o2775, Creds(0, 50))
    await sgid.create(b"inherits", 0o644, Creds(1, 1))
    # Times of everything, set last and distinct, so any one that moves shows.
    await _stamp(root, rng)
    return fs


async def _stamp(root: Inode, rng: random.Random) -> None:
    async def go(node: Inode) -> None:
        a = await node.getattr()
        if stat.S_ISDIR(a.mode):
            for entry in await node.readdir():
                await go(entry.inode)
        t = rng.randrange(10**18)
        await node.setattr(SetAttr(atime_ns=t + 1, mtime_ns=t + 2, ctime_ns=t + 3))

    await go(root)


async def snapshot(root: Inode, *, with_times: bool = True) -> dict[str, tuple[object, ...]]:
    """Everything a tree shows, by path; hard links as groups of paths
    sharing one inode (inode numbers themselves may differ)."""
    out: dict[str, tuple[object, ...]] = {}
    by_ino: dict[int, list[str]] = {}

    async def one(node: Inode, path: str, a: Any) -> None:
        body: object = None
        if stat.S_ISREG(a.mode):
            body = await read_all(node)
        elif stat.S_ISLNK(a.mode):
            body = await node.readlink()
        xattrs = {n: await node.getxattr(n) for n in await node.listxattr()}
        times = (a.atime_ns, a.mtime_ns, a.ctime_ns) if with_times else ()
        out[path] = (a.mode, a.uid, a.gid, a.size, a.nlink, a.rdev, *times, body,
                     tuple(sorted(xattrs.items())))
        by_ino.setdefault(a.ino, []).append(path)
        if stat.S_ISDIR(a.mode):
            for e in await node.readdir():
                await one(e.inode, f"{path}/{e.name!r}", e.attr)

    await one(root, "", await root.getattr())
    out["<links>"] = tuple(sorted(tuple(sorted(p)) for p in by_ino.values() if len(p) > 1))
    return out


def assert_same(after: dict[str, tuple[object, ...]],
                before: dict[str, tuple[object, ...]]) -> None:
    assert after.keys() == before.keys(), after.keys() ^ before.keys()
    for path in before:
        assert after[path] == before[path], path


async def checkpoint(path: Path, trees: list[tuple[str, Inode]]) -> Path:
    await write_image(path, HEADER, trees)
    return path


async def restore(path: Path, key: str = "0") -> TmpFs:
    fs = TmpFs()
    await read_image(path).restore_tree(key, fs.root)
    return fs
