"""Checkpoint and restore through the command line: a rich tree comes back
exactly at another mountpoint; mismatches and changed rootfs are refused
with nothing mounted; a checkpoint under concurrent writers tears no write."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mounting import is_mounted, mounted_bundle, sandboxfs
from tests.integration.test_overlay_mount import make_lower

BIG = 256 << 20
#: Mount points left for the runtime: stub directories, made with each mount.
STUBS = {"proc", "sys", "dev/pts"}


def full_digest(root: Path) -> dict[str, tuple[object, ...]]:
    """Names, types, modes, owners, times, link counts, xattrs and bytes (hashed)."""
    import hashlib

    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            body: object = None
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                body = h.hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                  for k in os.listxattr(path, follow_symlinks=False)))
            nlink = None if stat.S_ISDIR(st.st_mode) else st.st_nlink
            out[str(path.relative_to(root))] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size if body else None, nlink,
                st.st_mtime_ns, body, xattrs)
    return out


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Path]:
    b = tmp_path / "bundle"
    b.mkdir()
    rootfs = make_lower(b / "rootfs")
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "hostname").write_text("image\n")
    (rootfs / "lowerdir").mkdir()
    (rootfs / "lowerdir" / "x").write_text("x\n")
    (rootfs / "tmp").mkdir()
    host_file = tmp_path / "hostname"
    host_file.write_text("host\n")
    (b / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["/bin/sh"], "cwd": "/"},
        "mounts": [
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=16m"]},
            {"destination": "/etc/hostname", "type": "bind", "source": str(host_file),
             "options": ["bind"]},
        ]}))
    yield b


def build_rich_tree(mnt: Path) -> None:
    work = mnt / "work"
    work.mkdir()
    for d in range(20):
        (work / f"d{d}").mkdir()
        for f in range(100):
            (work / f"d{d}" / f"f{f}").write_text(f"{d}/{f}\n" * (f % 7))
    with open(work / "big", "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(BIG >> 20):
            f.write(block)
    os.link(work / "d0" / "f1", work / "hard")
    os.symlink("d0/f1", work / "sym")
    os.mkfifo(work / "fifo")
    os.setxattr(work / "d0" / "f2", "user.tag", b"\x00\x01value")
    os.chmod(work / "d0" / "f3", 0o4750)
    os.chown(work / "d0" / "f4", 1234, 5678)
    os.utime(work / "d0" / "f5", ns=(1_000_000_000, 2_000_000_000))
    (mnt / "file.txt").unlink()  # a whiteout over a lower file
    (mnt / "lowerdir" / "x").unlink()
    (mnt / "lowerdir").rmdir()
    (mnt / "lowerdir").mkdir()  # an opaque directory
    (mnt / "lowerdir" / "new").write_text("new\n")
    (mnt / "dir" / "a.txt").write_text("copied up and changed\n")
    (mnt / "scratch" / "in-tmpfs").write_text("tmpfs mount\n")
    (mnt / "etc" / "hostname").write_text("changed inside\n")


def test_round_trip_to_another_mountpoint(bundle: Path, tmp_path: Path) -> None:
    image = tmp_path / "image"
    with mounted_bundle(bundle, tmp_path / "m1") as m1:
        build_rich_tree(m1)
        before = full_digest(m1)
        t = time.monotonic()
        sandboxfs("checkpoint", str(m1), str(image), timeout=300)
        took = time.monotonic() - t
        assert full_digest(m1) == before  # resumed, unchanged
    print(f"checkpoint {image.stat().st_size >> 20} MiB in {took:.2f} s", file=sys.stderr)
    assert not is_mounted(tmp_path / "m1")
    t = time.monotonic()
    with _restored(image, bundle, tmp_path / "m2") as m2:
        print(f"restore in {time.monotonic() - t:.2f} s", file=sys.stderr)
        after = full_digest(m2)
        assert after.keys() == before.keys()
        for path in before:
            if path in STUBS:  # empty mount points made anew, not state: only their times
                assert after[path][:5] == before[path][:5]
                continue
            assert after[path] == before[path], path
        assert (m2 / "work" / "hard").stat().st_ino == (m2 / "work" / "d0" / "f1").stat().st_ino
        assert not (m2 / "file.txt").exists() and os.listdir(m2 / "lowerdir") == ["new"]
    assert (tmp_path / "hostname").read_text() == "host\n"


class _restored:
    def __init__(self, image: Path, bundle: Path, mnt: Path, *extra: str) -> None:
        self.args = ("restore", str(image), str(bundle), str(mnt), *extra)
        self.mnt = mnt

    def __enter__(self) -> Path:
        self.mnt.mkdir(exist_ok=True)
        sandboxfs(*self.args, timeout=300)
        return self.mnt

    def __exit__(self, *exc: object) -> None:
        sandboxfs("umount", str(self.mnt))
        assert not is_mounted(self.mnt)


def test_mismatches_and_changed_rootfs_are_refused(bundle: Path, tmp_path: Path) -> None:
    image = tmp_path / "image"
    with mounted_bundle(bundle, tmp_path / "m1") as m1:
        (m1 / "note").write_text("x\n")
        sandboxfs("checkpoint", str(m1), str(image), "--stop")
    assert not is_mounted(tmp_path / "m1")
    other = tmp_path / "other"
    other.mkdir()
    (other / "rootfs").symlink_to(bundle / "rootfs")
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] = config["mounts"][:1]  # the file bind is gone
    (other / "config.json").write_text(json.dumps(config))
    mnt = tmp_path / "m2"
    mnt.mkdir()
    proc = sandboxfs("restore", str(image), str(other), str(mnt), check=False)
    assert proc.returncode == 1 and "/etc/hostname" in proc.stderr, proc.stderr
    assert not is_mounted(mnt)
    (bundle / "rootfs" / "added-on-host").write_text("changed\n")
    proc = sandboxfs("restore", str(image), str(bundle), str(mnt), check=False)
    assert proc.returncode == 1 and "--force" in proc.stderr
    assert not is_mounted(mnt)
    with _restored(image, bundle, mnt, "--force") as m2:
        assert (m2 / "note").read_text() == "x\n"
    # A bind source that moved on the host: only its device name (9pfs-DEST) must match.
    moved = tmp_path / "moved-hostname"
    moved.write_text("moved host file\n")
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"][1]["source"] = str(moved)
    (other / "config.json").write_text(json.dumps(config))
    with _restored(image, other, mnt, "--force") as m2:
        assert (m2 / "note").read_text() == "x\n"
        assert (m2 / "etc" / "hostname").read_text() == "moved host file\n"
    bad = tmp_path / "bad"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    proc = sandboxfs("restore", str(bad), str(bundle), str(mnt), "--force", check=False)
    assert proc.returncode == 1 and "nothing mounted" in proc.stderr
    assert not is_mounted(mnt)


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
i = 0
while True:
    os.write(fd, (b"%08d" % i) * 512)  # 4 KiB records, each one write(2)
    i += 1
"""


def test_checkpoint_under_concurrent_writers_tears_no_write(bundle: Path,
                                                           tmp_path: Path) -> None:
    image = tmp_path / "image"
    with mounted_bundle(bundle, tmp_path / "m1") as m1:
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(m1 / f"log{i}")])
                   for i in range(2)]
        try:
            time.sleep(0.5)
            sandboxfs("checkpoint", str(m1), str(image))
            time.sleep(0.2)
        finally:
            for w in writers:
                w.kill()
                w.wait()
    with _restored(image, bundle, tmp_path / "m2") as m2:
        for i in range(2):
            data = (m2 / f"log{i}").read_bytes()
            assert data and len(data) % 4096 == 0
            for n in range(len(data) // 4096):
                assert data[n * 4096:(n + 1) * 4096] == (b"%08d" % n) * 512
