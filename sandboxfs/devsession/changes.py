"""A session's changes as a developer reads them: added, modified, deleted.

The daemon lists its upper (`sandboxfs.overlay.changes`); this module
turns that list, with the manifest of the host directory at session start,
into paths added, modified and deleted (a deleted directory is one path),
which `diff`, `commit` and `export` share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandboxfs.control import request
from sandboxfs.devsession.manifest import Entry
from sandboxfs.devsession.state import Session
from sandboxfs.mounts import control_path


@dataclass(frozen=True, slots=True)
class UpperEntry:
    path: str
    kind: str  # as sandboxfs.overlay.changes.Change.kind
    size: int


@dataclass(slots=True)
class Changes:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    entries: list[UpperEntry] = field(default_factory=list)  # the upper, in walk order

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "modified": self.modified, "deleted": self.deleted}

    def kind_of(self, path: str) -> str | None:
        for entry in self.entries:
            if entry.path == path:
                return entry.kind
        return None


def upper_entries(session: Session) -> list[UpperEntry]:
    """The session daemon's upper, entry by entry."""
    reply = request(str(control_path(str(session.mountpoint))), {"op": "changes"})
    return [UpperEntry(c["path"], c["kind"], int(c["size"])) for c in reply["changes"]]


def _under(path: str, top: str) -> bool:
    return path.startswith(top + "/")


def classify(entries: list[UpperEntry], manifest: dict[str, Entry],
             session_entry: Callable[[str], Entry | None] = lambda path: None) -> Changes:
    """Added, modified and deleted paths (deletions collapsed to their top path).

    `session_entry` gives a path's facts as the session shows them: a file
    whose type, mode, size and mtime equal the manifest's (a committed one)
    is no longer a change.
    """
    out = Changes(entries=entries)
    in_upper = {e.path for e in entries}
    for entry in entries:
        existed = entry.path in manifest
        if entry.kind == "whiteout":
            if existed:
                out.deleted.append(entry.path)
        elif entry.kind == "opaque-dir":
            # It hides what the host has below it: a change while that is anything.
            gone = sorted(p for p in manifest if _under(p, entry.path) and p not in in_upper)
            if not existed:
                out.added.append(entry.path)
            elif gone:
                out.modified.append(entry.path)
            for path in gone:
                if not any(_under(path, top) for top in out.deleted):
                    out.deleted.append(path)
        elif entry.kind == "dir":
            if not existed:
                out.added.append(entry.path)
        elif existed and _same(manifest[entry.path], session_entry(entry.path)):
            continue
        else:
            (out.modified if existed else out.added).append(entry.path)
    return out


def _same(host: Entry, session: Entry | None) -> bool:
    return session is not None and host[:4] == session[:4]
