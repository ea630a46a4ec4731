"""Pods through the real command line: one daemon, several containers at
MOUNTPOINT/ID, a pod-shared tmpfs master and /dev/shm seen by all, a shared
bind volume changed from the host, and containers added and removed at run
time releasing what they held."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.mounting import (
    children_of,
    daemon_pid,
    is_mounted,
    sandboxfs,
    wait_gone,
)
from tests.integration.test_overlay_mount import make_lower

HINTS = "dev.gvisor.spec.mount"


@dataclass
class PodSetup:
    mnt: Path
    control: Path
    base: Path
    volume: Path


def _bundle(base: Path, name: str, annotations: dict[str, str], mounts: list[dict[str, object]],
            rootfs: Path) -> Path:
    bundle = base / name
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2",
        "root": {"path": str(rootfs), "readonly": True},
        "process": {"args": ["/bin/sh"], "cwd": "/"},
        "annotations": annotations,
        "mounts": mounts,
    }))
    return bundle


def _container_mounts(volume: Path) -> list[dict[str, object]]:
    return [
        {"destination": "/cache", "type": "bind", "source": "/pod/cache", "options": ["rbind"]},
        {"destination": "/dev/shm", "type": "bind", "source": "/pod/shm", "options": ["rbind"]},
        {"destination": "/shared", "type": "bind", "source": str(volume), "options": ["rbind"]},
    ]


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[PodSetup]:
    rootfs = make_lower(tmp_path / "rootfs")
    volume = tmp_path / "volume"
    volume.mkdir()
    annotations = {"io.kubernetes.cri.container-type": "sandbox"}
    for name, source, kind, share in (("cache", "/pod/cache", "tmpfs", "pod"),
                                      ("shm", "/pod/shm", "tmpfs", "pod"),
                                      ("vol", str(volume), "bind", "shared")):
        annotations[f"{HINTS}.{name}.source"] = source
        annotations[f"{HINTS}.{name}.type"] = kind
        annotations[f"{HINTS}.{name}.share"] = share
    annotations.update({f"{HINTS}.ro.source": "/pod/ro", f"{HINTS}.ro.type": "tmpfs",
                        f"{HINTS}.ro.share": "pod", f"{HINTS}.ro.options": "nodev,ro"})
    sandbox = _bundle(tmp_path, "sandbox", annotations, _container_mounts(volume), rootfs)
    mnt = tmp_path / "pod"
    mnt.mkdir()
    control = tmp_path / "control.sock"
    sandboxfs("pod", "start", "--control", str(control), str(mnt), str(sandbox))
    pid = daemon_pid(mnt)
    family = [pid, *children_of(pid)]
    try:
        yield PodSetup(mnt, control, tmp_path, volume)
    finally:
        if is_mounted(mnt):
            sandboxfs("umount", str(mnt))
        wait_gone(family)
        assert not is_mounted(mnt)


def _add(pod: PodSetup, name: str) -> Path:
    bundle = _bundle(pod.base, name, {"io.kubernetes.cri.container-type": "container"},
                     _container_mounts(pod.volume), make_lower(pod.base / f"{name}-rootfs"))
    out = sandboxfs("pod", "add", "--control", str(pod.control), name, str(bundle))
    assert out.stdout.strip() == str(pod.mnt / name)
    return pod.mnt / name


def test_containers_share_the_pod_masters(pod: PodSetup) -> None:
    app = _add(pod, "app")
    assert sorted(os.listdir(pod.mnt)) == ["app", "sandbox"]
    sandbox = pod.mnt / "sandbox"
    (sandbox / "cache" / "data").write_text("from the sandbox\n")
    assert (app / "cache" / "data").read_text() == "from the sandbox\n"
    assert (app / "cache" / "data").stat().st_ino == (sandbox / "cache" / "data").stat().st_ino
    with open(app / "dev" / "shm" / "seg", "w") as f:
        f.write("shm from app\n")
    assert (sandbox / "dev" / "shm" / "seg").read_text() == "shm from app\n"
    # Each container's own rootfs upper stays its own.
    (app / "private").write_text("app only\n")
    assert not (sandbox / "private").exists()


def test_shared_bind_volume_sees_host_changes_in_every_container(pod: PodSetup) -> None:
    app = _add(pod, "app")
    for container in (pod.mnt / "sandbox", app):
        assert not (container / "shared" / "note").exists()
    (pod.volume / "note").write_text("from the host\n")
    deadline = time.monotonic() + 5
    for container in (pod.mnt / "sandbox", app):
        while not (container / "shared" / "note").exists():
            assert time.monotonic() < deadline, "host change not seen within 5 s"
            time.sleep(0.1)
        assert (container / "shared" / "note").read_text() == "from the host\n"


def _fd_count(pid: int) -> int:
    """The daemon's descriptors, but for the read-ahead knob it closes on its own."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        count += not target.startswith("/sys/")
    return count


