"""`sandboxfs run`: the bundle mounted, its process run inside a private mount
and PID namespace with the kernel's /proc, /sys, /dev/pts, then unmounted."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.mounting import SANDBOXFS, tree_digest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bundle"


@pytest.fixture(scope="module")
def example() -> Path:
    """The example bundle, its busybox rootfs built if missing (as `make demo` does)."""
    subprocess.run(["bash", str(REPO / "examples" / "make-rootfs.sh")], check=True,
                   capture_output=True)
    return EXAMPLE


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SANDBOXFS, "run", *args], capture_output=True, text=True, timeout=60)


def our_mounts() -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines()
            if "fuse.sandboxfs" in line and "/run/" in line]


def test_run_the_example_bundle(example: Path) -> None:
    before = tree_digest(example / "rootfs")
    proc = run(str(example))
    assert proc.returncode == 0, proc.stderr
    assert "hello from" in proc.stdout and "motd edited inside" in proc.stdout
    assert tree_digest(example / "rootfs") == before
    assert our_mounts() == []


def test_pid_namespace_proc_dev_and_exit_status(example: Path) -> None:
    script = ("echo pid=$$; test -e /proc/1/status && echo proc-ok; "
              "echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; "
              "test -d /dev/pts && echo pts-ok; touch /sys/x 2>/dev/null || echo sys-ro; exit 3")
    proc = run(str(example), "--", "/bin/sh", "-c", script)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "pid=1"
    assert {"proc-ok", "null-ok", "4", "pts-ok", "sys-ro"} <= set(lines)
    assert our_mounts() == []


def test_process_user_env_and_cwd(example: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "rootfs").symlink_to(example / "rootfs")
    config = json.loads((example / "config.json").read_text())
    config["process"] = {"args": ["sh", "-c", "id -u; id -g; id -G; pwd; echo $GREETING"],
                         "env": ["PATH=/bin:/usr/bin", "GREETING=hi there"],
                         "cwd": "/var", "user": {"uid": 1000, "gid": 1001,
                                                 "additionalGids": [1002]}}
    (bundle / "config.json").write_text(json.dumps(config))
    proc = run(str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1000", "1001", "1001 1002", "/var", "hi there"]


def test_bad_process_field_exits_2(example: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(example, bundle, symlinks=True, ignore=shutil.ignore_patterns("rootfs"))
    (bundle / "rootfs").symlink_to(example / "rootfs")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["env"] = ["NOEQUALS"]
    (bundle / "config.json").write_text(json.dumps(config))
    proc = run(str(bundle))
    assert proc.returncode == 2 and "process.env[0]" in proc.stderr
    assert our_mounts() == []
