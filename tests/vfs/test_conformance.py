"""The VFS conformance suite: every test runs on tmpfs, an overlay over an
empty lower, and an overlay whose lower holds the seed (copy-up paths)."""

from __future__ import annotations

import errno
import os
import stat

from sandboxfs.vfs import Creds, Inode, SetAttr, now_ns

from .conftest import MakeFs
from .helpers import ROOT, expect_errno, names, read_all, walk, write_at

SEED: dict[str, object] = {
    "file": b"hello world",
    "other": b"other body",
    "dir/": None,
    "dir/inner": b"inner",
    "dir/sub/": None,
    "empty/": None,
    "link": ("symlink", "file"),
    "hl1": b"shared",
    "hl2": ("hardlink", "hl1"),
    "fifo": ("fifo",),
    "xfile": b"x",
}


async def make(make_fs: MakeFs) -> Inode:
    """A filesystem holding SEED (in the lower for overlay-lower) plus one xattr."""
    root = await make_fs({**SEED, "xfile#": ("xattr", "user.seed", b"seeded")})
    return root


# -- files ---------------------------------------------------------------


async def test_create_write_read(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    f = await root.create(b"new", 0o640, Creds(12, 34))
    a = await f.getattr()
    assert stat.S_ISREG(a.mode) and stat.S_IMODE(a.mode) == 0o640
    assert (a.uid, a.gid, a.size, a.nlink) == (12, 34, 0, 1)
    h = await f.open(os.O_RDWR)
    assert await h.write(0, b"abc") == 3
    assert await h.write(10, b"xyz") == 3
    assert await h.read(0, 100) == b"abc" + b"\0" * 7 + b"xyz"
    assert await h.read(12, 10) == b"z"
    assert await h.read(100, 10) == b""
    await h.release()
    a = await f.getattr()
    assert a.size == 13 and a.blocks >= 8
    assert await root.lookup(b"new") is f or (await (await root.lookup(b"new")).getattr()).ino \
        == a.ino
    await expect_errno(errno.EEXIST, root.create(b"new", 0o644, ROOT))
    await expect_errno(errno.EEXIST, root.create(b"file", 0o644, ROOT))
    await expect_errno(errno.EEXIST, root.mkdir(b"dir", 0o755, ROOT))


async def test_write_seeded_file(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    f = await walk(root, "file")
    before = await f.getattr()
    assert await read_all(f) == b"hello world"
    assert await write_at(f, 6, b"WORLD", os.O_RDWR) == 5
    assert await read_all(await walk(root, "file")) == b"hello WORLD"
    after = await f.getattr()
    assert after.ino == before.ino and after.size == 11
    assert after.mtime_ns >= before.mtime_ns and after.ctime_ns >= before.ctime_ns


async def test_append_and_trunc(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    f = await walk(root, "file")
    h = await f.open(os.O_WRONLY | os.O_APPEND)
    await h.write(0, b"!")
    await h.release()
    assert await read_all(f) == b"hello world!"
    other = await walk(root, "other")
    h = await other.open(os.O_WRONLY | os.O_TRUNC)
    assert (await other.getattr()).size == 0
    await h.write(0, b"new")
    await h.release()
    assert await read_all(other) == b"new"


async def test_read_only_handle_refuses_writes(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    f = await walk(root, "file")
    h = await f.open(os.O_RDONLY)
    await expect_errno(errno.EBADF, h.write(0, b"x"))
    await h.release()
    assert await read_all(f) == b"hello world"


async def test_truncate(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    f = await walk(root, "file")
    t0 = now_ns()
    a = await f.setattr(SetAttr(size=5))
    assert a.size == 5 and a.mtime_ns >= t0 and a.ctime_ns >= t0
    assert await read_all(f) == b"hello"
    a = await f.setattr(SetAttr(size=8))
    assert await read_all(f) == b"hello\0\0\0"
    await expect_errno(errno.EISDIR, (await walk(root, "dir")).setattr(SetAttr(size=0)))
    await expect_errno(errno.EISDIR, (await walk(root, "dir")).open(os.O_RDONLY))


async def test_lookup_errors(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    await expect_errno(errno.ENOENT, root.lookup(b"missing"))
    await expect_errno(errno.ENOTDIR, (await walk(root, "file")).lookup(b"x"))
    await expect_errno(errno.ENOTDIR, (await walk(root, "file")).readdir())
    await expect_errno(errno.ENOTDIR, (await walk(root, "file")).create(b"x", 0o644, ROOT))


# -- directories ---------------------------------------------------------


async def test_mkdir_rmdir_unlink(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    d = await root.mkdir(b"newdir", 0o750, Creds(5, 6))
    a = await d.getattr()
    assert stat.S_ISDIR(a.mode) and stat.S_IMODE(a.mode) == 0o750 and (a.uid, a.gid) == (5, 6)
    await expect_errno(errno.ENOTEMPTY, root.rmdir(b"dir"))
    await expect_errno(errno.ENOTDIR, root.rmdir(b"file"))
    await expect_errno(errno.EISDIR, root.unlink(b"dir"))
    await expect_errno(errno.ENOENT, root.unlink(b"missing"))
    await expect_errno(errno.ENOENT, root.rmdir(b"missing"))
    await root.rmdir(b"newdir")
    await root.rmdir(b"empty")
    await expect_errno(errno.ENOENT, root.lookup(b"empty"))
    dir_ = await walk(root, "dir")
    await dir_.unlink(b"inner")
    await dir_.rmdir(b"sub")
    assert await names(dir_) == []
    await root.rmdir(b"dir")
    await expect_errno(errno.ENOENT, root.lookup(b"dir"))
    await expect_errno(errno.ENOENT, dir_.create(b"late", 0o644, ROOT))
    assert sorted(await names(root)) == sorted(
        [b"file", b"other", b"link", b"hl1", b"hl2", b"fifo", b"xfile"])
    # Names come back as new, empty entries.
    d = await root.mkdir(b"dir", 0o755, ROOT)
    assert await names(d) == []
    f = await root.create(b"empty", 0o644, ROOT)
    assert await read_all(f) == b""


async def test_dir_nlink(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    d = await root.mkdir(b"n", 0o755, ROOT)
    assert (await d.getattr()).nlink == 2
    await d.mkdir(b"a", 0o755, ROOT)
    await d.mkdir(b"b", 0o755, ROOT)
    await d.create(b"f", 0o644, ROOT)
    assert (await d.getattr()).nlink == 4
    await d.rmdir(b"a")
    assert (await d.getattr()).nlink == 3
    # Merged directories report 1, as overlayfs does.
    assert (await root.getattr()).nlink in (1, 2 + len([
        e for e in await root.readdir() if stat.S_ISDIR(e.attr.mode)]))


async def test_readdir(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    entries = await root.readdir()
    assert sorted(e.name for e in entries) == sorted(
        [b"file", b"other", b"dir", b"empty", b"link", b"hl1", b"hl2", b"fifo", b"xfile"])
    for e in entries:
        a = await e.inode.getattr()
        assert a == e.attr, e.name
        assert (await root.lookup(e.name)).ino == e.inode.ino
    assert [e.name for e in await root.readdir()] == [e.name for e in entries]
    assert [e.name for e in await (await walk(root, "dir")).readdir()] in (
        [b"inner", b"sub"], [b"sub", b"inner"])


async def test_setgid_directory(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    d = await root.mkdir(b"sg", 0o2775, Creds(0, 77))
    assert (await d.getattr()).mode & stat.S_ISGID
    f = await d.create(b"f", 0o644, Creds(1, 2))
    assert (await f.getattr()).gid == 77
    sub = await d.mkdir(b"sub", 0o755, Creds(1, 2))
    a = await sub.getattr()
    assert a.gid == 77 and a.mode & stat.S_ISGID


# -- rename --------------------------------------------------------------


async def test_rename_file(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    f = await walk(root, "file")
    ino = (await f.getattr()).ino
    dir_ = await walk(root, "dir")
    await root.rename(b"file", dir_, b"moved")
    await expect_errno(errno.ENOENT, root.lookup(b"file"))
    moved = await dir_.lookup(b"moved")
    assert (await moved.getattr()).ino == ino
    assert await read_all(moved) == b"hello world"
    assert b"file" not in await names(root)
    assert b"moved" in await names(dir_)
    # Within one directory, and back.
    await dir_.rename(b"moved", dir_, b"again")
    await dir_.rename(b"again", root, b"file")
    assert await read_all(await walk(root, "file")) == b"hello world"


async def test_rename_over_file(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    await root.rename(b"file", root, b"other")
    assert await read_all(await walk(root, "other")) == b"hello world"
    assert sorted(await names(root)).count(b"other") == 1
    assert b"file" not in await names(root)
    new = await root.create(b"fresh", 0o644, ROOT)
    await write_at(new, 0, b"fresh")
    await root.rename(b"fresh", await walk(root, "dir"), b"inner")
    assert await read_all(await walk(root, "dir/inner")) == b"fresh"


async def test_rename_type_errors(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    await expect_errno(errno.EISDIR, root.rename(b"file", root, b"empty"))
    a = await root.mkdir(b"a", 0o755, ROOT)
    await expect_errno(errno.ENOTDIR, root.rename(b"a", root, b"file"))
    await expect_errno(errno.ENOTEMPTY, root.rename(b"a", root, b"dir"))
    await expect_errno(errno.ENOENT, root.rename(b"missing", root, b"x"))
    sub = await a.mkdir(b"sub", 0o755, ROOT)
    await expect_errno(errno.EINVAL, root.rename(b"a", sub, b"x"))
    await expect_errno(errno.EINVAL, root.rename(b"a", a, b"x"))
    await expect_errno(errno.EINVAL, root.rename(b"file", root, b"x", 4))  # RENAME_WHITEOUT
    await expect_errno(errno.EINVAL, root.rename(b"file", root, b"x", 3))


async def test_rename_directories(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    a = await root.mkdir(b"a", 0o755, ROOT)
    await write_at(await a.create(b"f", 0o644, ROOT), 0, b"in a")
    b = await root.mkdir(b"b", 0o755, ROOT)
    await root.rename(b"a", b, b"a2")
    assert await read_all(await walk(root, "b/a2/f")) == b"in a"
    assert (await b.getattr()).nlink == 3
    c = await root.mkdir(b"c", 0o755, ROOT)
    await b.rename(b"a2", root, b"c")  # over an empty directory
    assert await read_all(await walk(root, "c/f")) == b"in a"
    assert (await b.getattr()).nlink == 2
    await expect_errno(errno.ENOENT, c.create(b"x", 0o644, ROOT))


async def test_rename_same_inode_and_noreplace(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    await root.rename(b"hl1", root, b"hl2")  # two names of one file: nothing happens
    assert b"hl1" in await names(root) and b"hl2" in await names(root)
    await root.rename(b"file", root, b"file")
    assert await read_all(await walk(root, "file")) == b"hello world"
    await expect_errno(errno.EEXIST, root.rename(b"file", root, b"other", 1))
    await root.rename(b"file", root, b"brand-new", 1)
    assert await read_all(await walk(root, "brand-new")) == b"hello world"


async def test_rename_exchange(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    await root.rename(b"file", root, b"other", 2)
    assert await read_all(await walk(root, "file")) == b"other body"
    assert await read_all(await walk(root, "other")) == b"hello world"
    await expect_errno(errno.ENOENT, root.rename(b"file", root, b"missing", 2))
    x = await root.mkdir(b"x", 0o755, ROOT)
    await x.create(b"in-x", 0o644, ROOT)
    await root.rename(b"x", root, b"file", 2)
    assert await names(await walk(root, "file")) == [b"in-x"]
    assert stat.S_ISREG((await (await walk(root, "x")).getattr()).mode)


async def test_rename_times(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    dir_ = await walk(root, "dir")
    t0 = now_ns()
    await root.rename(b"other", dir_, b"o")
    for node in (root, dir_):
        a = await node.getattr()
        assert a.mtime_ns >= t0 and a.ctime_ns >= t0
    assert (await (await walk(root, "dir/o")).getattr()).ctime_ns >= t0


# -- links ---------------------------------------------------------------


async def test_hard_links(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    f = await walk(root, "file")
    t0 = now_ns()
    got = await root.link(b"file2", f)
    assert got.ino == f.ino
    a = await f.getattr()
    assert a.nlink == 2 and a.ctime_ns >= t0
    await write_at(await walk(root, "file2"), 0, b"J", os.O_RDWR)
    assert await read_all(await walk(root, "file")) == b"Jello world"
    assert (await (await walk(root, "file")).getattr()).ino == a.ino
    await root.unlink(b"file")
    assert (await (await walk(root, "file2")).getattr()).nlink == 1
    await expect_errno(errno.EPERM, root.link(b"d2", await walk(root, "dir")))
    await expect_errno(errno.EEXIST, root.link(b"other", await walk(root, "file2")))
    h1, h2 = await walk(root, "hl1"), await walk(root, "hl2")
    assert h1.ino == h2.ino and (await h1.getattr()).nlink == 2


async def test_seeded_hard_links_share_writes(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    await write_at(await walk(root, "hl1"), 0, b"SH", os.O_RDWR)
    assert await read_all(await walk(root, "hl2")) == b"SHared"
    a1, a2 = await (await walk(root, "hl1")).getattr(), await (await walk(root, "hl2")).getattr()
    assert a1.ino == a2.ino and a1.nlink == a2.nlink == 2
    await root.unlink(b"hl1")
    assert (await (await walk(root, "hl2")).getattr()).nlink == 1
    assert await read_all(await walk(root, "hl2")) == b"SHared"


async def test_unlinked_open_file_keeps_data(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    for name in (b"file", b"other"):
        f = await root.lookup(name)
        h = await f.open(os.O_RDWR if name == b"other" else os.O_RDONLY)
        await root.unlink(name)
        await expect_errno(errno.ENOENT, root.lookup(name))
        assert await h.read(0, 100) in (b"hello world", b"other body")
        if name == b"other":
            await h.write(0, b"O")
            assert await h.read(0, 100) == b"Other body"
        await h.release()


async def test_symlinks(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    s = await root.symlink(b"s", b"some/target", Creds(3, 4))
    a = await s.getattr()
    assert stat.S_ISLNK(a.mode) and a.size == len(b"some/target") and (a.uid, a.gid) == (3, 4)
    assert await s.readlink() == b"some/target"
    assert await (await walk(root, "link")).readlink() == b"file"
    await expect_errno(errno.EINVAL, (await walk(root, "file")).readlink())
    await expect_errno(errno.EEXIST, root.symlink(b"link", b"x", ROOT))
    await root.unlink(b"link")
    await expect_errno(errno.ENOENT, root.lookup(b"link"))


async def test_mknod(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    kinds = {b"p": (stat.S_IFIFO, 0), b"s": (stat.S_IFSOCK, 0),
             b"c": (stat.S_IFCHR, os.makedev(1, 3)), b"b": (stat.S_IFBLK, os.makedev(8, 1))}
    for name, (kind, rdev) in kinds.items():
        n = await root.mknod(name, kind | 0o600, rdev, ROOT)
        a = await n.getattr()
        assert stat.S_IFMT(a.mode) == kind and a.rdev == rdev and stat.S_IMODE(a.mode) == 0o600
    f = await root.mknod(b"r", stat.S_IFREG | 0o644, 0, ROOT)
    assert stat.S_ISREG((await f.getattr()).mode)
    assert stat.S_ISFIFO((await (await walk(root, "fifo")).getattr()).mode)
    await root.unlink(b"fifo")


# -- attributes and xattrs -----------------------------------------------


async def test_setattr(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    for path in ("file", "dir", "link", "fifo"):
        node = await walk(root, path)
        before = await node.getattr()
        t0 = now_ns()
        changes = SetAttr(uid=7, gid=8, atime_ns=1_000, mtime_ns=2_000)
        if path != "link":
            changes = SetAttr(mode=0o4711, uid=7, gid=8, atime_ns=1_000, mtime_ns=2_000)
        a = await node.setattr(changes)
        assert (a.uid, a.gid, a.atime_ns, a.mtime_ns) == (7, 8, 1_000, 2_000), path
        assert a.ctime_ns >= t0 and a.ino == before.ino
        assert stat.S_IFMT(a.mode) == stat.S_IFMT(before.mode)
        if path != "link":
            assert stat.S_IMODE(a.mode) == 0o4711
        assert await node.getattr() == a
    assert await read_all(await walk(root, "file")) == b"hello world"


async def test_xattrs(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    x = await walk(root, "xfile")
    assert await x.getxattr(b"user.seed") == b"seeded"
    assert await x.listxattr() == [b"user.seed"]
    await x.setxattr(b"user.a", b"1")
    assert sorted(await x.listxattr()) == [b"user.a", b"user.seed"]
    await expect_errno(errno.EEXIST, x.setxattr(b"user.a", b"2", 1))
    await expect_errno(errno.ENODATA, x.setxattr(b"user.b", b"2", 2))
    await x.setxattr(b"user.a", b"3", 2)
    assert await x.getxattr(b"user.a") == b"3"
    await expect_errno(errno.ENODATA, x.getxattr(b"user.none"))
    await expect_errno(errno.ERANGE, x.setxattr(b"user." + b"n" * 251, b""))
    await expect_errno(errno.E2BIG, x.setxattr(b"user.big", b"v" * 65537))
    await x.setxattr(b"user.max", b"v" * 65536)
    t0 = now_ns()
    await x.removexattr(b"user.seed")
    assert (await x.getattr()).ctime_ns >= t0
    await expect_errno(errno.ENODATA, x.removexattr(b"user.seed"))
    assert sorted(await x.listxattr()) == [b"user.a", b"user.max"]
    d = await walk(root, "dir")
    await d.setxattr(b"trusted.x", b"dir")
    assert await d.getxattr(b"trusted.x") == b"dir"
    assert await names(d) in ([b"inner", b"sub"], [b"sub", b"inner"])


async def test_entry_times(make_fs: MakeFs) -> None:
    root = await make(make_fs)
    d = await walk(root, "dir")
    f_before = await (await walk(root, "dir/inner")).getattr()
    t0 = now_ns()
    await d.create(b"c", 0o644, ROOT)
    a = await d.getattr()
    assert a.mtime_ns >= t0 and a.ctime_ns >= t0
    t1 = now_ns()
    await d.unlink(b"c")
    assert (await d.getattr()).mtime_ns >= t1
    f_after = await (await walk(root, "dir/inner")).getattr()
    assert (f_after.mtime_ns, f_after.size, f_after.ino) == (
        f_before.mtime_ns, f_before.size, f_before.ino)


async def test_statfs(make_fs: MakeFs) -> None:
    root = await make_fs(None, size_limit=1 << 20, inode_limit=100)
    st = await root.statfs()
    assert st.bsize == 4096 and st.blocks == 256 and st.files == 100
    assert st.bfree == 256 and 0 < st.ffree < 100
    await write_at(await root.create(b"f", 0o644, ROOT), 0, b"x" * 5000)
    st2 = await root.statfs()
    assert st2.bfree == 254 and st2.ffree == st.ffree - 1
    d = await root.mkdir(b"d", 0o755, ROOT)
    assert (await d.statfs()).ffree == st2.ffree - 1  # any inode answers for its filesystem


async def test_enospc_keeps_written_data(make_fs: MakeFs) -> None:
    root = await make_fs(None, size_limit=64 << 10)
    keep = await root.create(b"keep", 0o644, ROOT)
    await write_at(keep, 0, b"kept")
    f = await root.create(b"fill", 0o644, ROOT)
    h = await f.open(os.O_WRONLY)
    assert await h.write(0, b"a" * 40_000) == 40_000
    n = await h.write(40_000, b"b" * 40_000)
    assert 0 < n < 40_000
    await expect_errno(errno.ENOSPC, h.write(40_000 + n, b"c"))
    await h.release()
    data = await read_all(f)
    assert data == b"a" * 40_000 + b"b" * n
    assert await read_all(keep) == b"kept"
    # Bigger than the whole upper: EFBIG (holes are charged), as a file past the size limit.
    await expect_errno(errno.EFBIG, f.setattr(SetAttr(size=1 << 20)))
    await expect_errno(errno.ENOSPC, f.setattr(SetAttr(size=63 << 10)))
    assert await read_all(f) == data
