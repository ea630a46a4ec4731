"""`commit`: apply a session's changes to the host directory, or none of them.

Every selected path is checked first: a path the host changed since the
session began (its type, mode, size, mtime or inode differ from the
manifest, or it appeared) is a conflict, and with any conflict nothing is
applied (unless forced). Then deletions (deepest first), directories
(parents first), and files and links, each written to a temporary name
in its directory and renamed over the target, so no file is ever seen
half-written.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sandboxfs.devsession.changes import Changes
from sandboxfs.devsession.manifest import Entry, current

Progress = Callable[[int, int], None]  # files done, bytes done


@dataclass(slots=True)
class Plan:
    deletions: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # added or modified, parents first
    conflicts: list[str] = field(default_factory=list)


def _selected(path: str, wanted: Sequence[str]) -> bool:
    if not wanted:
        return True
    return any(path == w or path.startswith(w + "/") or w.startswith(path + "/")
               for w in wanted)


def plan_commit(changes: Changes, manifest: dict[str, Entry], host_dir: str,
                wanted: Sequence[str] = ()) -> Plan:
    wanted = [w.strip("/") for w in wanted]
    out = Plan()
    for path in changes.deleted:
        if _selected(path, wanted):
            out.deletions.append(path)
    for path in changes.added + changes.modified:
        if _selected(path, wanted):
            out.writes.append(path)
    out.writes.sort(key=lambda p: (p.count("/"), p))
    out.deletions.sort(key=lambda p: -p.count("/"))
    for path in out.deletions + out.writes:
        before = manifest.get(path)
        now = current(host_dir, path)
        if now is None and before is None:
            continue
        if now is None or before is None or _differs(before, now):
            if not (before is not None and now is not None and stat.S_ISDIR(before[0])
                    and stat.S_ISDIR(now[0])):
                out.conflicts.append(path)
        for other, entry in manifest.items():
            if path in out.deletions and other.startswith(path + "/"):
                if current(host_dir, other) != entry:
                    out.conflicts.append(other)
    return out


def _differs(a: Entry, b: Entry) -> bool:
    return a != b


def apply(plan: Plan, session_root: str, host_dir: str, progress: Progress | None = None) -> int:
    """Carry out `plan`; returns the number of paths applied."""
    done = 0
    nbytes = 0
    for path in plan.deletions:
        target = os.path.join(host_dir, path)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
        done += 1
    for path in plan.writes:
        source = os.path.join(session_root, path)
        target = os.path.join(host_dir, path)
        st = os.lstat(source)
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(target) and not os.path.isdir(target):
                os.unlink(target)
            os.makedirs(target, exist_ok=True)
            os.chmod(target, stat.S_IMODE(st.st_mode))
        else:
            nbytes += _replace(source, target, st)
        os.lchown(target, st.st_uid, st.st_gid)
        done += 1
        if progress is not None:
            progress(done, nbytes)
    return done


def _replace(source: str, target: str, st: os.stat_result) -> int:
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.sandboxfs-commit-{os.getpid()}")
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
    try:
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), tmp)
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(source, tmp, follow_symlinks=False)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        else:
            os.mknod(tmp, st.st_mode, st.st_rdev)
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return st.st_size if stat.S_ISREG(st.st_mode) else 0
