"""Named dev sessions: where they live and what is recorded of them.

A session is a directory of the host (its lower) seen through a sandboxfs
mount with a memory upper, kept after the command that used it exits, until
it is dropped. Its record lives in the state directory
(`$XDG_STATE_HOME/sandboxfs` or `/var/lib/sandboxfs`) under
`sessions/NAME/`: `session.json` (the directory, the mountpoint, when it
began), `manifest.json` (each host path's type, mode, size, mtime and inode
number when the session began, so `commit` can tell a host change from
the session's own), `upper.img` (the upper checkpointed each time `shell`
returns, restored when the session's daemon has to start again) and
`mnt/`, the mountpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class SessionError(ValueError):
    """A bad session name, or a session that does not (or already does) exist."""


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME")
    return Path(base) / "sandboxfs" if base else Path("/var/lib/sandboxfs")


def sessions_dir() -> Path:
    return state_dir() / "sessions"


def default_name(directory: str) -> str:
    """A session name from the directory's name (cleaned to a safe file name)."""
    base = os.path.basename(os.path.normpath(directory)) or "root"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", base).lstrip(".-") or "session"
    return cleaned[:128]


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise SessionError(f"session name {name!r}: use letters, digits, '.', '_', '-'")


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    directory: str  # the host directory (the lower)
    began: float  # seconds since the epoch

    @property
    def home(self) -> Path:
        return sessions_dir() / self.name

    @property
    def mountpoint(self) -> Path:
        return self.home / "mnt"

    @property
    def manifest_path(self) -> Path:
        return self.home / "manifest.json"

    @property
    def upper_image(self) -> Path:
        """The upper as `shell` last left it (a checkpoint image)."""
        return self.home / "upper.img"

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.home / "session.json.tmp"
        tmp.write_text(json.dumps(asdict(self)))
        tmp.rename(self.home / "session.json")

    @classmethod
    def load(cls, name: str) -> Session:
        check_name(name)
        try:
            data = json.loads((sessions_dir() / name / "session.json").read_text())
        except FileNotFoundError:
            raise SessionError(f"no session named {name!r}") from None
        return cls(name=data["name"], directory=data["directory"], began=data["began"])

    @classmethod
    def new(cls, name: str, directory: str) -> Session:
        check_name(name)
        return cls(name=name, directory=os.path.realpath(directory), began=time.time())

    def remove_record(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


def all_sessions() -> list[Session]:
    out = []
    if sessions_dir().is_dir():
        for entry in sorted(sessions_dir().iterdir()):
            try:
                out.append(Session.load(entry.name))
            except (SessionError, ValueError, KeyError, OSError):
                continue
    return out
