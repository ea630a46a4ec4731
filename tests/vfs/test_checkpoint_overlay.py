"""An overlay's upper through a checkpoint: restore the upper into a fresh
TmpFs, put a new OverlayFs over the same lowers, and the merged view is the
one before (deleted names stay deleted, opaque directories stay opaque,
copied-up files keep their new bytes and attributes, hard links stay one
inode)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandboxfs.checkpoint import read_image
from sandboxfs.overlay import OverlayFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Creds, SetAttr

from .checkpoint_trees import assert_same, checkpoint, snapshot
from .helpers import ROOT, digest, populate, walk, write_at


async def busy_overlay() -> tuple[OverlayFs, TmpFs, list[TmpFs]]:
    base = TmpFs(ino_base=5000)
    top = TmpFs(ino_base=9000)
    await populate(base.root, {
        "keep": b"k", "gone": b"g", "dir/": None, "dir/old": b"o", "dir/sub/": None,
        "dir/sub/x": b"x", "edit": b"before", "chmod": b"c", "etc/": None,
        "etc/passwd": b"root:x:0:0\n", "etc/hosts": b"127.0.0.1 localhost\n",
        "link-me": b"linked", "sym": ("symlink", "keep"), "xattr": b"x"})
    await populate(top.root, {"etc/": None, "etc/hostname": b"lower-top\n", "shadowed": b"t"})
    upper = TmpFs()
    ofs = OverlayFs(upper.root, [top.root, base.root])
    root = ofs.root
    await root.unlink(b"gone")                                    # whiteout over a lower file
    d = await root.lookup(b"dir")
    await (await d.lookup(b"sub")).unlink(b"x")
    await d.rmdir(b"sub")
    await d.unlink(b"old")
    await root.rmdir(b"dir")
    newdir = await root.mkdir(b"dir", 0o750, Creds(10, 10))       # opaque over the lower dir
    await write_at(await newdir.create(b"fresh", 0o640, ROOT), 0, b"new")
    await write_at(await root.lookup(b"edit"), 0, b"after!")      # copy-up with new bytes
    await (await root.lookup(b"chmod")).setattr(SetAttr(mode=0o4711, uid=42, gid=43))
    etc = await root.lookup(b"etc")                               # merged over both lowers
    await write_at(await etc.lookup(b"hosts"), 0, b"10.0.0.1 db\n", os.O_WRONLY | os.O_TRUNC)
    await etc.rename(b"passwd", etc, b"passwd.old")               # rename of a lower file
    await etc.unlink(b"hostname")                                 # whiteout over the top lower
    await root.link(b"linked-too", await root.lookup(b"link-me"))  # hard link after copy-up
    await (await root.lookup(b"xattr")).setxattr(b"user.tag", b"v")
    await root.mknod(b"pipe", stat.S_IFIFO | 0o600, 0, ROOT)
    await root.unlink(b"sym")
    await root.symlink(b"sym", b"etc/hosts", Creds(1, 1))          # replaced lower symlink
    return ofs, upper, [top, base]


async def test_merged_view_survives_a_checkpoint_of_the_upper(tmp_path: Path) -> None:
    ofs, upper, lowers = await busy_overlay()
    lower_digests = [await digest(fs.root) for fs in lowers]
    merged = await snapshot(ofs.root)
    names = {k for k in merged if k.count("/") == 1}
    assert "/b'gone'" not in names and "/b'dir'" in names
    assert "/b'dir'/b'old'" not in merged and "/b'etc'/b'hostname'" not in merged
    upper_before = await snapshot(upper.root)
    # The upper holds overlayfs's format: whiteouts and an opaque marker.
    gone = await (await walk(upper.root, "gone")).getattr()
    assert stat.S_ISCHR(gone.mode) and gone.rdev == 0
    assert await (await walk(upper.root, "dir")).getxattr(b"trusted.overlay.opaque") == b"y"

    image = await checkpoint(tmp_path / "img", [("0", upper.root)])
    restored = TmpFs()
    await read_image(image).restore_tree("0", restored.root)
    assert_same(await snapshot(restored.root), upper_before)
    again = OverlayFs(restored.root, [lowers[0].root, lowers[1].root])
    assert_same(await snapshot(again.root), merged)
    assert [await digest(fs.root) for fs in lowers] == lower_digests

    # The restored overlay keeps working as the first did.
    await again.root.unlink(b"keep")
    await write_at(await walk(again.root, "dir/fresh"), 3, b"er")
    assert b"keep" not in [e.name for e in await again.root.readdir()]
