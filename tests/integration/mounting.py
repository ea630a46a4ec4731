"""Helpers that mount sandboxfs for real through its command line and clean up.

Every mount is made by the `sandboxfs` executable of this venv, exactly as a
user would, and every test checks afterwards that no mount and no daemon or
gofer process of its own is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
SANDBOXFS = str(BIN / "sandboxfs")


def run_dir() -> Path:
    return Path(os.environ["SANDBOXFS_RUN_DIR"])


def sandboxfs(*args: str, check: bool = True,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([SANDBOXFS, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"sandboxfs {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def is_mounted(path: Path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def mount_line(path: Path) -> list[str]:
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(path):
                return fields
    raise AssertionError(f"{path} is not mounted")


def daemon_pid(mountpoint: Path) -> int:
    for state in (run_dir() / "mounts").glob("*.json"):
        data = json.loads(state.read_text())
        if data["mountpoint"] == str(mountpoint):
            return int(data["pid"])
    raise AssertionError(f"no daemon recorded for {mountpoint}")


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def gofers_of(pid: int) -> list[int]:
    """The daemon's gofer processes (its other child is the unmount guard)."""
    out = []
    for child in children_of(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gofer" in cmdline:
            out.append(child)
    return out


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes still alive: {[p for p in pids if pid_alive(p)]}")
        time.sleep(0.05)


@contextmanager
def mounted_layers(mountpoint: Path, *lowers: Path, options: str = "") -> Iterator[Path]:
    """`sandboxfs none MNT -o lowerdir=...`: the fuse-overlayfs form; cleans up after."""
    lowerdir = ":".join(str(p).replace(":", "\\:") for p in lowers)
    opts = f"lowerdir={lowerdir}" + (f",{options}" if options else "")
    mountpoint.mkdir(exist_ok=True)
    sandboxfs("sandboxfs-test", str(mountpoint), "-o", opts)
    with _cleanup(mountpoint):
        yield mountpoint


@contextmanager
def mounted_bundle(bundle: Path, mountpoint: Path, *extra: str) -> Iterator[Path]:
    mountpoint.mkdir(exist_ok=True)
    sandboxfs("mount", str(bundle), str(mountpoint), *extra)
    with _cleanup(mountpoint):
        yield mountpoint


@contextmanager
def _cleanup(mountpoint: Path) -> Iterator[None]:
    pid = daemon_pid(mountpoint)
    family = [pid, *children_of(pid)]
    try:
        yield
    finally:
        if is_mounted(mountpoint):
            sandboxfs("umount", str(mountpoint))
        wait_gone(family)
        assert not is_mounted(mountpoint)


def tree_digest(root: Path) -> dict[str, tuple[object, ...]]:
    """Names, types, modes, owners, sizes, link counts, bytes, link targets, xattrs."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            body: object = None
            if stat.S_ISREG(st.st_mode):
                body = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            try:
                xattrs = tuple(sorted(
                    (k, os.getxattr(path, k, follow_symlinks=False))
                    for k in os.listxattr(path, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            nlink = st.st_nlink if not stat.S_ISDIR(st.st_mode) else None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                        st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                        nlink, body, xattrs)
    return out
