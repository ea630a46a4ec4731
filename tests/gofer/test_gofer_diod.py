"""Interop with diod, both directions: diod's clients against our gofer, our client
against diod. Both speak plain 9P2000.L over loopback TCP."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import Procs, spawn_listen, start_diod

from gofer.client import open_client


def diodls(addr: str, aname: str, path: str) -> dict[str, tuple[str, int]]:
    """name -> (mode string, size) as `diodls -l` shows them."""
    out = subprocess.run(["diodls", "-s", addr, "-a", aname, "-l", path], check=True,
                         capture_output=True, timeout=20).stdout.decode()
    entries = {}
    for line in out.splitlines():
        parts = line.split(None, 8)
        entries[parts[8]] = (parts[0].rstrip("."), int(parts[4]))
    return entries


def ls_mode(mode: int) -> str:
    return stat.filemode(mode)


@pytest.mark.parametrize("aname_kind", ["slash", "path"])
def test_diod_clients_read_our_gofer(procs: Procs, sample: Path, aname_kind: str) -> None:
    os.symlink("sub/inner.txt", sample / "sub" / "deeper" / "rel")
    listen, _ = spawn_listen(procs, ["--root", str(sample), "--ro"], "tcp:127.0.0.1:0")
    addr = listen.removeprefix("tcp:")
    aname = "/" if aname_kind == "slash" else str(sample)
    for rel in ("", "sub", "sub/deeper"):
        host_dir = sample / rel
        seen = diodls(addr, aname, "/" + rel)
        assert set(seen) == set(os.listdir(host_dir))
        for name, (mode, size) in seen.items():
            st = os.lstat(host_dir / name)
            if not stat.S_ISLNK(st.st_mode):  # diodls prints symlinks as -rwxrwxrwx
                assert mode == ls_mode(st.st_mode), name
                assert size == st.st_size, name
    for rel in ("hello.txt", "empty", "big.bin", "sub/inner.txt"):
        got = subprocess.run(["diodcat", "-s", addr, "-a", aname, "/" + rel], check=True,
                             capture_output=True, timeout=20).stdout
        assert got == (sample / rel).read_bytes(), rel


async def test_our_client_against_diod(procs: Procs, sample: Path) -> None:
    port = start_diod(procs, sample)
    sock = socket.create_connection(("127.0.0.1", port))
    async with open_client(sock) as c:
        assert c.version == "9P2000.L" and not c.extensions  # fell back from the extension
        root, qid = await c.attach(os.fsencode(sample))
        assert qid.path == os.stat(sample).st_ino
        fid, qids, stats = await c.walk_getattr(root, [b"sub", b"inner.txt"])
        assert qids[1].path == os.stat(sample / "sub" / "inner.txt").st_ino
        assert stats[1].size == 6 and stat.S_ISREG(stats[1].mode)
        _, _, fd = await c.lopen(fid, os.O_RDONLY)
        assert fd is None
        assert await c.read(fid, 0, 100) == b"inner\n"
        big, _ = await c.walk(root, [b"big.bin"])
        await c.lopen(big, os.O_RDONLY)
        data = b""
        while chunk := await c.read(big, len(data), 1 << 20):
            data += chunk
        assert data == (sample / "big.bin").read_bytes()
        d, _ = await c.walk(root, [])
        await c.lopen(d, os.O_RDONLY | os.O_DIRECTORY)
        names = {e.name for e in await c.readdir_all(d)}
        assert names == {os.fsencode(n) for n in os.listdir(sample)}
        assert await c.readlink((await c.walk(root, [b"link"]))[0]) == b"hello.txt"
        new, _ = await c.walk(root, [])
        await c.lcreate(new, b"from_client", os.O_RDWR, 0o644, 0)
        payload = os.urandom(200_000)
        assert await c.write(new, 0, payload) == len(payload)
        await c.fsync(new)
        await c.clunk(new)
        assert (sample / "from_client").read_bytes() == payload
        await c.mkdir(root, b"made", 0o755, 0)
        assert (sample / "made").is_dir()
        await c.renameat(root, b"made", root, b"made2")
        await c.unlinkat(root, b"made2", 0x200)
        assert not (sample / "made2").exists()
        batch = await c.getattr_batch([root, fid])
        assert not isinstance(batch[1], int) and batch[1].size == 6
        sfs = await c.statfs(root)
        assert sfs.bsize == os.statvfs(sample).f_bsize