def test_remove_releases_everything(pod: PodSetup) -> None:
    pid = daemon_pid(pod.mnt)
    # One add/remove first, so lazily made things (caches, buffers) exist before counting.
    _add(pod, "warmup")
    sandboxfs("pod", "remove", "--control", str(pod.control), "warmup")
    (pod.mnt / "sandbox" / "cache" / "kept").write_text("in the pod master\n")
    before = _fd_count(pid)
    app = _add(pod, "app")
    for i in range(20):
        (app / f"file{i}").write_text("x" * 10000)
    assert (app / "cache" / "kept").read_text() == "in the pod master\n"
    assert _fd_count(pid) > before
    sandboxfs("pod", "remove", "--control", str(pod.control), "app")
    assert sorted(os.listdir(pod.mnt)) == ["sandbox"]
    assert not app.exists()
    deadline = time.monotonic() + 5
    while _fd_count(pid) != before:
        assert time.monotonic() < deadline, (before, sorted(
            os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.05)
    # The pod master outlives the container.
    assert (pod.mnt / "sandbox" / "cache" / "kept").read_text() == "in the pod master\n"


def test_bad_requests(pod: PodSetup) -> None:
    bad = sandboxfs("pod", "remove", "--control", str(pod.control), "nope", check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr
    dup = sandboxfs("pod", "add", "--control", str(pod.control), "sandbox",
                    str(pod.base / "sandbox"), check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad_id = sandboxfs("pod", "add", "--control", str(pod.control), "../x",
                       str(pod.base / "sandbox"), check=False)
    assert bad_id.returncode == 2
    os.listdir(pod.mnt / "sandbox" / "shared")
    stats = json.loads(sandboxfs("pod", "stats", "--control", str(pod.control)).stdout)
    assert list(stats["containers"]) == ["sandbox"]
    cache = stats["containers"]["sandbox"]["cache"]
    assert set(cache) == {"/", "/shared"}
    assert cache["/shared"]["misses"] >= 1


def test_incompatible_replica_options_refused_naming_both(pod: PodSetup) -> None:
    def bundle(name: str, options: list[str]) -> Path:
        mounts = [{"destination": "/ro", "type": "bind", "source": "/pod/ro",
                   "options": ["rbind", *options]}]
        return _bundle(pod.base, name, {"io.kubernetes.cri.container-type": "container"},
                       mounts, make_lower(pod.base / f"{name}-rootfs"))

    sandboxfs("pod", "add", "--control", str(pod.control), "reader",
              str(bundle("reader", ["ro", "nodev"])))
    assert (pod.mnt / "reader" / "ro").is_dir()
    proc = sandboxfs("pod", "add", "--control", str(pod.control), "writer",
                     str(bundle("writer", ["nodev"])), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "mounts[0]" in proc.stderr and "'ro'" in proc.stderr and "rw" in proc.stderr
    proc = sandboxfs("pod", "add", "--control", str(pod.control), "devs",
                     str(bundle("devs", ["ro"])), check=False)
    assert proc.returncode == 2 and "nodev" in proc.stderr, proc.stderr
    assert sorted(os.listdir(pod.mnt)) == ["reader", "sandbox"]


def test_secret_rotated_on_the_host_is_seen_by_every_container(pod: PodSetup) -> None:
    """A kubelet secret volume: files are symlinks through `..data`, which the
    kubelet swaps atomically to a new timestamped directory."""
    app = _add(pod, "app")
    secret = pod.volume / "secret"
    (secret / "..v1").mkdir(parents=True)
    (secret / "..v1" / "token").write_text("one")
    os.symlink("..v1", secret / "..data")
    os.symlink("..data/token", secret / "token")
    readers = [c / "shared" / "secret" / "token" for c in (pod.mnt / "sandbox", app)]

    def all_read(value: str) -> bool:
        return all(r.exists() and r.read_text() == value for r in readers)

    deadline = time.monotonic() + 5
    while not all_read("one"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (secret / "..v2").mkdir()
    (secret / "..v2" / "token").write_text("two, rotated")
    os.symlink("..v2", secret / "..data_tmp")
    os.rename(secret / "..data_tmp", secret / "..data")
    deadline = time.monotonic() + 5
    while not all_read("two, rotated"):
        assert time.monotonic() < deadline, "rotation not seen within 5 s"
        time.sleep(0.05)


def test_pod_checkpoint_and_restore_keep_containers_and_masters(pod: PodSetup) -> None:
    app = _add(pod, "app")
    sandbox = pod.mnt / "sandbox"
    (sandbox / "cache" / "shared.txt").write_text("in the pod master\n")
    (app / "dev" / "shm" / "seg").write_bytes(b"\x00\x01shm")
    (app / "private").write_text("app only\n")
    (sandbox / "file.txt").unlink()
    image = pod.base / "pod.img"
    sandboxfs("pod", "checkpoint", "--control", str(pod.control), str(image), "--stop")
    assert not is_mounted(pod.mnt)
    mnt = pod.base / "restored"
    mnt.mkdir()
    control = pod.base / "restored.sock"
    sandboxfs("pod", "restore", "--control", str(control), str(image), str(mnt),
              f"sandbox={pod.base / 'sandbox'}", f"app={pod.base / 'app'}")
    pid = daemon_pid(mnt)
    try:
        assert sorted(os.listdir(mnt)) == ["app", "sandbox"]
        for container in ("sandbox", "app"):
            assert (mnt / container / "cache" / "shared.txt").read_text() == \
                "in the pod master\n"
        assert (mnt / "app" / "cache" / "shared.txt").stat().st_ino == \
            (mnt / "sandbox" / "cache" / "shared.txt").stat().st_ino  # still one master
        assert (mnt / "sandbox" / "dev" / "shm" / "seg").read_bytes() == b"\x00\x01shm"
        assert (mnt / "app" / "private").read_text() == "app only\n"
        assert not (mnt / "sandbox" / "private").exists()
        assert not (mnt / "sandbox" / "file.txt").exists()
        assert (mnt / "app" / "file.txt").read_text() == "hello lower\n"
        (mnt / "app" / "cache" / "after").write_text("live again\n")
        assert (mnt / "sandbox" / "cache" / "after").read_text() == "live again\n"
    finally:
        sandboxfs("umount", str(mnt))
        wait_gone([pid])


def test_a_name_absent_in_one_container_shows_once_another_creates_it(pod: PodSetup) -> None:
    """A master is one tree: a name one container looked for in vain (a
    negative entry the kernel may keep) shows there once another container
    creates it, and its listing shows it too."""
    app = _add(pod, "app")
    sandbox = pod.mnt / "sandbox"
    assert not (app / "cache" / "later").exists()
    before = sorted(os.listdir(app / "cache"))
    (sandbox / "cache" / "later").write_text("made by the sandbox\n")
    assert (app / "cache" / "later").read_text() == "made by the sandbox\n"
    assert sorted(os.listdir(app / "cache")) == sorted([*before, "later"])
    (sandbox / "cache" / "later").unlink()
    assert not (app / "cache" / "later").exists()
    assert sorted(os.listdir(app / "cache")) == before
