"""The mount namespace without a mount: crossing into mounts, stub mount
points, flags, inode numbers, and the single-file overlay."""

from __future__ import annotations

import errno
import os
import stat

from sandboxfs.devtree import DEVICES, populate_dev
from sandboxfs.mountns import MOUNT_INO_BASE, Mount, MountedInode, MountNamespace
from sandboxfs.overlay import OverlayFs
from sandboxfs.overlay.single_file import FileOverlay
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode, SetAttr

from .helpers import ROOT, expect_errno, names, populate, read_all, walk, write_at


async def namespace(*mounts: tuple[str, Inode, dict[str, object]]) -> MountNamespace:
    root = TmpFs().root
    await populate(root, {"etc/": None, "etc/passwd": b"root", "tmp/": None})
    ns = MountNamespace(Mount(0, "/", root))
    for index, (dest, fs_root, flags) in enumerate(mounts, start=1):
        ns.add(Mount(index, dest, fs_root, **flags))  # type: ignore[arg-type]
    return ns


async def test_lookup_crosses_into_mounts_and_nested_mounts() -> None:
    foo, bar = TmpFs().root, TmpFs().root
    await populate(bar, {"inside": b"bar's"})
    ns = await namespace(("/foo", foo, {}), ("/foo/bar", bar, {}))
    assert await read_all(await walk(ns.root, "foo/bar/inside")) == b"bar's"
    assert sorted(await names(ns.root)) == [b"etc", b"foo", b"tmp"]
    assert await names(await walk(ns.root, "foo")) == [b"bar"]


async def test_missing_destinations_get_stub_directories_not_written_below() -> None:
    deep = TmpFs().root
    ns = await namespace(("/some/very/deep/path", deep, {}))
    some = await walk(ns.root, "some")
    assert stat.S_ISDIR((await some.getattr()).mode)
    assert await names(some) == [b"very"]
    await expect_errno(errno.EROFS, some.mkdir(b"x", 0o755, ROOT))
    await expect_errno(errno.EROFS, some.create(b"x", 0o644, ROOT))
    # The layer below never got the stub: only the root mount's own names exist there.
    inner = ns.mount_of(ns.root).root
    await expect_errno(errno.ENOENT, inner.lookup(b"some"))
    again = await walk(ns.root, "some")
    assert again.ino == some.ino  # one stub per tree node, stable number


async def test_mount_points_busy_and_cross_mount_exdev() -> None:
    ns = await namespace(("/mnt", TmpFs().root, {}))
    await expect_errno(errno.EBUSY, ns.root.rmdir(b"mnt"))
    await expect_errno(errno.EBUSY, ns.root.rename(b"mnt", ns.root, b"other"))
    await expect_errno(errno.EEXIST, ns.root.mkdir(b"mnt", 0o755, ROOT))
    await ns.root.create(b"f", 0o644, ROOT)
    mnt = await ns.root.lookup(b"mnt")
    await expect_errno(errno.EXDEV, ns.root.rename(b"f", mnt, b"f"))
    await expect_errno(errno.EXDEV, mnt.link(b"f", await ns.root.lookup(b"f")))
    await ns.root.rename(b"f", await ns.root.lookup(b"tmp"), b"g")  # same mount: fine


async def test_readonly_mount_refuses_writes_and_noexec_nodev_nosuid() -> None:
    data = TmpFs().root
    await populate(data, {"f": b"x"})
    f = await data.lookup(b"f")
    await f.setattr(SetAttr(mode=0o4755))
    ns = await namespace(("/ro", data, {"readonly": True}),
                         ("/flags", data, {"noexec": True, "nodev": True, "nosuid": True}))
    ro = await ns.root.lookup(b"ro")
    rof = await ro.lookup(b"f")
    await expect_errno(errno.EROFS, rof.open(os.O_WRONLY))
    await expect_errno(errno.EROFS, rof.setattr(SetAttr(mode=0o600)))
    await expect_errno(errno.EROFS, rof.setxattr(b"user.a", b"1"))
    await expect_errno(errno.EROFS, ro.create(b"g", 0o644, ROOT))
    await expect_errno(errno.EROFS, ro.unlink(b"f"))
    assert (await rof.getattr()).mode & stat.S_ISUID
    flags = await ns.root.lookup(b"flags")
    ff = await flags.lookup(b"f")
    assert not (await ff.getattr()).mode & stat.S_ISUID
    await expect_errno(errno.EACCES, ff.open(os.O_RDONLY | 0o40))
    await (await ff.open(os.O_RDONLY)).release()
    await expect_errno(errno.EPERM, flags.mknod(b"d", stat.S_IFCHR | 0o600, 259, ROOT))


async def test_inode_numbers_distinct_across_mounts_and_root_keeps_its_own() -> None:
    a, b = TmpFs().root, TmpFs().root  # both number their inodes from 1
    await populate(a, {"x": b"a"})
    await populate(b, {"x": b"b"})
    ns = await namespace(("/a", a, {}), ("/b", b, {}))
    ax = await walk(ns.root, "a/x")
    bx = await walk(ns.root, "b/x")
    assert ax.ino != bx.ino and ax.ino >= MOUNT_INO_BASE and bx.ino >= MOUNT_INO_BASE
    assert (await ax.getattr()).ino == ax.ino
    passwd = await walk(ns.root, "etc/passwd")
    assert isinstance(passwd, MountedInode)
    assert passwd.ino == passwd.inner.ino  # the root mount's numbers are its own
    assert ax.ino == (await walk(ns.root, "a/x")).ino


async def test_file_overlay_copies_up_and_keeps_the_lower() -> None:
    lower_fs = TmpFs()
    await populate(lower_fs.root, {"hostname": b"host\n"})
    lower = await lower_fs.root.lookup(b"hostname")
    f = FileOverlay(lower, TmpFs().root)
    assert await read_all(f) == b"host\n"
    ino = f.ino
    await write_at(f, 0, b"sandbox\n", os.O_WRONLY | os.O_TRUNC)
    assert await read_all(f) == b"sandbox\n"
    assert await read_all(lower) == b"host\n"
    assert (await f.getattr()).ino == ino
    await expect_errno(errno.ENOTDIR, f.lookup(b"x"))


async def test_file_overlay_inside_a_directory_overlay_namespace() -> None:
    lower_fs = TmpFs()
    await populate(lower_fs.root, {"etc/": None, "etc/hostname": b"image\n"})
    overlay = OverlayFs(TmpFs().root, [lower_fs.root])
    host = TmpFs()
    await populate(host.root, {"hostname": b"host\n"})
    bind = FileOverlay(await host.root.lookup(b"hostname"), TmpFs().root)
    ns = MountNamespace(Mount(0, "/", overlay.root))
    ns.add(Mount(1, "/etc/hostname", bind))
    f = await walk(ns.root, "etc/hostname")
    assert await read_all(f) == b"host\n"
    await expect_errno(errno.EBUSY, (await ns.root.lookup(b"etc")).unlink(b"hostname"))


async def test_dev_tree_contents() -> None:
    dev = TmpFs().root
    await populate_dev(dev)
    for name, (major, minor) in DEVICES.items():
        a = await (await dev.lookup(name.encode())).getattr()
        assert stat.S_ISCHR(a.mode) and a.rdev == os.makedev(major, minor)
    assert await (await dev.lookup(b"ptmx")).readlink() == b"pts/ptmx"
    assert stat.S_IMODE((await (await dev.lookup(b"shm")).getattr()).mode) == 0o1777
