"""sandboxfs's remote filesystem against a real gofer: the fids (and so the
gofer's descriptors) it holds stay bounded however many files it meets."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from gofer.client import open_client
from sandboxfs.remote import RemoteFs
from sandboxfs.remote.fdcache import FdCache
from tests.gofer.conftest import Procs, spawn_pair


def gofer_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_fids_stay_bounded_over_a_large_tree(procs: Procs, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for d in range(10):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(60):
            (root / f"d{d}" / f"f{f}").write_bytes(b"x" * f)
    sock, proc = spawn_pair(procs, root, "--ro")
    async with open_client(sock) as client:
        fs = await RemoteFs.attach(client, readonly=True)
        fs.fid_table.capacity, fs.fid_table.grace = 40, 0.0
        fs.fds = FdCache(30)
        baseline = gofer_fds(proc.pid)
        peak = 0
        for d in range(10):
            directory = await fs.root.lookup(f"d{d}".encode())
            for f in range(60):
                inode = await directory.lookup(f"f{f}".encode())
                handle = await inode.open(os.O_RDONLY)
                assert await handle.read(0, 100) == b"x" * f
                await handle.release()
                await inode.getattr()
                await inode.listxattr()  # Txattrat: from the parent's fid, none of its own
                peak = max(peak, gofer_fds(proc.pid))
        assert len(fs.fid_table) <= 40
        # The gofer holds one descriptor per fid (plus its few own); 600 files met.
        assert peak - baseline <= 40 + 10, (baseline, peak)
        fs.close()
        await trio.lowlevel.checkpoint()



async def test_reading_a_directory_opens_its_files_in_batches(procs: Procs,
                                                              tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    for f in range(40):
        (root / "d" / f"f{f:02d}").write_bytes(b"%d" % f)
    (root / "d" / "sub").mkdir()
    sock, _ = spawn_pair(procs, root, "--ro")
    async with open_client(sock) as client:
        fs = await RemoteFs.attach(client, readonly=True)
        directory = await fs.root.lookup(b"d")
        await directory.readdir()  # listed, as FUSE's readdirplus or a second lookup does
        # f05 is replaced on the host after the listing: its batch fd must not be used.
        os.rename(root / "d" / "f05", root / "d" / "old05")
        (root / "d" / "f05").write_bytes(b"new")
        client.sent.clear()
        for f in range(40):
            inode = await directory.lookup(f"f{f:02d}".encode())
            handle = await inode.open(os.O_RDONLY)
            want = b"%d" % f
            got = await handle.read(0, 100)
            await handle.release()
            assert got == want or (f == 5 and got == b"new"), (f, got)
        # f00 alone (Topenat), then batches of up to 16 from f01 on; f05's batch fd is
        # dropped (another file now), so f05 is opened alone again: 3 batches, 2 Topenat.
        assert client.sent.get("Topenatbatch", 0) == 3, client.sent
        assert client.sent.get("Topenat", 0) <= 2, client.sent
        fs.close()
        await trio.lowlevel.checkpoint()
