"""Escape matrix: nothing a client sends may read or change a byte outside the root."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from conftest import Procs, gofer_client, tree_hash

from gofer.client import Client


@pytest.fixture
def outside(sample: Path) -> Iterator[Path]:
    out = sample.parent / "outside"
    (out / "dir").mkdir()
    (out / "dir" / "f").write_bytes(b"OUTSIDE")
    before = tree_hash(out)
    yield out
    assert tree_hash(out) == before, "a byte outside the root changed"


async def refused(coro: object, *errnos: int) -> int:
    with pytest.raises(OSError) as info:
        await coro  # type: ignore[misc]
    assert info.value.errno in errnos, info.value
    return int(info.value.errno)


async def assert_not_readable(c: Client, root: int, names: list[bytes]) -> None:
    """Walking to `names` and opening must fail somewhere; never return outside bytes."""
    try:
        fid, _ = await c.walk(root, names)
    except OSError as exc:
        assert exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EINVAL)
        return
    try:
        await refused(c.lopen(fid, os.O_RDONLY), errno.ELOOP, errno.EPERM)
    finally:
        await c.clunk(fid)


async def test_symlink_to_slash(procs: Procs, sample: Path, outside: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        await assert_not_readable(c, root, [b"to_root", b"etc", b"passwd"])
        await refused(c.walk_getattr(root, [b"to_root", b"etc"]), errno.ENOTDIR)
        link, qids = await c.walk(root, [b"to_root"])
        assert qids[0].type == 0x02  # the symlink itself, not what it points at
        assert await c.readlink(link) == b"/"
        await refused(c.walk(link, [b"etc"]), errno.ENOTDIR)
        await refused(c.lopen(link, os.O_RDONLY | os.O_DIRECTORY), errno.ELOOP)
        await refused(c.mkdir(link, b"x", 0o755, 0), errno.ENOTDIR)
        await refused(c.lcreate(link, b"x", os.O_RDWR, 0o644, 0), errno.ENOTDIR)


async def test_dotdot_components(procs: Procs, sample: Path, outside: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        await refused(c.walk(root, [b".."]), errno.ENOENT)
        await refused(c.walk(root, [b"sub", b"..", b".."]), errno.ENOENT)
        await refused(c.walk(root, [b"../outside"]), errno.EINVAL)
        await refused(c.walk(root, [b"."]), errno.ENOENT)
        await refused(c.walk(root, [b""]), errno.EINVAL)
        await refused(c.walk(root, [b"a\0b"]), errno.EINVAL)
        await refused(c.walk_getattr(root, [b"sub", b".."]), errno.ENOENT)
        await refused(c.mkdir(root, b"..", 0o755, 0), errno.EINVAL)
        await refused(c.lcreate(root, b"../outside/x", os.O_RDWR, 0o644, 0), errno.EINVAL)
        await refused(c.symlink(root, b"../evil", b"x", 0), errno.EINVAL)
        await refused(c.unlinkat(root, b"../outside/secret"), errno.EINVAL)
        await refused(c.renameat(root, b"hello.txt", root, b"../outside/stolen"), errno.EINVAL)


async def test_symlink_chains(procs: Procs, sample: Path, outside: Path) -> None:
    os.symlink(str(outside), sample / "abs_out")
    os.symlink("../outside", sample / "rel_out")
    os.symlink("rel_out", sample / "chain1")
    os.symlink("chain1", sample / "chain2")
    os.symlink("../../outside/secret", sample / "sub" / "rel_secret")
    os.symlink(str(outside / "secret"), sample / "abs_secret")
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        for names in ([b"abs_out", b"secret"], [b"rel_out", b"secret"],
                      [b"chain2", b"secret"], [b"chain2", b"dir", b"f"],
                      [b"sub", b"rel_secret"], [b"abs_secret"]):
            await assert_not_readable(c, root, names)


async def test_swapped_symlink_race(procs: Procs, sample: Path, outside: Path) -> None:
    inside = sample / "swap"
    inside.mkdir()
    (inside / "f").write_bytes(b"INSIDE!")
    spare = sample / "swap.real"
    stop = threading.Event()

    def swapper() -> None:
        tmp_link = sample / "swap.link"
        while not stop.is_set():
            os.symlink(str(outside / "dir"), tmp_link)
            os.rename(inside, spare)
            os.rename(tmp_link, inside)  # swap is now a symlink to outside/dir
            os.rename(inside, tmp_link)
            os.rename(spare, inside)  # and a real directory again
            os.unlink(tmp_link)

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    seen: set[bytes] = set()
    try:
        async with gofer_client(procs, sample) as c:
            root, _ = await c.attach()
            with trio.move_on_after(3):
                while True:
                    try:
                        fid, _ = await c.walk(root, [b"swap", b"f"])
                    except OSError:
                        continue
                    try:
                        _, _, fd = await c.lopen(fid, os.O_RDONLY)
                        seen.add(await c.read(fid, 0, 100))
                        if fd is not None:
                            seen.add(os.pread(fd, 100, 0))
                            os.close(fd)
                    except OSError:
                        pass
                    finally:
                        await c.clunk(fid)
    finally:
        stop.set()
        t.join()
    assert seen == {b"INSIDE!"}


async def test_hardlink_and_rename_targets_outside(procs: Procs, sample: Path,
                                                   outside: Path) -> None:
    os.symlink(str(outside), sample / "out_dir")
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        f, _ = await c.walk(root, [b"hello.txt"])
        out, _ = await c.walk(root, [b"out_dir"])
        await refused(c.link(out, f, b"stolen"), errno.ENOTDIR)
        await refused(c.link(root, f, b"../outside/stolen"), errno.EINVAL)
        await refused(c.renameat(root, b"hello.txt", out, b"stolen"), errno.ENOTDIR)
        await refused(c.renameat(out, b"secret", root, b"got"), errno.ENOTDIR)
        await refused(c.unlinkat(out, b"secret"), errno.ENOTDIR)
        await refused(c.symlink(out, b"x", b"y", 0), errno.ENOTDIR)
        # hardlinking the symlink itself links the symlink, not its target
        await c.link(root, out, b"out_dir2")
        assert os.readlink(sample / "out_dir2") == str(outside)
        await refused(c.setattr(out, mode=0o777), errno.EOPNOTSUPP, errno.EPERM)
        assert not (sample / "got").exists()


async def test_proc_magic_links_in_tree(procs: Procs, sample: Path, outside: Path) -> None:
    fd = os.open(outside / "secret", os.O_RDONLY)
    try:
        os.symlink(f"/proc/self/fd/{fd}", sample / "magic_fd")
        os.symlink("/proc/self/root", sample / "magic_root")
        os.symlink("/proc/self/cwd", sample / "magic_cwd")
        for n in range(3, 12):
            os.symlink(f"/proc/self/fd/{n}", sample / f"fd{n}")
        async with gofer_client(procs, sample) as c:
            root, _ = await c.attach()
            await assert_not_readable(c, root, [b"magic_fd"])
            await assert_not_readable(c, root, [b"magic_root", b"etc", b"passwd"])
            await assert_not_readable(c, root, [b"magic_cwd", b"gofer"])
            for n in range(3, 12):
                await assert_not_readable(c, root, [f"fd{n}".encode()])
                await assert_not_readable(c, root, [f"fd{n}".encode(), b"secret"])
    finally:
        os.close(fd)
