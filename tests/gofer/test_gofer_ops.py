"""Client against a real gofer process over a socketpair: every operation, both dialects."""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import trio
from conftest import Procs, connect, gofer_argv, gofer_client, spawn_listen, spawn_pair

from gofer.client import open_client


async def test_attach_walk_getattr_readdir(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        assert c.extensions and c.version == "9P2000.L.sandboxfs.1" and c.msize == 1 << 20
        root, qid = await c.attach()
        assert qid.path == os.stat(sample).st_ino and qid.type == 0x80
        fid, qids, stats = await c.walk_getattr(root, [b"sub", b"inner.txt"])
        host = os.stat(sample / "sub" / "inner.txt")
        assert [q.path for q in qids] == [os.stat(sample / "sub").st_ino, host.st_ino]
        s = stats[-1]
        assert (s.size, s.mode, s.dev, s.mtime_ns, s.nlink) == (
            host.st_size, host.st_mode, host.st_dev, host.st_mtime_ns, host.st_nlink)
        assert (await c.getattr(fid)).size == host.st_size
        link, _ = await c.walk(root, [b"link"])
        assert stat.S_ISLNK((await c.getattr(link)).mode)
        assert await c.readlink(link) == b"hello.txt"
        d, _ = await c.walk(root, [])
        await c.lopen(d, os.O_RDONLY | os.O_DIRECTORY)
        ents = await c.readdir_all(d)
        assert sorted(e.name for e in ents) == sorted(os.fsencode(n) for n in os.listdir(sample))
        for e in ents:
            h = os.lstat(sample / os.fsdecode(e.name))
            assert e.stat is not None and e.stat.size == h.st_size and e.qid.path == h.st_ino
        batch = await c.getattr_batch([root, fid, 4242])
        assert batch[2] == errno.EBADF and not isinstance(batch[0], int)
        with pytest.raises(OSError) as info:
            await c.walk(root, [b"nope"])
        assert info.value.errno == errno.ENOENT
        for f in (fid, link, d, root):
            await c.clunk(f)


async def test_plain_dialect_has_no_extensions(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample, extensions=False) as c:
        assert not c.extensions and c.version == "9P2000.L"
        root, _ = await c.attach()
        fid, _, stats = await c.walk_getattr(root, [b"sub", b"inner.txt"])
        assert stats[1].size == 6 and stats[1].dev == 0 and len(stats) == 2
        _, _, fd = await c.lopen(fid, os.O_RDONLY)
        assert fd is None
        assert await c.read(fid, 0, 100) == b"inner\n"
        d, _ = await c.walk(root, [])
        await c.lopen(d, os.O_RDONLY)
        ents = await c.readdir_all(d)
        assert {e.name for e in ents} == {os.fsencode(n) for n in os.listdir(sample)}
        assert all(e.stat is None for e in ents)
        res = await c.getattr_batch([root, 777])
        assert res[1] == errno.EBADF


async def test_fd_donation_over_unix_socket(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        fid, _ = await c.walk(root, [b"big.bin"])
        _, iounit, fd = await c.lopen(fid, os.O_RDONLY)
        assert fd is not None and iounit > 0
        try:
            assert os.pread(fd, 1000, 5000) == (sample / "big.bin").read_bytes()[5000:6000]
        finally:
            os.close(fd)
        d, _ = await c.walk(root, [b"sub"])
        _, _, dfd = await c.lopen(d, os.O_RDONLY)
        assert dfd is None  # directories are never donated
        cf, _ = await c.walk(root, [])
        _, _, wfd = await c.lcreate(cf, b"new.txt", os.O_RDWR | os.O_EXCL, 0o600, 0)
        assert wfd is not None
        os.pwrite(wfd, b"via donated fd", 0)
        os.close(wfd)
        assert (sample / "new.txt").read_bytes() == b"via donated fd"
        # many opens in flight at once: each fd belongs to its own reply
        files = [b"hello.txt", b"empty", b"big.bin"] * 10

        async def check(name: bytes) -> None:
            f, _ = await c.walk(root, [name])
            _, _, xfd = await c.lopen(f, os.O_RDONLY)
            assert xfd is not None
            try:
                assert os.fstat(xfd).st_ino == os.stat(sample / os.fsdecode(name)).st_ino
            finally:
                os.close(xfd)
            await c.clunk(f)

        async with trio.open_nursery() as n:
            for name in files:
                n.start_soon(check, name)


async def test_no_donation_over_tcp(procs: Procs, sample: Path) -> None:
    addr, _ = spawn_listen(procs, ["--root", str(sample)], "tcp:127.0.0.1:0")
    async with open_client(connect(addr)) as c:
        assert c.extensions
        root, _ = await c.attach()
        fid, _ = await c.walk(root, [b"hello.txt"])
        _, _, fd = await c.lopen(fid, os.O_RDONLY)
        assert fd is None
        assert await c.read(fid, 0, 100) == b"hello world\n"


async def test_mutations(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        await c.mkdir(root, b"newdir", 0o750, 0)
        assert stat.S_IMODE(os.stat(sample / "newdir").st_mode) == 0o750
        await c.symlink(root, b"sl", b"../../anything", 0)
        assert os.readlink(sample / "sl") == "../../anything"
        await c.mknod(root, b"fifo", stat.S_IFIFO | 0o600, 0, 0, 0)
        assert stat.S_ISFIFO(os.lstat(sample / "fifo").st_mode)
        with pytest.raises(OSError) as info:
            await c.mknod(root, b"dev", stat.S_IFCHR | 0o600, 1, 3, 0)
        assert info.value.errno == errno.EPERM
        f, _ = await c.walk(root, [b"hello.txt"])
        await c.link(root, f, b"hard")
        assert os.stat(sample / "hard").st_ino == os.stat(sample / "hello.txt").st_ino
        await c.renameat(root, b"hard", root, b"hard2")
        assert (sample / "hard2").exists() and not (sample / "hard").exists()
        await c.unlinkat(root, b"hard2")
        await c.unlinkat(root, b"newdir", 0x200)
        assert not (sample / "newdir").exists()
        await c.setattr(f, mode=0o600, size=5, mtime_ns=1_000_000_000_123, atime_ns=5 * 10**9)
        st = os.stat(sample / "hello.txt")
        assert (stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, st.st_atime_ns) == (
            0o600, 5, 1_000_000_000_123, 5 * 10**9)
        w, _ = await c.walk(root, [b"hello.txt"])
        await c.lopen(w, os.O_RDWR)
        big = os.urandom(3 << 20)  # several Twrites, some through the thread path
        assert await c.write(w, 0, big) == len(big)
        await c.fsync(w)
        assert (sample / "hello.txt").read_bytes() == big
        got = b""
        while len(got) < len(big):
            chunk = await c.read(w, len(got), 1 << 20)
            assert chunk
            got += chunk
        assert got == big
        await c.setxattr(f, b"user.k", b"v" * 100)
        assert await c.getxattr(f, b"user.k") == b"v" * 100
        assert b"user.k" in await c.listxattr(f)
        await c.removexattr(f, b"user.k")
        with pytest.raises(OSError) as info:
            await c.getxattr(f, b"user.k")
        assert info.value.errno == errno.ENODATA
        sfs = await c.statfs(root)
        host = os.statvfs(sample)
        assert (sfs.bsize, sfs.blocks, sfs.namelen) == (host.f_bsize, host.f_blocks,
                                                        host.f_namemax)


async def test_many_requests_in_flight(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        f, _ = await c.walk(root, [b"big.bin"])
        await c.lopen(f, os.O_RDONLY)
        data = (sample / "big.bin").read_bytes()
        results: dict[int, bytes] = {}

        async def rd(i: int) -> None:
            results[i] = await c.read(f, i * 1000, 1000)

        with trio.fail_after(10):
            async with trio.open_nursery() as n:
                for i in range(300):
                    n.start_soon(rd, i)
                for _ in range(200):
                    n.start_soon(c.getattr, root)
        assert all(results[i] == data[i * 1000:(i + 1) * 1000] for i in range(300))


async def test_cancelled_call_is_flushed(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        f, _ = await c.walk(root, [b"big.bin"])
        await c.lopen(f, os.O_RDONLY)
        for _ in range(20):
            with trio.move_on_after(0):
                await c.read(f, 0, 200_000)
        with trio.fail_after(5):
            assert len(await c.read(f, 0, 10)) == 10


async def test_gofer_killed_gives_eio_promptly(procs: Procs, sample: Path) -> None:
    sock, p = spawn_pair(procs, sample)
    async with open_client(sock) as c:
        root, _ = await c.attach()
        os.kill(p.pid, signal.SIGKILL)
        with trio.fail_after(5):
            with pytest.raises(OSError) as info:
                for _ in range(100):
                    await c.getattr(root)
                    await trio.sleep(0.01)
            assert info.value.errno == errno.EIO
            with pytest.raises(OSError):
                await c.walk(root, [b"sub"])


async def test_several_roots_on_one_listener(procs: Procs, sample: Path,
                                             tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "o").write_bytes(b"o")
    addr, _ = spawn_listen(procs, ["--root", str(sample), "--root", str(other), "--ro"],
                           f"unix:{tmp_path / 'sock'}")
    async with open_client(connect(addr)) as c:
        with pytest.raises(OSError) as info:
            await c.attach(b"")
        assert info.value.errno == errno.ENOENT
        r1, _ = await c.attach(os.fsencode(sample))
        r2, q2 = await c.attach(os.fsencode(other))
        assert q2.path == os.stat(other).st_ino
        await c.walk(r1, [b"hello.txt"])
        with pytest.raises(OSError) as info:
            await c.mkdir(r2, b"x", 0o700, 0)
        assert info.value.errno == errno.EROFS


def test_cli_refuses_non_loopback(tmp_path: Path) -> None:
    for addr in ["tcp:0.0.0.0:5640", "tcp:10.1.2.3:1", "tcp:localhost:1", "udp:x"]:
        r = subprocess.run(gofer_argv("--root", str(tmp_path), "--listen", addr),
                           capture_output=True, timeout=30)
        assert r.returncode == 2, addr
        assert b"--listen" in r.stderr


def test_cli_exits_when_parent_connections_close(procs: Procs, sample: Path) -> None:
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    p = procs.start(gofer_argv("--root", str(sample), "--fd", str(b.fileno()),
                               "--root", str(sample), "--ro", "--fd", str(d.fileno())),
                    pass_fds=[b.fileno(), d.fileno()])
    b.close()
    d.close()
    a.close()
    time.sleep(0.3)
    assert p.poll() is None  # one connection still open
    c.close()
    assert p.wait(timeout=10) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_stops_cleanly_on_signal(procs: Procs, sample: Path, tmp_path: Path,
                                     sig: int) -> None:
    addr, p = spawn_listen(procs, ["--root", str(sample)], f"unix:{tmp_path / 's'}")
    connect(addr).close()
    p.send_signal(sig)
    assert p.wait(timeout=10) == 0


def test_landlock_confines_the_process(tmp_path: Path, sample: Path) -> None:
    code = ("import os, sys\n"
            "from gofer.host import Export, restrict_to_exports\n"
            f"assert restrict_to_exports([Export({str(sample)!r}, readonly=True)])\n"
            f"open({str(sample / 'hello.txt')!r}, 'rb').read()\n"
            "for p, m in [('/etc/hostname', 'rb'), "
            f"({str(tmp_path / 'outside' / 'secret')!r}, 'rb'), "
            f"({str(sample / 'hello.txt')!r}, 'ab')]:\n"
            "    try:\n"
            "        open(p, m)\n"
            "    except PermissionError:\n"
            "        continue\n"
            "    sys.exit('opened ' + p)\n")
    r = subprocess.run([os.sys.executable, "-c", code], capture_output=True, timeout=30,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr


async def test_created_entries_get_the_asked_mode_and_a_setgid_directory_group(
        procs: Procs, sample: Path) -> None:
    """The gofer creates as root and hands entries over with chown, which clears
    set-user-ID and set-group-ID, and runs with a umask: the client's mode must
    survive both; a set-group-ID directory passes on its group, as the kernel's."""
    old = os.umask(0o077)  # inherited by the gofer process
    try:
        async with gofer_client(procs, sample) as c:
            root, _ = await c.attach()
            cf, _ = await c.walk(root, [])  # Tlcreate turns the fid into the file
            _, _, fd = await c.lcreate(cf, b"suid", os.O_RDWR | os.O_EXCL, 0o4755, 5)
            if fd is not None:
                os.close(fd)
            st = os.stat(sample / "suid")
            assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o4755, 5)
            os.mkdir(sample / "shared")
            os.chown(sample / "shared", 0, 7)
            os.chmod(sample / "shared", 0o2775)
            shared, _ = await c.walk(root, [b"shared"])
            await c.mkdir(shared, b"sub", 0o755, 5)
            st = os.stat(sample / "shared" / "sub")
            assert st.st_gid == 7 and st.st_mode & stat.S_ISGID  # inherited, kept
            await c.mknod(shared, b"fifo", stat.S_IFIFO | 0o666, 0, 0, 5)
            st = os.stat(sample / "shared" / "fifo")
            assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o666, 7)
    finally:
        os.umask(old)
