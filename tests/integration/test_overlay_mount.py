"""Overlay semantics through a real FUSE mount, checking the host lower after each.

Each test mounts a fresh lower tree with `sandboxfs SOURCE MNT -o lowerdir=...`,
acts through the mount with ordinary system calls, and compares the lower
with the digest taken before mounting: the host is never modified.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mounting import mount_line, mounted_layers, tree_digest


def make_lower(root: Path) -> Path:
    root.mkdir()
    (root / "file.txt").write_text("hello lower\n")
    os.setxattr(root / "file.txt", "user.origin", b"lower")
    (root / "exec.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "exec.sh").chmod(0o755)
    (root / "secret").write_text("top secret\n")
    (root / "secret").chmod(0o600)
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a.txt").write_text("a\n")
    (root / "dir" / "sub" / "b.txt").write_text("b\n")
    (root / "emptydir").mkdir()
    (root / "link").symlink_to("file.txt")
    (root / "abs_link").symlink_to("/etc/passwd")
    (root / "hl1").write_text("shared body\n")
    os.link(root / "hl1", root / "hl2")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    os.mkfifo(root / "fifo")
    os.utime(root / "file.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
    return root


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    return make_lower(tmp_path / "lower")


@pytest.fixture
def mnt(tmp_path: Path, lower: Path) -> Iterator[Path]:
    before = tree_digest(lower)
    with mounted_layers(tmp_path / "mnt", lower) as mountpoint:
        yield mountpoint
    assert tree_digest(lower) == before, "the host lower was modified"


def test_mount_is_listed_as_fuse_sandboxfs(mnt: Path) -> None:
    fields = mount_line(mnt)
    assert fields[2] == "fuse.sandboxfs"
    assert {"allow_other", "default_permissions", "nodev", "nosuid"} <= set(fields[3].split(","))


def test_reads_fall_through_with_lower_identity(mnt: Path, lower: Path) -> None:
    assert (mnt / "file.txt").read_text() == "hello lower\n"
    assert (mnt / "dir" / "sub" / "b.txt").read_text() == "b\n"
    assert (mnt / "big.bin").read_bytes() == (lower / "big.bin").read_bytes()
    assert os.readlink(mnt / "link") == "file.txt"
    assert os.readlink(mnt / "abs_link") == "/etc/passwd"
    assert (mnt / "link").read_text() == "hello lower\n"
    for name in ("file.txt", "exec.sh", "dir", "hl1", "big.bin", "fifo"):
        got, want = (mnt / name).lstat(), (lower / name).lstat()
        assert got.st_ino == want.st_ino, name
        assert got.st_mode == want.st_mode, name
        assert got.st_mtime_ns == want.st_mtime_ns, name
        assert got.st_ctime_ns == want.st_ctime_ns, name
        assert got.st_size == want.st_size or stat.S_ISDIR(want.st_mode), name
        assert got.st_nlink == want.st_nlink or stat.S_ISDIR(want.st_mode), name
    assert sorted(os.listdir(mnt)) == sorted(os.listdir(lower))
    assert os.getxattr(mnt / "file.txt", "user.origin") == b"lower"


def test_write_copies_up(mnt: Path, lower: Path) -> None:
    ino = (mnt / "file.txt").stat().st_ino
    with open(mnt / "file.txt", "a") as f:
        f.write("more\n")
    assert (mnt / "file.txt").read_text() == "hello lower\nmore\n"
    st = (mnt / "file.txt").stat()
    assert st.st_ino == ino
    assert os.getxattr(mnt / "file.txt", "user.origin") == b"lower"
    assert (lower / "file.txt").read_text() == "hello lower\n"


def test_truncate_chmod_chown_utimes_xattr_copy_up(mnt: Path) -> None:
    os.truncate(mnt / "dir" / "a.txt", 0)
    assert (mnt / "dir" / "a.txt").read_bytes() == b""
    os.chmod(mnt / "exec.sh", 0o700)
    assert stat.S_IMODE((mnt / "exec.sh").stat().st_mode) == 0o700
    os.chown(mnt / "secret", 1234, 5678)
    st = (mnt / "secret").stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (mnt / "secret").read_text() == "top secret\n"
    os.utime(mnt / "hl1", ns=(1_000_000_000, 2_000_000_000))
    assert (mnt / "hl1").stat().st_mtime_ns == 2_000_000_000
    os.setxattr(mnt / "dir" / "sub" / "b.txt", "user.new", b"v")
    assert os.getxattr(mnt / "dir" / "sub" / "b.txt", "user.new") == b"v"
    os.removexattr(mnt / "file.txt", "user.origin")
    assert "user.origin" not in os.listxattr(mnt / "file.txt")


def test_unlink_and_rmdir_leave_whiteouts(mnt: Path) -> None:
    os.unlink(mnt / "file.txt")
    assert not (mnt / "file.txt").exists()
    assert "file.txt" not in os.listdir(mnt)
    os.unlink(mnt / "dir" / "sub" / "b.txt")
    os.rmdir(mnt / "dir" / "sub")
    assert sorted(os.listdir(mnt / "dir")) == ["a.txt"]
    with pytest.raises(OSError) as exc:
        os.rmdir(mnt / "dir")
    assert exc.value.errno == errno.ENOTEMPTY
    (mnt / "file.txt").write_text("new\n")
    assert (mnt / "file.txt").read_text() == "new\n"
    assert not any(n.startswith(".wh.") for n in os.listdir(mnt))


def test_recreated_directory_is_opaque(mnt: Path) -> None:
    for name in ("a.txt", "sub/b.txt"):
        os.unlink(mnt / "dir" / name)
    os.rmdir(mnt / "dir" / "sub")
    os.rmdir(mnt / "dir")
    os.mkdir(mnt / "dir")
    assert os.listdir(mnt / "dir") == []
    assert not (mnt / "dir" / "a.txt").exists()
    assert "trusted.overlay.opaque" not in os.listxattr(mnt / "dir")


def test_rename_files_and_directories(mnt: Path) -> None:
    os.rename(mnt / "file.txt", mnt / "dir" / "moved.txt")
    assert (mnt / "dir" / "moved.txt").read_text() == "hello lower\n"
    assert not (mnt / "file.txt").exists()
    os.rename(mnt / "exec.sh", mnt / "secret")  # over an existing lower file
    assert (mnt / "secret").read_text().startswith("#!/bin/sh")
    os.mkdir(mnt / "newdir")
    (mnt / "newdir" / "x").write_text("x")
    os.rename(mnt / "newdir", mnt / "renamed")
    assert (mnt / "renamed" / "x").read_text() == "x"
    # A directory with lower content moves in one rename (a redirect in the upper).
    ino = (mnt / "dir").stat().st_ino
    os.rename(mnt / "dir", mnt / "dir2")
    assert (mnt / "dir2" / "sub" / "b.txt").read_text() == "b\n"
    assert (mnt / "dir2").stat().st_ino == ino
    assert not (mnt / "dir").exists()


def test_lower_hardlinks_stay_one_file_after_copy_up(mnt: Path) -> None:
    nlink = (mnt / "hl1").stat().st_nlink
    assert nlink == 2
    with open(mnt / "hl1", "w") as f:
        f.write("changed via hl1\n")
    assert (mnt / "hl2").read_text() == "changed via hl1\n"
    assert (mnt / "hl1").stat().st_ino == (mnt / "hl2").stat().st_ino
    assert (mnt / "hl2").stat().st_nlink == nlink


def test_new_links_symlinks_fifos_in_upper(mnt: Path) -> None:
    (mnt / "new.txt").write_text("n")
    os.link(mnt / "new.txt", mnt / "new2.txt")
    assert (mnt / "new.txt").stat().st_nlink == 2
    os.symlink("new.txt", mnt / "newlink")
    assert (mnt / "newlink").read_text() == "n"
    os.mkfifo(mnt / "newfifo")
    assert stat.S_ISFIFO((mnt / "newfifo").lstat().st_mode)
    os.link(mnt / "file.txt", mnt / "file-link")  # link of a lower file copies it up
    assert (mnt / "file-link").read_text() == "hello lower\n"


def test_statfs_and_inode_numbers_stable(mnt: Path) -> None:
    st = os.statvfs(mnt)
    assert st.f_bsize > 0 and st.f_blocks > 0
    inos = {name: (mnt / name).lstat().st_ino for name in os.listdir(mnt)}
    assert len(set(inos.values())) == len(inos) - 1  # hl1 and hl2 share one
    (mnt / "file.txt").write_text("rewritten")
    assert (mnt / "file.txt").stat().st_ino == inos["file.txt"]


def test_fifo_in_lower_works(mnt: Path) -> None:
    assert stat.S_ISFIFO((mnt / "fifo").lstat().st_mode)


def test_upper_size_bound_gives_enospc_and_keeps_data(tmp_path: Path, lower: Path) -> None:
    with mounted_layers(tmp_path / "small", lower, options="upper_size=1M") as mnt:
        (mnt / "kept.txt").write_text("kept\n")
        chunk = b"x" * 65536
        written = 0
        with pytest.raises(OSError) as exc:
            with open(mnt / "fill", "wb") as f:
                for _ in range(64):
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
        assert exc.value.errno == errno.ENOSPC
        assert written < (2 << 20)
        assert (mnt / "kept.txt").read_text() == "kept\n"
        assert (mnt / "fill").stat().st_size >= written - len(chunk)


@pytest.fixture
def public_mnt(lower: Path) -> Iterator[Path]:
    """A mount under a directory other users may traverse (pytest's tmp is 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="sandboxfs-public-"))
    parent.chmod(0o755)
    try:
        with mounted_layers(parent / "mnt", lower) as mountpoint:
            yield mountpoint
    finally:
        shutil.rmtree(parent)


def test_other_users_and_permissions(public_mnt: Path) -> None:
    mnt = public_mnt
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    ok = subprocess.run([*nobody, "cat", str(mnt / "file.txt")], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == "hello lower\n"
    denied = subprocess.run([*nobody, "cat", str(mnt / "secret")], capture_output=True, text=True)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    write = subprocess.run([*nobody, "sh", "-c", f"echo x > {mnt}/file.txt"],
                           capture_output=True, text=True)
    assert write.returncode != 0
