"""The drop-in overlay: an on-disk upper in kernel overlayfs's format, read
and written through the gofer, mountable by the kernel and the reverse."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.mounting import mounted_layers, sandboxfs, tree_digest
from tests.integration.test_overlay_mount import make_lower


@contextmanager
def kernel_overlay(mnt: Path, lower: Path, upper: Path, work: Path,
                   extra: str = "") -> Iterator[Path]:
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}{extra}", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def change_tree(root: Path) -> None:
    with open(root / "file.txt", "a") as f:
        f.write("appended\n")
    (root / "new.txt").write_text("new\n")
    os.unlink(root / "dir" / "a.txt")
    (root / "made").mkdir()
    (root / "made" / "inside").write_text("inside\n")
    os.symlink("new.txt", root / "newlink")
    os.link(root / "new.txt", root / "newhard")
    os.setxattr(root / "new.txt", "user.color", b"blue")


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path, Path]:
    lower = make_lower(tmp_path / "lower")
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    return lower, tmp_path / "upper", tmp_path / "work"


def opts(upper: Path, work: Path) -> str:
    return f"upperdir={upper},workdir={work}"


def test_written_by_sandboxfs_mounts_under_kernel_overlayfs(
        tmp_path: Path, layers: tuple[Path, Path, Path]) -> None:
    lower, upper, work = layers
    before = tree_digest(lower)
    with mounted_layers(tmp_path / "m", lower, options=opts(upper, work)) as m:
        change_tree(m)
        shutil_rmtree(m / "dir")  # a lower directory removed...
        (m / "dir").mkdir()  # ...and made again: opaque
        (m / "dir" / "fresh").write_text("fresh\n")
        seen = tree_digest(m)
    assert tree_digest(lower) == before
    with kernel_overlay(tmp_path / "k", lower, upper, work) as k:
        assert tree_digest(k) == seen
    with mounted_layers(tmp_path / "m2", lower, options=opts(upper, work)) as m2:
        assert tree_digest(m2) == seen  # remounted: the changes are still there


def test_written_by_kernel_overlayfs_mounts_under_sandboxfs(
        tmp_path: Path, layers: tuple[Path, Path, Path]) -> None:
    lower, upper, work = layers
    with kernel_overlay(tmp_path / "k", lower, upper, work) as k:
        change_tree(k)
        shutil_rmtree(k / "dir")
        (k / "dir").mkdir()
        seen = tree_digest(k)
    with mounted_layers(tmp_path / "m", lower, options=opts(upper, work)) as m:
        assert tree_digest(m) == seen


def move_directories(root: Path) -> None:
    """Renames of directories with lower parts: in place, across directories,
    a child of a moved one, and one moved twice."""
    os.rename(root / "dir", root / "dir-renamed")
    os.rename(root / "dir-renamed" / "sub", root / "emptydir" / "sub-moved")
    os.rename(root / "emptydir", root / "nested")
    (root / "dir-renamed" / "after").write_text("after the move\n")


def test_renamed_directories_survive_remount_and_read_under_kernel_overlayfs(
        tmp_path: Path, layers: tuple[Path, Path, Path]) -> None:
    lower, upper, work = layers
    with mounted_layers(tmp_path / "m", lower, options=opts(upper, work)) as m:
        move_directories(m)
        seen = tree_digest(m)
    assert "dir-renamed/a.txt" in seen and "nested/sub-moved/b.txt" in seen
    assert "dir" not in seen
    assert os.getxattr(upper / "dir-renamed", "trusted.overlay.redirect") == b"/dir"
    with mounted_layers(tmp_path / "m2", lower, options=opts(upper, work)) as m2:
        assert tree_digest(m2) == seen
    with kernel_overlay(tmp_path / "k", lower, upper, work) as k:
        assert tree_digest(k) == seen


def test_directories_renamed_by_kernel_overlayfs_read_under_sandboxfs(
        tmp_path: Path, layers: tuple[Path, Path, Path]) -> None:
    lower, upper, work = layers
    with kernel_overlay(tmp_path / "k", lower, upper, work, ",redirect_dir=on") as k:
        move_directories(k)
        seen = tree_digest(k)
    # The kernel writes a relative redirect for a rename within one directory.
    assert os.getxattr(upper / "dir-renamed", "trusted.overlay.redirect") == b"dir"
    with mounted_layers(tmp_path / "m", lower, options=opts(upper, work)) as m:
        assert tree_digest(m) == seen
        os.rename(m / "dir-renamed", m / "nested" / "again")  # and moves on from there
        assert (m / "nested" / "again" / "a.txt").read_text() == "a\n"


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


@pytest.mark.parametrize("case,message", [
    ("no-workdir", "needs a workdir"),
    ("missing-upper", "upperdir"),
    ("inside-lower", "overlaps lowerdir"),
])
def test_bad_upperdir_options_exit_2(tmp_path: Path, layers: tuple[Path, Path, Path],
                                     case: str, message: str) -> None:
    lower, upper, work = layers
    option = {"no-workdir": f"upperdir={upper}",
              "missing-upper": f"upperdir={tmp_path}/nope,workdir={work}",
              "inside-lower": f"upperdir={lower}/dir,workdir={work}"}[case]
    (tmp_path / "m").mkdir()
    proc = sandboxfs("x", str(tmp_path / "m"), "-o", f"lowerdir={lower},{option}", check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_two_hundred_lowers_first_on_top(tmp_path: Path) -> None:
    layers = []
    for i in range(200):
        layer = tmp_path / "layers" / f"l{i:03}"
        layer.mkdir(parents=True)
        (layer / f"only{i}").write_text(f"{i}\n")
        (layer / "common").write_text(f"from layer {i}\n")
        layers.append(layer)
    with mounted_layers(tmp_path / "m", *layers) as m:
        assert (m / "common").read_text() == "from layer 0\n"
        assert len([n for n in os.listdir(m) if n.startswith("only")]) == 200
        assert (m / "only199").read_text() == "199\n"
        (m / "only150").unlink()
        assert not (m / "only150").exists()
    assert (layers[150] / "only150").read_text() == "150\n"


@contextmanager
def tmpfs_at(path: Path) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "layer", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def inode_numbers(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_ino for p in root.rglob("*")}


def test_inode_numbers_distinct_across_layers_and_stable_across_copy_up_and_remount(
        tmp_path: Path) -> None:
    upper, work, same = tmp_path / "upper", tmp_path / "work", tmp_path / "same"
    for d in (upper, work, same):
        d.mkdir()
    (same / "host").write_text("on the upper's filesystem\n")
    with tmpfs_at(tmp_path / "a") as a, tmpfs_at(tmp_path / "b") as b:
        for layer in (a, b):  # two fresh tmpfs: the same host numbers in each
            (layer / f"only-{layer.name}").write_text(layer.name)
            (layer / f"dir-{layer.name}").mkdir()
            (layer / f"dir-{layer.name}" / "f").write_text("f\n")
        assert (a / "only-a").stat().st_ino == (b / "only-b").stat().st_ino
        options = f"upperdir={upper},workdir={work}"
        with mounted_layers(tmp_path / "m", same, a, b, options=options) as m:
            first = inode_numbers(m)
            assert len(set(first.values())) == len(first)  # distinct across layers
            assert first["host"] == (same / "host").stat().st_ino  # fsid 0: unchanged
            assert {p.lstat().st_dev for p in m.rglob("*")} == {m.stat().st_dev}
            with open(m / "only-a", "a") as f:  # copy-ups keep their numbers
                f.write("more")
            with open(m / "dir-b" / "f", "a") as f:
                f.write("more")
            os.rename(m / "dir-a", m / "dir-a-moved")
            (m / "new").write_text("upper only\n")
            (m / "newdir").mkdir()
            during = inode_numbers(m)
        for name in ("only-a", "dir-b/f", "dir-b", "host"):
            assert during[name] == first[name], name
        assert during["dir-a-moved"] == first["dir-a"]
        assert during["dir-a-moved/f"] == first["dir-a/f"]
        with mounted_layers(tmp_path / "m2", same, a, b, options=options) as m2:
            assert inode_numbers(m2) == during


def test_other_users_own_what_they_create_in_an_on_disk_upper(tmp_path: Path) -> None:
    """The gofer makes entries as root: each must end up the caller's, with the
    mode asked for, as on kernel overlayfs (pjdfstest's chmod and chown cases)."""
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="sandboxfs-dropin-"))
    try:
        public.chmod(0o755)
        lower, upper, work = public / "lower", public / "upper", public / "work"
        for d in (lower, upper, work):
            d.mkdir()
        (lower / "pub").mkdir(mode=0o777)
        (lower / "pub").chmod(0o777)
        with mounted_layers(public / "m", lower, options=opts(upper, work)) as m:
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c"]
            script = (f"cd {m}/pub && touch f && mkdir d && ln -s f l && mkfifo p"
                      " && chmod 0642 f && stat -c %a f")
            run = subprocess.run([*nobody, script], capture_output=True, text=True)
            assert run.returncode == 0, run.stderr
            assert run.stdout.strip() == "642"
            for name in ("f", "d", "l", "p"):
                st = (m / "pub" / name).lstat()
                assert (st.st_uid, st.st_gid) == (65534, 65534), name
                st = (upper / "pub" / name).lstat()
                assert (st.st_uid, st.st_gid) == (65534, 65534), name
            (m / "pub" / "suid").touch()
            os.chmod(m / "pub" / "suid", 0o4755)
            os.chown(m / "pub" / "suid", 65534, -1)  # the kernel's chown clears S_ISUID
            assert (upper / "pub" / "suid").stat().st_uid == 65534
    finally:
        shutil.rmtree(public)


