"""Mount hints: what a pod's annotations tell us about its volumes.

A container spec says where a volume goes, not who else uses it. Kubernetes
(through the gVisor shim conventions, see `sandboxfs.kubelet`) adds that in
the sandbox spec's annotations, one key per field of a named volume, in
either of two spellings that mean the same thing:

    gvisor.dev/spec/mount/NAME/FIELD = VALUE
    dev.gvisor.spec.mount.NAME.FIELD = VALUE

Fields: `source` (host path; container mounts with this source are the
volume), `type` (`tmpfs` or `bind`), `share` (`container`: one container
uses it; `pod`: several containers of the pod; `shared`: also processes
outside the sandbox, e.g. NFS), `options` (comma-separated mount options)
and `lifecycle` (`pod`: created and destroyed with the pod, as emptyDir is;
absent: the volume outlives the pod).

Parsing is strict where runsc's later versions only log: a hint we drop
silently would turn a pod-shared volume into per-container copies, and
containers that expect to see each other's writes would not. Every error is
a `SpecError` naming the annotation key to fix.

The hints are parsed from the *sandbox* spec; a container of the pod is
planned with the sandbox's hints (runsc does the same), which is why
`is_sandbox` lives here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandboxfs.plan.options import OptionError, ParsedOptions, parse_options
from sandboxfs.spec import SpecError

SLASH_PREFIX = "gvisor.dev/spec/mount/"
DOT_PREFIX = "dev.gvisor.spec.mount."

FIELDS = ("source", "type", "share", "options", "lifecycle")
TYPES = ("tmpfs", "bind")
SHARES = ("container", "pod", "shared")
LIFECYCLES = ("pod",)

# Which container a spec describes, as containerd and CRI-O write it.
CONTAINER_TYPE_KEYS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")
SANDBOX_TYPE = "sandbox"


@dataclass(frozen=True, slots=True)
class MountHint:
    """One named volume of the pod, as its annotations describe it.

    `options` are sorted so that they compare equal however the annotation
    ordered them; `keys` remembers which annotation set each field, so later
    errors (a conflicting container mount) can name it.
    """

    name: str
    source: str
    type: str
    share: str
    options: tuple[str, ...] = ()
    lifecycle: str | None = None
    keys: tuple[tuple[str, str], ...] = ()

    def key(self, field: str) -> str:
        """The annotation key that set `field`, or the one to add if none did."""
        for name, key in self.keys:
            if name == field:
                return key
        return hint_key(self.name, field)

    def to_json(self) -> dict[str, Any]:
        """The hint as `sandboxfs plan` shows it."""
        return {"name": self.name, "source": self.source, "type": self.type,
                "share": self.share, "options": list(self.options),
                "lifecycle": self.lifecycle}

    @property
    def parsed_options(self) -> ParsedOptions:
        """The options as flags; valid, since parse_hints checked them."""
        return parse_options(self.options, self.type)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A replica (container mount) less restrictive than its pod master."""

    replica: str
    master: str

    def __str__(self) -> str:
        return f"{self.replica} replica of a {self.master} master"


def hint_key(name: str, field: str, *, dotted: bool = True) -> str:
    """The annotation key for `field` of volume `name`, in either spelling."""
    if dotted:
        return f"{DOT_PREFIX}{name}.{field}"
    return f"{SLASH_PREFIX}{name}/{field}"


def is_hint_key(key: str) -> bool:
    """True if `key` is meant as a mount hint (well-formed or not)."""
    return key.startswith((SLASH_PREFIX, DOT_PREFIX))


def split_hint_key(key: str) -> tuple[str, str]:
    """`gvisor.dev/spec/mount/NAME/FIELD` or the dotted form → (NAME, FIELD).

    Raises SpecError naming the key if it has the wrong number of parts or an
    unclean name. The field is not checked here.
    """
    where = f"annotations[{key!r}]"
    if key.startswith(SLASH_PREFIX):
        parts = key[len(SLASH_PREFIX):].split("/")
        shape = f"{SLASH_PREFIX}NAME/FIELD"
    elif key.startswith(DOT_PREFIX):
        parts = key[len(DOT_PREFIX):].split(".")
        shape = f"{DOT_PREFIX}NAME.FIELD"
    else:
        raise SpecError(where, "not a mount hint")
    if len(parts) != 2:
        raise SpecError(where, f"a mount hint key has the shape {shape}")
    name, field = parts
    if not name or name in (".", "..") or posixpath.normpath(name) != name:
        raise SpecError(where, f"invalid mount hint name {name!r}")
    return name, field


def is_sandbox(annotations: Mapping[str, str]) -> bool:
    """True unless the annotations say this is a non-sandbox container of a pod.

    A spec with no container-type annotation is a lone container, which is
    its own sandbox (the gVisor shim decides the same way).
    """
    for key in CONTAINER_TYPE_KEYS:
        if key in annotations:
            return annotations[key] == SANDBOX_TYPE
    return True


