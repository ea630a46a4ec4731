"""Checkpoint images without a mount: round trips of rich trees, and every
kind of damage refused before anything is restored."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandboxfs.checkpoint import Image, ImageError, write_image
from sandboxfs.checkpoint.format import CHUNK
from sandboxfs.overlay import OverlayFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Creds, Inode, SetAttr

from .helpers import ROOT, populate, read_all, walk, write_at


async def rich_tree() -> TmpFs:
    fs = TmpFs()
    root = fs.root
    await populate(root, {"d/": None, "d/e/": None, "d/e/f": b"deep"})
    for i in range(1200):
        await write_at(await root.create(f"small{i:04}".encode(), 0o644, ROOT), 0,
                       f"file {i}\n".encode())
    big = await root.create(b"big", 0o600, Creds(1000, 1000))
    await write_at(big, 0, os.urandom(CHUNK * 3 + 12345))
    f = await walk(root, "d/e/f")
    await (await walk(root, "d")).link(b"hard", f)
    await root.symlink(b"sym", b"d/e/f", ROOT)
    await root.mknod(b"fifo", stat.S_IFIFO | 0o640, 0, ROOT)
    await root.mknod(b"whiteout", stat.S_IFCHR, 0, ROOT)
    opaque = await root.mkdir(b"opaque", 0o755, ROOT)
    await opaque.setxattr(b"trusted.overlay.opaque", b"y")
    await f.setxattr(b"user.note", b"\x00binary\xff")
    odd = await root.create(b"odd", 0o4755, Creds(7, 8))
    await odd.setattr(SetAttr(mode=0o4755, atime_ns=1_000_000_123, mtime_ns=2_000_000_456,
                              ctime_ns=3_000_000_789))
    await (await walk(root, "d")).setattr(SetAttr(mode=0o1777, mtime_ns=5_000_000_000))
    return fs


async def snapshot(root: Inode) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}

    async def go(d: Inode, prefix: str) -> None:
        for e in await d.readdir():
            a = e.attr
            path = prefix + e.name.decode()
            body: object = None
            if stat.S_ISREG(a.mode):
                body = await read_all(e.inode)
            elif stat.S_ISLNK(a.mode):
                body = await e.inode.readlink()
            xattrs = {n: await e.inode.getxattr(n) for n in await e.inode.listxattr()}
            out[path] = (a.mode, a.uid, a.gid, a.size, a.nlink, a.rdev, a.atime_ns,
                         a.mtime_ns, a.ctime_ns, body, tuple(sorted(xattrs.items())))
            if stat.S_ISDIR(a.mode):
                await go(e.inode, path + "/")

    await go(root, "")
    return out


async def checkpoint(tmp_path: Path, trees: list[tuple[str, Inode]]) -> Path:
    image = tmp_path / "image"
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        await write_image(fd, {"mounts": [], "meta": {"what": "test"}}, trees)
    finally:
        os.close(fd)
    return image


async def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    fs = await rich_tree()
    before = await snapshot(fs.root)
    image = await checkpoint(tmp_path, [("0", fs.root)])
    img = Image.open(str(image))
    assert img.header["meta"] == {"what": "test"} and img.sections == ["0"]
    restored = TmpFs()
    await img.restore_tree("0", restored.root)
    after = await snapshot(restored.root)
    assert after.keys() == before.keys()
    for path in before:
        assert after[path] == before[path], path
    hard = await walk(restored.root, "d/hard")
    assert hard is await walk(restored.root, "d/e/f")  # one inode, two names


async def test_overlay_upper_round_trip_gives_the_same_merged_view(tmp_path: Path) -> None:
    lower = TmpFs(ino_base=5000)
    await populate(lower.root, {"keep": b"k", "gone": b"g", "dir/": None, "dir/old": b"o",
                                "edit": b"before"})
    upper = TmpFs()
    ofs = OverlayFs(upper.root, [lower.root])
    await ofs.root.unlink(b"gone")
    await (await ofs.root.lookup(b"dir")).unlink(b"old")
    await ofs.root.rmdir(b"dir")
    await ofs.root.mkdir(b"dir", 0o755, ROOT)
    await write_at(await ofs.root.lookup(b"edit"), 0, b"after!")
    merged = await snapshot(ofs.root)
    image = await checkpoint(tmp_path, [("0", upper.root)])
    restored = TmpFs()
    await Image.open(str(image)).restore_tree("0", restored.root)
    again = OverlayFs(restored.root, [lower.root])
    assert await snapshot(again.root) == merged


async def test_damaged_images_are_refused(tmp_path: Path) -> None:
    fs = await rich_tree()
    image = await checkpoint(tmp_path, [("0", fs.root)])
    good = image.read_bytes()
    cases = {
        "magic": b"NOTANIMG" + good[8:],
        "version": good[:8] + (99).to_bytes(4, "little") + good[12:],
        "empty": b"",
    }
    for cut in (5, 12, 40, len(good) // 2, len(good) - 3):
        cases[f"truncated at {cut}"] = good[:cut]
    for pos in (20, 200, len(good) // 3, len(good) // 2, len(good) - 10):
        flipped = bytearray(good)
        flipped[pos] ^= 0x40
        cases[f"flip at {pos}"] = bytes(flipped)
    cases["appended"] = good + b"more"
    for name, data in cases.items():
        bad = tmp_path / "bad"
        bad.write_bytes(data)
        with pytest.raises(ImageError):
            Image.open(str(bad))
        assert name


async def test_writer_reads_file_bodies_in_bounded_chunks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = TmpFs()
    f = await fs.root.create(b"f", 0o644, ROOT)
    await f.setattr(SetAttr(size=CHUNK * 8 + 1))
    seen: list[int] = []
    real_pread = os.pread

    def spy(fd: int, n: int, off: int) -> bytes:
        seen.append(n)
        return real_pread(fd, n, off)

    monkeypatch.setattr(os, "pread", spy)
    await checkpoint(tmp_path, [("0", fs.root)])
    monkeypatch.undo()
    assert seen and max(seen) <= CHUNK
