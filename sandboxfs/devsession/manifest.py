"""The host directory as it was when a session began.

`commit` refuses a path the host changed since then (unless forced): it
compares the host's current (type, mode, size, mtime, inode) with this
record. Recorded by walking the directory once at session start; symlinks
are recorded, never followed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

Entry = tuple[int, int, int, int, int]  # type bits, mode, size, mtime_ns, ino


def entry_of(st: os.stat_result) -> Entry:
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size,
            st.st_mtime_ns, st.st_ino)


def record(directory: str) -> dict[str, Entry]:
    """Every path under `directory` (relative, `/`-separated), with its facts."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        rel_dir = os.path.relpath(dirpath, directory)
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                out[rel] = entry_of(os.lstat(os.path.join(dirpath, name)))
            except FileNotFoundError:
                continue
    return out


def save(path: Path, manifest: dict[str, Entry]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest))
    tmp.rename(path)


def load(path: Path) -> dict[str, Entry]:
    data = json.loads(path.read_text())
    return {k: (int(v[0]), int(v[1]), int(v[2]), int(v[3]), int(v[4])) for k, v in data.items()}


def current(directory: str, rel: str) -> Entry | None:
    try:
        return entry_of(os.lstat(os.path.join(directory, rel)))
    except FileNotFoundError:
        return None
