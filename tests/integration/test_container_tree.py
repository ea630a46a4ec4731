"""The whole container tree through a mounted bundle: bind (directory and
file), read-only bind, tmpfs, nested and missing-destination mounts, the
/dev tree, mount flags, and the per-mount cache policy. The host side of
every bind is checked after the mount is gone."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.mounting import mounted_bundle, sandboxfs, tree_digest
from tests.integration.test_overlay_mount import make_lower


@dataclass
class Tree:
    mnt: Path
    host: Path  # the host directories the bundle binds


def _bind(dest: str, source: Path, *options: str) -> dict[str, object]:
    return {"destination": dest, "type": "bind", "source": str(source),
            "options": ["rbind", *options]}


def _tmpfs(dest: str, *options: str) -> dict[str, object]:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": list(options)}


def make_host(host: Path) -> None:
    for name in ("rw", "ro", "exec", "nested"):
        (host / name).mkdir(parents=True)
        (host / name / "hello.txt").write_text(f"{name} from host\n")
    (host / "ro" / "sub").mkdir()
    (host / "ro" / "sub" / "deep.txt").write_text("deep\n")
    shutil.copy("/bin/true", host / "exec" / "true")
    shutil.copy("/bin/true", host / "rw" / "setuid-true")
    os.chmod(host / "rw" / "setuid-true", 0o4755)
    (host / "hostname").write_text("host-name\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    base = tmp_path_factory.mktemp("tree")
    host = base / "host"
    make_host(host)
    bundle = base / "bundle"
    bundle.mkdir()
    make_lower(bundle / "rootfs")
    (bundle / "rootfs" / "etc").mkdir()
    (bundle / "rootfs" / "etc" / "hostname").write_text("image-name\n")
    (bundle / "rootfs" / "tmp").mkdir()
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": True},
        "process": {"args": ["/bin/sh"], "cwd": "/"},
        "mounts": [
            _bind("/data", host / "rw"),
            _bind("/readonly", host / "ro", "ro"),
            _bind("/noexec", host / "exec", "noexec", "ro"),
            _bind("/exec", host / "exec", "ro"),
            _bind("/etc/hostname", host / "hostname"),
            _tmpfs("/scratch", "size=256k", "mode=1770", "uid=1022", "gid=1023",
                   "nr_inodes=8"),
            _tmpfs("/foo"),
            _tmpfs("/foo/bar", "nodev"),
            _bind("/foo/bar/baz", host / "nested"),
            _tmpfs("/foo/qux"),
            _tmpfs("/some/very/very/deep/path"),
            _bind("/nosuid", host / "rw", "nosuid"),
            {"destination": "/cached", "type": "bind", "source": str(host / "rw"),
             "options": ["rbind", "ro"]},
        ],
    }))
    before = {name: tree_digest(host / name) for name in ("ro", "exec", "nested")}
    hostname_before = (host / "hostname").read_bytes()
    rootfs_before = tree_digest(bundle / "rootfs")
    with mounted_bundle(bundle, base / "mnt") as mnt:
        yield Tree(mnt, host)
    # After the mount is gone: read-only sources untouched, the file bind's
    # host file untouched, the rootfs untouched (no stub directory landed in it).
    for name, digest in before.items():
        assert tree_digest(host / name) == digest, name
    assert (host / "hostname").read_bytes() == hostname_before
    assert tree_digest(bundle / "rootfs") == rootfs_before


def expect_errno(code: int, fn: object, *args: object) -> None:
    with pytest.raises(OSError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.errno == code, (errno.errorcode.get(info.value.errno or 0), fn, args)


def test_rw_bind_reads_and_writes_the_host(tree: Tree) -> None:
    assert (tree.mnt / "data" / "hello.txt").read_text() == "rw from host\n"
    (tree.mnt / "data" / "from-inside.txt").write_text("inside\n")
    assert (tree.host / "rw" / "from-inside.txt").read_text() == "inside\n"
    (tree.mnt / "data" / "from-inside.txt").unlink()
    assert not (tree.host / "rw" / "from-inside.txt").exists()


def test_ro_bind_refuses_every_write_path(tree: Tree) -> None:
    ro = tree.mnt / "readonly"
    assert (ro / "sub" / "deep.txt").read_text() == "deep\n"
    expect_errno(errno.EROFS, os.open, ro / "hello.txt", os.O_WRONLY)
    expect_errno(errno.EROFS, os.open, ro / "hello.txt", os.O_RDONLY | os.O_TRUNC)
    expect_errno(errno.EROFS, os.open, ro / "new", os.O_CREAT | os.O_WRONLY, 0o644)
    expect_errno(errno.EROFS, os.mkdir, ro / "newdir")
    expect_errno(errno.EROFS, os.unlink, ro / "hello.txt")
    expect_errno(errno.EROFS, os.rmdir, ro / "sub")
    expect_errno(errno.EROFS, os.rename, ro / "hello.txt", ro / "renamed")
    expect_errno(errno.EROFS, os.chmod, ro / "hello.txt", 0o600)
    expect_errno(errno.EROFS, os.truncate, ro / "hello.txt", 0)
    expect_errno(errno.EROFS, os.symlink, "x", ro / "link")
    expect_errno(errno.EROFS, os.link, ro / "hello.txt", ro / "hard")
    expect_errno(errno.EROFS, os.setxattr, ro / "hello.txt", "user.x", b"1")
    expect_errno(errno.EROFS, os.utime, ro / "hello.txt", (1, 1))


def test_file_bind_gets_its_own_memory_overlay(tree: Tree) -> None:
    inside = tree.mnt / "etc" / "hostname"
    assert inside.read_text() == "host-name\n"
    ino = inside.stat().st_ino
    inside.write_text("changed inside\n")
    assert inside.read_text() == "changed inside\n"
    assert inside.stat().st_ino == ino
    assert (tree.host / "hostname").read_text() == "host-name\n"


def test_tmpfs_options(tree: Tree) -> None:
    scratch = tree.mnt / "scratch"
    st = scratch.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o1770, 1022, 1023)
    with pytest.raises(OSError) as info:
        with open(scratch / "big", "wb") as f:
            for _ in range(64):
                f.write(b"z" * 65536)
                f.flush()
    assert info.value.errno == errno.ENOSPC
    assert (scratch / "big").stat().st_size <= 256 << 10
    (scratch / "big").unlink()
    made = 0
    with pytest.raises(OSError) as info:
        for i in range(20):
            (scratch / f"f{i}").touch()
            made += 1
    assert info.value.errno == errno.ENOSPC and made < 8  # the root counts as one inode


def test_nested_mounts(tree: Tree) -> None:
    foo = tree.mnt / "foo"
    assert sorted(os.listdir(foo)) == ["bar", "qux"]
    assert sorted(os.listdir(foo / "bar")) == ["baz"]
    assert (foo / "bar" / "baz" / "hello.txt").read_text() == "nested from host\n"
    (foo / "file").write_text("in foo's tmpfs\n")
    assert (foo / "file").read_text() == "in foo's tmpfs\n"
    devs = {foo.stat().st_ino, (foo / "bar").stat().st_ino, (foo / "qux").stat().st_ino,
            (foo / "bar" / "baz").stat().st_ino, tree.mnt.stat().st_ino}
    assert len(devs) == 5


def test_missing_destinations_are_stub_directories(tree: Tree) -> None:
    some = tree.mnt / "some"
    assert os.listdir(some) == ["very"]
    assert os.listdir(some / "very" / "very" / "deep") == ["path"]
    assert stat.S_ISDIR((some / "very").stat().st_mode)
    (some / "very" / "very" / "deep" / "path" / "x").write_text("in the deep tmpfs\n")
    expect_errno(errno.EROFS, os.mkdir, some / "new")
    expect_errno(errno.EROFS, os.open, some / "very" / "f", os.O_CREAT | os.O_WRONLY, 0o644)
    assert "some" in os.listdir(tree.mnt)


def test_mount_points_are_busy_and_cross_mount_changes_exdev(tree: Tree) -> None:
    expect_errno(errno.EBUSY, os.rmdir, tree.mnt / "scratch")
    expect_errno(errno.EBUSY, os.rename, tree.mnt / "foo", tree.mnt / "foo2")
    expect_errno(errno.EBUSY, os.rmdir, tree.mnt / "foo" / "qux")
    (tree.mnt / "moveme").write_text("root upper\n")
    expect_errno(errno.EXDEV, os.rename, tree.mnt / "moveme", tree.mnt / "foo" / "moved")
    expect_errno(errno.EXDEV, os.link, tree.mnt / "moveme", tree.mnt / "foo" / "linked")
    expect_errno(errno.EXDEV, os.rename, tree.mnt / "foo" / "bar" / "baz" / "hello.txt",
                 tree.mnt / "foo" / "bar" / "x")
    (tree.mnt / "moveme").unlink()


def test_dev_tree(tree: Tree) -> None:
    dev = tree.mnt / "dev"
    for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7),
                                 "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}.items():
        st = (dev / name).lstat()
        assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666, name
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor), name
    assert os.readlink(dev / "fd") == "/proc/self/fd"
    assert os.readlink(dev / "stdin") == "/proc/self/fd/0"
    assert os.readlink(dev / "ptmx") == "pts/ptmx"
    assert stat.S_IMODE((dev / "shm").stat().st_mode) == 0o1777
    for mount_point in ("dev/pts", "proc", "sys"):
        assert stat.S_ISDIR((tree.mnt / mount_point).stat().st_mode)
        assert os.listdir(tree.mnt / mount_point) == []


def test_noexec_nodev_nosuid(tree: Tree) -> None:
    assert subprocess.run([tree.mnt / "exec" / "true"]).returncode == 0
    with pytest.raises(PermissionError):
        subprocess.run([tree.mnt / "noexec" / "true"])
    expect_errno(errno.EPERM, os.mknod, tree.mnt / "foo" / "bar" / "dev",
                 stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(tree.mnt / "foo" / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    assert (tree.mnt / "data" / "setuid-true").stat().st_mode & stat.S_ISUID
    assert not (tree.mnt / "nosuid" / "setuid-true").stat().st_mode & stat.S_ISUID


def test_revalidate_bind_sees_host_changes(tree: Tree) -> None:
    inside = tree.mnt / "cached"
    assert not (inside / "late.txt").exists()
    os.listdir(inside)
    (tree.host / "rw" / "late.txt").write_text("v1\n")
    deadline = time.monotonic() + 5
    while not (inside / "late.txt").exists():
        assert time.monotonic() < deadline, "host change not seen within 5 s"
        time.sleep(0.1)
    assert (inside / "late.txt").read_text() == "v1\n"
    (tree.host / "rw" / "late.txt").write_text("version two\n")
    deadline = time.monotonic() + 5
    while (inside / "late.txt").read_text() != "version two\n":
        assert time.monotonic() < deadline, "host change not seen within 5 s"
        time.sleep(0.1)
    (tree.host / "rw" / "late.txt").unlink()


def test_bad_bind_source_exits_2_naming_the_mount(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    make_lower(bundle / "rootfs")
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["/bin/sh"], "cwd": "/"},
        "mounts": [_bind("/data", tmp_path / "does-not-exist")]}))
    (tmp_path / "mnt").mkdir()
    proc = sandboxfs("mount", str(bundle), str(tmp_path / "mnt"), check=False)
    assert proc.returncode == 2
    assert "mounts[0]" in proc.stderr and "/data" in proc.stderr


def _poll(predicate: object, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not seen within {timeout} s"
        time.sleep(0.05)


def test_revalidate_bind_follows_replacements_and_removals(tree: Tree) -> None:
    host = tree.host / "rw"
    inside = tree.mnt / "cached"
    (host / "swap.txt").write_text("first\n")
    _poll(lambda: (inside / "swap.txt").exists(), "a new host file")
    first_ino = (inside / "swap.txt").stat().st_ino
    (host / "swap.tmp").write_text("second, longer\n")
    os.rename(host / "swap.tmp", host / "swap.txt")  # a new inode under the same name
    _poll(lambda: (inside / "swap.txt").read_text() == "second, longer\n", "a replaced file")
    assert (inside / "swap.txt").stat().st_ino != first_ino
    (host / "swap.txt").unlink()
    _poll(lambda: not (inside / "swap.txt").exists(), "a removed file")
    _poll(lambda: "swap.txt" not in os.listdir(inside), "a removed name in the listing")


def test_secret_rotation_is_seen_through_a_revalidate_bind(tree: Tree) -> None:
    """The kubelet's atomic update: files are symlinks through `..data`, which is
    swapped by a rename to a new timestamped directory."""
    secret = tree.host / "rw" / "secret"
    (secret / "..v1").mkdir(parents=True)
    (secret / "..v1" / "token").write_text("token-1")
    os.symlink("..v1", secret / "..data")
    os.symlink("..data/token", secret / "token")
    inside = tree.mnt / "cached" / "secret" / "token"
    _poll(lambda: inside.exists() and inside.read_text() == "token-1", "the secret")
    (secret / "..v2").mkdir()
    (secret / "..v2" / "token").write_text("token-2, rotated")
    os.symlink("..v2", secret / "..data_tmp")
    os.rename(secret / "..data_tmp", secret / "..data")
    shutil.rmtree(secret / "..v1")
    _poll(lambda: inside.read_text() == "token-2, rotated", "the rotated secret")
    shutil.rmtree(secret)
