"""Throughput of the checkpoint core alone: `python -m sandboxfs.checkpoint.bench`.

Builds a TmpFs tree in memory (FILES small files in DIRS directories and
one BIG-MiB file), writes its image (atomically: temp file, fsync, rename),
verifies it (`read_image`) and restores it into a fresh TmpFs, and prints
MB/s and files/s for each step. No FUSE, no daemon: what the daemon adds on
top is the pause and the descriptor passing, not throughput.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import trio

from sandboxfs.checkpoint import read_image, write_image
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Creds, SetAttr


async def build(files: int, dirs: int, big_mib: int) -> tuple[TmpFs, int]:
    """The tree and its total file bytes."""
    fs = TmpFs()
    creds = Creds(0, 0)
    parents = [await fs.root.mkdir(f"d{i:03}".encode(), 0o755, creds) for i in range(dirs)]
    total = 0
    for i in range(files):
        f = await parents[i % dirs].create(f"f{i:05}".encode(), 0o644, creds)
        body = os.urandom(64 + (i * 37) % 4000)
        handle = await f.open(os.O_WRONLY)
        await handle.write(0, body)
        await handle.release()
        total += len(body)
    big = await fs.root.create(b"big", 0o600, creds)
    await big.setattr(SetAttr(size=big_mib << 20))
    handle = await big.open(os.O_RDWR)
    fd = handle.fileno()
    assert fd is not None
    block = os.urandom(1 << 20)
    for mib in range(big_mib):
        os.pwrite(fd, block, mib << 20)
    await handle.release()
    return fs, total + (big_mib << 20)


def _line(what: str, seconds: float, nbytes: int, files: int) -> str:
    return (f"{what:8} {seconds:7.3f} s  {nbytes / seconds / 1e6:8.1f} MB/s  "
            f"{files / seconds:9.0f} files/s")


async def run(files: int, dirs: int, big_mib: int, directory: str) -> None:
    fs, nbytes = await build(files, dirs, big_mib)
    entries = files + dirs + 1
    path = os.path.join(directory, "bench.img")
    t0 = time.perf_counter()
    size, written = await write_image(path, {"mounts": [], "meta": {}}, [("0", fs.root)])
    t1 = time.perf_counter()
    image = read_image(path)
    t2 = time.perf_counter()
    restored = TmpFs()
    got_bytes, got_files = await image.restore_tree("0", restored.root)
    t3 = time.perf_counter()
    assert written == got_files == entries and got_bytes == nbytes
    print(f"tree: {files} files + one {big_mib} MiB file in {dirs} directories, "
          f"{nbytes / 1e6:.1f} MB of file bytes; image {size / 1e6:.1f} MB in {directory}")
    print(_line("write", t1 - t0, nbytes, entries))
    print(_line("verify", t2 - t1, nbytes, entries))
    print(_line("restore", t3 - t2, nbytes, entries))
    print(_line("v+r", t3 - t1, nbytes, entries))
    os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--dirs", type=int, default=50)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--dir", default=None, help="where the image goes (default: TMPDIR)")
    args = parser.parse_args()
    # Every non-empty TmpFs file holds a memfd: as the daemon does, allow them.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        trio.run(run, args.files, args.dirs, args.big_mib, directory)


if __name__ == "__main__":
    main()