def test_lower_directories_renamed_in_a_ring(tmp_path: Path) -> None:
    """unionmount-testsuite's rename-mass-dir over layers: each move lands on
    the whiteout the previous one left."""
    layers = []
    for i in range(3):
        layer = tmp_path / f"l{i}"
        (layer / "a" / f"no_dir10{i}").mkdir(parents=True)
        layers.append(layer)
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    with mounted_layers(tmp_path / "m", *reversed(layers), options=opts(upper, work)) as m:
        a = m / "a"
        for i in (3, 4, 5):
            (a / f"no_dir10{i}").mkdir()
        for src, dst in ((5, 6), (4, 5), (3, 4), (2, 3), (1, 2), (0, 1), (6, 0), (5, 6)):
            # As the suite does between steps: the kernel forgets its inodes,
            # the daemon gives back their fids.
            Path("/proc/sys/vm/drop_caches").write_text("2\n")
            os.rename(a / f"no_dir10{src}", a / f"no_dir10{dst}")
        seen = sorted(os.listdir(a))
    assert seen == [f"no_dir10{i}" for i in (0, 1, 2, 3, 4, 6)]
    with mounted_layers(tmp_path / "m2", *reversed(layers), options=opts(upper, work)) as m2:
        assert sorted(os.listdir(m2 / "a")) == seen


