"""Fixtures for the gofer tests: real gofer and diod processes over real sockets.

Every process a fixture starts is stopped by its pid when the test ends.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gofer.client import Client, open_client

REPO = Path(__file__).resolve().parents[2]


def gofer_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gofer", "serve", *args]


class Procs:
    """Processes started by one test, stopped (by pid) at its end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        kw.setdefault("cwd", REPO)
        p = subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for pipe in (p.stdout, p.stderr):
                if pipe is not None:
                    pipe.close()


@pytest.fixture
def procs() -> Iterator[Procs]:
    ps = Procs()
    yield ps
    ps.stop()


def spawn_pair(procs: Procs, root: Path, *extra: str) -> tuple[socket.socket,
                                                                subprocess.Popen[bytes]]:
    """A gofer serving `root` on one end of a socketpair; returns our end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    p = procs.start(gofer_argv("--root", str(root), *extra, "--fd", str(theirs.fileno())),
                    pass_fds=[theirs.fileno()])
    theirs.close()
    return ours, p


def spawn_listen(procs: Procs, args: list[str], listen: str) -> tuple[str,
                                                                      subprocess.Popen[bytes]]:
    """A gofer with --listen; returns the address it printed (port 0 resolved)."""
    p = procs.start(gofer_argv(*args, "--listen", listen), stdout=subprocess.PIPE)
    assert p.stdout is not None
    line = p.stdout.readline().decode().strip()
    assert line.startswith("listening on "), line
    return line.removeprefix("listening on "), p


def connect(addr: str) -> socket.socket:
    kind, _, rest = addr.partition(":")
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(rest)
        return s
    host, _, port = rest.rpartition(":")
    return socket.create_connection((host, int(port)))


@asynccontextmanager
async def gofer_client(procs: Procs, root: Path, *extra: str,
                       extensions: bool = True, msize: int = 1 << 20) -> AsyncIterator[Client]:
    sock, _ = spawn_pair(procs, root, *extra)
    async with open_client(sock, extensions=extensions, msize=msize) as client:
        yield client


async def expect(code: int, aw: Awaitable[object]) -> None:
    """Await `aw` and check that it fails with errno `code`."""
    with pytest.raises(OSError) as info:
        await aw
    assert info.value.errno == code, errno.errorcode.get(info.value.errno or 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_diod(procs: Procs, export: Path) -> int:
    """diod exporting `export` on a free loopback port; waits until it accepts."""
    for _ in range(5):
        port = free_port()
        p = procs.start(["diod", "-f", "-n", "-N", "-l", f"127.0.0.1:{port}",
                         "-e", str(export), "-L", "stderr"],
                        stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and p.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.05)
    raise RuntimeError("diod did not start")


def tree_hash(path: Path) -> str:
    """A digest of every name, type, mode, size, target and byte under `path`."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            h.update(f"{os.path.relpath(full, path)}\0{st.st_mode}\0{st.st_size}\0"
                     f"{st.st_mtime_ns}\0{st.st_uid}\0{st.st_gid}\0".encode())
            if os.path.islink(full):
                h.update(os.readlink(full).encode())
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    h.update(f.read())
            try:
                for x in sorted(os.listxattr(full, follow_symlinks=False)):
                    h.update(x.encode() + os.getxattr(full, x, follow_symlinks=False))
            except OSError:
                pass
    return h.hexdigest()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """root/ with files, a subdir, symlinks; outside/ next to it with a secret."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret bytes\n")
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / "empty").write_bytes(b"")
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "sub" / "deeper").mkdir()
    os.chmod(root / "hello.txt", 0o640)
    os.symlink("hello.txt", root / "link")
    os.symlink("/", root / "to_root")
    return root