def _options_list(value: str) -> list[str]:
    return [] if value == "" else value.split(",")


def parse_hints(annotations: Mapping[str, str]) -> tuple[MountHint, ...]:
    """All mount hints of a sandbox spec, sorted by name.

    Raises SpecError naming the annotation key for: a key of the wrong shape,
    an empty or unclean name, an unknown field, an empty source, an invalid
    type, share, lifecycle or option, a field given twice with different
    values (once in each spelling), a hint missing source, type or share,
    and two hints with the same source.
    """
    fields: dict[str, dict[str, tuple[str, str]]] = {}
    for key in sorted(annotations):
        if not is_hint_key(key):
            continue
        value = annotations[key]
        name, field = split_hint_key(key)
        where = f"annotations[{key!r}]"
        if field not in FIELDS:
            raise SpecError(where, f"unknown mount hint field {field!r}; "
                                   f"fields are {', '.join(FIELDS)}")
        if field == "source" and not value:
            raise SpecError(where, "the source must not be empty")
        if field == "type" and value not in TYPES:
            raise SpecError(where, f"invalid type {value!r}; types are {', '.join(TYPES)}")
        if field == "share" and value not in SHARES:
            raise SpecError(where, f"invalid share {value!r}; "
                                   f"shares are {', '.join(SHARES)}")
        if field == "lifecycle" and value not in LIFECYCLES:
            raise SpecError(where, f"invalid lifecycle {value!r}; "
                                   f"lifecycles are {', '.join(LIFECYCLES)}")
        seen = fields.setdefault(name, {})
        if field in seen and seen[field][1] != value:
            raise SpecError(where, f"contradicts {seen[field][0]}={seen[field][1]!r}")
        seen[field] = (key, value)

    hints: list[MountHint] = []
    for name in sorted(fields):
        seen = fields[name]
        for required in ("source", "type", "share"):
            if required not in seen:
                raise SpecError(f"annotations[{hint_key(name, required)!r}]",
                                f"missing; mount hint {name!r} needs source, type and share")
        options = sorted(_options_list(seen["options"][1])) if "options" in seen else []
        if options:
            try:
                parse_options(options, seen["type"][1])
            except OptionError as exc:
                raise SpecError(f"annotations[{seen['options'][0]!r}]", str(exc)) from None
        hints.append(MountHint(
            name=name,
            source=seen["source"][1],
            type=seen["type"][1],
            share=seen["share"][1],
            options=tuple(options),
            lifecycle=seen["lifecycle"][1] if "lifecycle" in seen else None,
            keys=tuple((field, key) for field, (key, _) in sorted(seen.items())),
        ))

    by_source: dict[str, MountHint] = {}
    for hint in hints:
        source = posixpath.normpath(hint.source)
        if source in by_source:
            other = by_source[source]
            raise SpecError(f"annotations[{hint.key('source')!r}]",
                            f"mount hints {other.name!r} and {hint.name!r} have the same "
                            f"source {hint.source}")
        by_source[source] = hint
    return tuple(hints)


def find_hint(hints: Sequence[MountHint], source: str) -> MountHint | None:
    """The hint whose source is `source` (compared as normalised paths), if any."""
    if not source:
        return None
    wanted = posixpath.normpath(source)
    for hint in hints:
        if posixpath.normpath(hint.source) == wanted:
            return hint
    return None


def compatibility_conflicts(replica: Sequence[str], master: Sequence[str],
                            *, replica_type: str = "bind",
                            master_type: str = "bind") -> tuple[Conflict, ...]:
    """Why a container mount (replica) cannot be served by a pod master.

    A replica shares the master's filesystem, so it cannot be less
    restrictive than the master: a read-write replica of a read-only master,
    or an `atime`, `exec`, `suid` or `dev` replica of a `noatime`, `noexec`,
    `nosuid` or `nodev` master, would promise what the master withholds. A
    replica may be stricter (`ro` over `rw`). Options are taken as mount(8)
    applies them, later winning, defaults being `rw,suid,dev,exec` with atime
    updates. Raises OptionError if either list is not valid for its type.
    """
    rep = parse_options(replica, replica_type)
    mas = parse_options(master, master_type)
    conflicts: list[Conflict] = []
    if mas.readonly and not rep.readonly:
        conflicts.append(Conflict("rw", "ro"))
    for restrictive, permissive in (("noatime", "atime"), ("noexec", "exec"),
                                    ("nosuid", "suid"), ("nodev", "dev")):
        if mas.flag(restrictive) and not rep.flag(restrictive):
            conflicts.append(Conflict(permissive, restrictive))
    return tuple(conflicts)
