"""What the results were measured on: machine, kernel, and the versions of what was compared."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (done.stdout + done.stderr).strip()


def _first_line(argv: list[str]) -> str:
    text = _output(argv)
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return 0.0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _fuse_overlayfs_version() -> str:
    text = _output(["fuse-overlayfs", "--version"])
    for line in text.splitlines():
        if line.startswith("fuse-overlayfs"):
            return line.split("version")[-1].strip(": ")
    return text.splitlines()[0] if text else "unknown"


def _sandboxfs_commit(repo: Path) -> str:
    head = _first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(repo), "status", "--porcelain", "--", "sandboxfs",
                         "gofer"])
    return head + ("+dirty" if dirty not in ("", "unknown", "not found") else "")


def collect(repo: Path) -> dict[str, Any]:
    """Machine and version facts for the results file and the report header."""
    uname = os.uname()
    fuse3 = _first_line(["fusermount3", "--version"]).split()[-1]
    return {
        "machine": {
            "hostname": uname.nodename,
            "arch": uname.machine,
            "kernel": uname.release,
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "mem_gib": _mem_gib(),
        },
        "versions": {
            "python": sys.version.split()[0],
            "pyfuse3": _version("pyfuse3"),
            "trio": _version("trio"),
            "sandboxfs": f"{_version('sandboxfs')} ({_sandboxfs_commit(repo)})",
            "fuse-overlayfs": _fuse_overlayfs_version(),
            "libfuse (fusermount3)": fuse3,
            "git": _first_line(["git", "--version"]).split()[-1],
            "tar": _first_line(["tar", "--version"]).split()[-1],
        },
    }