def test_layers_unmount_at_once_after_the_mount_and_while_mounted(tmp_path: Path) -> None:
    """As with kernel overlayfs, `umount MNT; umount LOWER` never meets EBUSY
    (the gofer holds its layers through a private copy of the mounts, not the
    host's), and a layer unmounted while the overlay is mounted stays readable
    through it until the overlay goes."""
    lower, upfs, mnt = tmp_path / "lower", tmp_path / "upfs", tmp_path / "mnt"
    for path in (lower, upfs, mnt):
        path.mkdir()

    def mount_layers() -> str:
        subprocess.run(["mount", "-t", "tmpfs", "lower_layer", str(lower)], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "upper_layer", str(upfs)], check=True)
        (lower / "d").mkdir()
        (lower / "d" / "f").write_text("lower\n")
        for sub in ("u", "w"):
            (upfs / sub).mkdir()
        return f"lowerdir={lower},upperdir={upfs}/u,workdir={upfs}/w"

    try:
        for _ in range(15):
            sandboxfs("sandboxfs-test", str(mnt), "-o", mount_layers())
            with open(mnt / "d" / "f", "a") as f:  # a copy-up: the upper is written
                f.write("appended\n")
            assert (mnt / "d" / "f").read_text() == "lower\nappended\n"
            subprocess.run(["umount", str(mnt)], check=True)
            for layer in (lower, upfs):
                gone = subprocess.run(["umount", str(layer)], capture_output=True, text=True)
                assert gone.returncode == 0, gone.stderr
        sandboxfs("sandboxfs-test", str(mnt), "-o", mount_layers())
        subprocess.run(["umount", str(lower)], check=True)
        assert (mnt / "d" / "f").read_text() == "lower\n"
    finally:
        for path in (mnt, lower, upfs):  # whatever a failure left mounted
            while os.path.ismount(path):
                subprocess.run(["umount", "-l", str(path)], check=True)
