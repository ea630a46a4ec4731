"""The compiled plan: frozen mount infos the daemon mounts in order.

These objects are the only thing a filesystem or the daemon learns about
configuration (filesystems never parse options), and the JSON form is what
`sandboxfs plan` prints and docs/plan.md specifies, so both views come from
the same fields here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandboxfs.plan.options import FLAG_NAMES

if TYPE_CHECKING:  # sandboxfs.hints imports plan.options: keep the import one-way at run time
    from sandboxfs.hints import MountHint

# Filesystems that serve a mount (MountInfo.type).
GOFER = "9p"
TMPFS = "tmpfs"
DEVTMPFS = "devtmpfs"
DEVPTS = "devpts"
PROC = "proc"
SYSFS = "sysfs"

ROOT_DEVICE = "9pfs-/"
NO_DEVICE = "none"


def gofer_device(destination: str) -> str:
    """Device name of a gofer-backed mount: stable across checkpoint/restore.

    Restore re-attaches each gofer mount by this name, so it must depend on
    nothing but where the mount is (not on fd numbers or mount order).
    """
    return "9pfs-" + destination


@dataclass(frozen=True, slots=True)
class MountInfo:
    """One mount of the container tree, fully decided.

    `options` are as accepted from the spec (validated, order kept); the
    other fields are what those options mean, so nothing downstream reads
    `options` again. `data` holds filesystem data options already converted
    (`size` in bytes, `mode` as an int). `revalidate` is the revalidation
    window in seconds and is set only when `cache` is "revalidate".
    `source_kind` is "dir" or "file" for gofer-backed mounts (a file bind
    gets a memory overlay of its own, `overlay`), None otherwise. `index`
    is the entry's position in config.json's `mounts`, None for mounts the
    plan adds itself; `hint` names the pod mount hint serving it.
    """

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()
    device: str = NO_DEVICE
    readonly: bool = False
    cache: str = "exclusive"
    revalidate: float | None = None
    flags: frozenset[str] = frozenset()
    propagation: str | None = None
    recursive: bool = False
    source_kind: str | None = None
    overlay: bool = False
    data: tuple[tuple[str, int], ...] = ()
    hint: str | None = None
    index: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MountInfo:
        """The inverse of `to_json`, for a plan sent to a running daemon (pods)."""
        revalidate = d.get("revalidate")
        return cls(
            destination=str(d["destination"]),
            type=str(d["type"]),
            source=str(d["source"]),
            options=tuple(str(o) for o in d.get("options", ())),
            device=str(d.get("device", NO_DEVICE)),
            readonly=bool(d.get("readonly", False)),
            cache=str(d.get("cache", "exclusive")),
            revalidate=float(revalidate) if revalidate is not None else None,
            flags=frozenset(name for name, on in dict(d.get("flags", {})).items() if on),
            propagation=d.get("propagation"),
            recursive=bool(d.get("recursive", False)),
            source_kind=d.get("source_kind"),
            overlay=bool(d.get("overlay", False)),
            data=tuple((str(k), int(v)) for k, v in dict(d.get("data", {})).items()),
            hint=d.get("hint"),
            index=d.get("index"),
        )

    def to_json(self) -> dict[str, Any]:
        """The mount as `sandboxfs plan` prints it (docs/plan.md)."""
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
            "device": self.device,
            "readonly": self.readonly,
            "cache": self.cache,
            "revalidate": self.revalidate,
            "flags": {name: name in self.flags for name in FLAG_NAMES},
            "propagation": self.propagation,
            "recursive": self.recursive,
            "source_kind": self.source_kind,
            "overlay": self.overlay,
            "data": dict(self.data),
            "hint": self.hint,
            "index": self.index,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole tree: the root, then every mount with parents before children.

    `warnings` lists what the spec asked for that will not happen (skipped
    types, an ignored `/dev` mount), one line each, for the CLI to print.
    """

    root: MountInfo
    mounts: tuple[MountInfo, ...]
    hints: tuple[MountHint, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The plan as `sandboxfs plan` prints it."""
        return {
            "root": self.root.to_json(),
            "mounts": [m.to_json() for m in self.mounts],
            "hints": [h.to_json() for h in self.hints],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        """A plan sent to a running daemon: its root and mounts (hints are
        already applied to the mounts; the daemon needs no more)."""
        return cls(root=MountInfo.from_json(d["root"]),
                   mounts=tuple(MountInfo.from_json(m) for m in d["mounts"]),
                   warnings=tuple(str(w) for w in d.get("warnings", ())))

    def find(self, destination: str) -> MountInfo | None:
        """The last mount at `destination` (the one a path walk sees), if any."""
        for info in reversed(self.mounts):
            if info.destination == destination:
                return info
        return None
