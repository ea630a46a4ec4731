"""Mount lifecycle: bundles, bad input, the mount(8) path, dead daemons and gofers."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sandboxfs.control.client import request
from sandboxfs.mounts import control_path
from tests.integration.mounting import (
    children_of,
    daemon_pid,
    gofers_of,
    is_mounted,
    mount_line,
    mounted_bundle,
    mounted_layers,
    pid_alive,
    run_dir,
    sandboxfs,
    tree_digest,
    wait_gone,
)
from tests.integration.test_overlay_mount import make_lower


def make_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    make_lower(bundle / "rootfs")
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": True},
        "process": {"args": ["/bin/sh"], "cwd": "/"},
    }))
    return bundle


def test_bundle_mount_shows_rootfs_and_keeps_host(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    before = tree_digest(bundle / "rootfs")
    with mounted_bundle(bundle, tmp_path / "mnt") as mnt:
        assert (mnt / "file.txt").read_text() == "hello lower\n"
        (mnt / "file.txt").write_text("changed\n")
        (mnt / "created").write_text("new\n")
        assert mount_line(mnt)[2] == "fuse.sandboxfs"
    assert tree_digest(bundle / "rootfs") == before


def test_bad_bundle_exits_2_naming_field(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    (bundle / "config.json").write_text(json.dumps({"root": {"path": "nope"}}))
    (tmp_path / "mnt").mkdir()
    proc = sandboxfs("mount", str(bundle), str(tmp_path / "mnt"), check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("sandboxfs: root.path:")
    assert not is_mounted(tmp_path / "mnt")


def test_bad_option_exits_2(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    (tmp_path / "mnt").mkdir()
    proc = sandboxfs("x", str(tmp_path / "mnt"), "-o", f"lowerdir={lower},frobnicate",
                     check=False)
    assert proc.returncode == 2 and "frobnicate" in proc.stderr
    assert not is_mounted(tmp_path / "mnt")


def test_mount_t_fuse_sandboxfs(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    (top / "only-top").write_text("top\n")
    (top / "shared").write_text("from top\n")
    base = make_lower(tmp_path / "base")
    (base / "shared").write_text("from base\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # mount(8) gives its helpers a fixed PATH: `make setup` links sandboxfs into it.
    subprocess.run(["mount", "-t", "fuse.sandboxfs", "layers", str(mnt), "-o",
                    f"lowerdir={top}:{base},rw,nodev,nosuid"], check=True)
    pid = daemon_pid(mnt)
    try:
        fields = mount_line(mnt)
        assert fields[0] == "layers" and fields[2] == "fuse.sandboxfs"
        assert (mnt / "shared").read_text() == "from top\n"
        assert (mnt / "only-top").read_text() == "top\n"
        assert (mnt / "file.txt").read_text() == "hello lower\n"
    finally:
        sandboxfs("umount", str(mnt))
    wait_gone([pid])


def test_daemon_is_confined(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    with mounted_layers(tmp_path / "mnt", lower) as mnt:
        status = Path(f"/proc/{daemon_pid(mnt)}/status").read_text()
        assert "NoNewPrivs:\t1" in status


def test_killed_daemon_leaves_no_stale_mount(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    sandboxfs("x", str(mnt), "-o", f"lowerdir={lower}")
    pid = daemon_pid(mnt)
    family = children_of(pid)
    assert gofers_of(pid), "the daemon should have a gofer child"
    os.kill(pid, signal.SIGKILL)
    wait_gone([pid, *family])  # the gofer dies with its parent; the guard unmounts
    deadline = time.monotonic() + 5
    while is_mounted(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_mounted(mnt)
    assert os.listdir(mnt) == []
    sandboxfs("umount", str(mnt), check=False)  # nothing left to do, must not hang


def test_umount_cleans_a_stale_mount(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    sandboxfs("x", str(mnt), "-o", f"lowerdir={lower}")
    pid = daemon_pid(mnt)
    family = children_of(pid)
    for victim in [p for p in family if p not in gofers_of(pid)] + [pid]:
        os.kill(victim, signal.SIGKILL)  # the guard first, then the daemon
    wait_gone([pid, *family])
    with pytest.raises(OSError) as exc:
        os.listdir(mnt)
    assert exc.value.errno == errno.ENOTCONN
    sandboxfs("umount", str(mnt))
    assert not is_mounted(mnt)
    assert os.listdir(mnt) == []


def test_killed_gofer_gives_eio_quickly_and_umount_works(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    sandboxfs("x", str(mnt), "-o", f"lowerdir={lower}")
    pid = daemon_pid(mnt)
    try:
        gofers = gofers_of(pid)
        assert len(gofers) == 1
        os.kill(gofers[0], signal.SIGKILL)
        wait_gone(gofers)
        start = time.monotonic()
        with pytest.raises(OSError) as exc:
            (mnt / "dir" / "a.txt").read_text()  # never looked up: must reach the gofer
        assert exc.value.errno == errno.EIO
        assert time.monotonic() - start < 5
        assert pid_alive(pid)
    finally:
        sandboxfs("umount", str(mnt))
    wait_gone([pid])
    assert not is_mounted(mnt)


def test_stats_over_the_control_socket_and_no_socket_left(tmp_path: Path) -> None:
    lower = make_lower_for_stats(tmp_path / "lower")
    others = set((run_dir() / "mounts").glob("*.sock"))  # other mounts' sockets
    with mounted_layers(tmp_path / "mnt", lower) as mnt:
        assert (mnt / "file.txt").read_text() == "hello lower\n"
        stats = json.loads(sandboxfs("stats", str(mnt)).stdout)
        assert stats["fuse"]["nodes"] >= 2
        assert stats["cache"][0]["misses"] >= 1
        sockets = set((run_dir() / "mounts").glob("*.sock")) - others
        assert len(sockets) == 1
    assert not set((run_dir() / "mounts").glob("*.sock")) - others
    bad = sandboxfs("stats", str(tmp_path / "mnt"), check=False)
    assert bad.returncode == 1 and "cannot reach" in bad.stderr


def fuse_requests(mnt: Path, *, listing_cache: bool = False) -> dict[str, int]:
    """The daemon's FUSE request counts, asked in-process (milliseconds, not a
    `sandboxfs stats` process): this kernel forgets a dentry left unused for
    about a second whatever its timeout, and what it forgot it looks up
    again, which a slow check would count."""
    sock = run_dir() / "mounts" / control_path(os.path.realpath(mnt)).name
    stats = request(str(sock), {"op": "stats"})
    if listing_cache:
        assert stats["fuse"]["listing_cache"], "the listing cache's library is not loaded"
    return dict(stats["fuse"]["requests"])


def test_absent_names_are_cached_by_the_kernel_until_created(tmp_path: Path) -> None:
    """A failed lookup is answered as a negative entry: asking again does not
    reach the daemon, and creating the name through the mount shows it."""
    lower = make_lower_for_stats(tmp_path / "lower")

    def lookups(mnt: Path) -> int:
        return fuse_requests(mnt).get("lookup", 0)

    with mounted_layers(tmp_path / "mnt", lower) as mnt:
        assert not (mnt / "absent").exists()
        before = lookups(mnt)
        for _ in range(5):
            assert not (mnt / "absent").exists()
        assert lookups(mnt) == before
        (mnt / "absent").write_text("now here\n")
        assert (mnt / "absent").read_text() == "now here\n"
        (mnt / "absent").unlink()
        assert not (mnt / "absent").exists()
        (mnt / "absent").mkdir()
        assert (mnt / "absent").is_dir()


def test_listings_are_kept_by_the_kernel_until_changed_through_the_mount(
        tmp_path: Path) -> None:
    """On an exclusive mount the kernel keeps a directory's listing: listing
    it again reaches the daemon for OPENDIR only, no READDIR; a name made or
    removed through the mount shows in the next listing."""
    lower = make_lower_for_stats(tmp_path / "lower")

    def requests(mnt: Path) -> dict[str, int]:
        return fuse_requests(mnt, listing_cache=True)

    with mounted_layers(tmp_path / "mnt", lower) as mnt:
        first = sorted(os.listdir(mnt / "dir"))
        assert first == ["a.txt", "sub"]
        before = requests(mnt)
        for _ in range(5):
            assert sorted(os.listdir(mnt / "dir")) == first
        after = requests(mnt)
        assert after.get("readdir", 0) == before.get("readdir", 0)
        assert after.get("opendir", 0) == before.get("opendir", 0) + 5
        (mnt / "dir" / "new.txt").write_text("new\n")
        assert sorted(os.listdir(mnt / "dir")) == ["a.txt", "new.txt", "sub"]
        (mnt / "dir" / "a.txt").unlink()
        os.rename(mnt / "dir" / "new.txt", mnt / "dir" / "renamed.txt")
        (mnt / "dir" / "sub2").mkdir()
        assert sorted(os.listdir(mnt / "dir")) == ["renamed.txt", "sub", "sub2"]
        assert requests(mnt).get("readdir", 0) > after.get("readdir", 0)


def make_lower_for_stats(root: Path) -> Path:
    from tests.integration.test_overlay_mount import make_lower

    return make_lower(root)


def test_mount_read_ahead_is_raised(tmp_path: Path) -> None:
    """Sequential reads reach the daemon in large requests (bench W3)."""
    from tests.integration.test_overlay_mount import make_lower

    lower = make_lower(tmp_path / "lower")
    with mounted_layers(tmp_path / "mnt", lower) as mnt:
        dev = os.stat(mnt).st_dev
        knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
        deadline = time.monotonic() + 5
        while knob.read_text().strip() != "4096":
            assert time.monotonic() < deadline, knob.read_text()
            time.sleep(0.1)
