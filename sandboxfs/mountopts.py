"""Mount options of the `mount.fuse3` form: `sandboxfs SOURCE MOUNTPOINT -o OPTS`.

This is how fuse-overlayfs is called (`lowerdir=A:B:C`, first lowerdir on
top, `\\:` escapes a colon) and how `mount -t fuse.sandboxfs` and
containerd's `fuse3.*` helpers call us, appending generic options such as
`rw`, `dev` or `nosuid`, which are accepted and applied where they mean
something to FUSE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sandboxfs.idmap import IdMapError, IdMapping, IdRange, mapping_of, parse_id, parse_ranges

# Generic mount(8) options mount.fuse3 may hand us. The ones FUSE understands
# are passed on to the kernel mount; the rest mean nothing for us.
KERNEL_FLAGS = frozenset({"dev", "nodev", "suid", "nosuid", "exec", "noexec",
                          "atime", "noatime", "relatime", "norelatime",
                          "strictatime", "nostrictatime", "diratime", "nodiratime",
                          "sync", "async", "dirsync", "ro", "rw"})
IGNORED = frozenset({"defaults", "auto", "noauto", "user", "nouser", "users", "_netdev",
                     "nofail", "allow_other", "default_permissions", "lazytime",
                     "nolazytime", "silent", "loud"})


class OptionError(ValueError):
    """An option we do not accept; the message names it."""


#: Id-mapping options (sandboxfs/idmap.py): fuse-overlayfs's and containerd's names.
UID_MAP_KEYS = ("uidmapping", "uidmap")
GID_MAP_KEYS = ("gidmapping", "gidmap")
#: A bare `INSIDE:OUTSIDE:LENGTH` after a mapping option continues it: the
#: `0:1000:1,1:110000:65536` form had its comma taken for an option separator.
_TRIPLE = re.compile(r"^\d+:\d+:\d+$")


@dataclass(slots=True)
class MountOptions:
    """What the options ask of the mount."""

    lowerdirs: list[str] = field(default_factory=list)
    upper: str = "memory"
    upperdir: str | None = None  # an on-disk upper in overlayfs's format (docs/overlay.md)
    workdir: str | None = None
    upper_size: int | None = None
    kernel_flags: list[str] = field(default_factory=list)
    fsname: str | None = None
    foreground: bool = False
    log: str | None = None
    uid_ranges: tuple[IdRange, ...] = ()
    gid_ranges: tuple[IdRange, ...] = ()
    squash_uid: int | None = None
    squash_gid: int | None = None

    def idmapping(self) -> IdMapping | None:
        """The id mapping asked for, or None when owners are shown as stored."""
        mapping = mapping_of(self.uid_ranges, self.gid_ranges,
                             squash_uid=self.squash_uid, squash_gid=self.squash_gid)
        return None if mapping.is_identity else mapping


def split_lowerdir(value: str) -> list[str]:
    """`A:B\\:C` → ["A", "B:C"]; empty components are an error."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            current.append(nxt)
        elif ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    if any(not p for p in parts):
        raise OptionError(f"lowerdir={value!r}: empty layer")
    return parts


def split_options(text: str) -> list[str]:
    """Split `-o` text at commas, keeping `\\,` escaped commas."""
    out: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch if ch == "," else "\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    out.append("".join(current))
    return [o for o in out if o]


def parse_size(value: str) -> int:
    """`512M`, `2g`, `4096`, as tmpfs `size=` takes them."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = value.strip().lower()
    try:
        if text and text[-1] in units:
            size = int(text[:-1]) * units[text[-1]]
        else:
            size = int(text)
    except ValueError:
        raise OptionError(f"size {value!r} is not a number with an optional k/m/g/t") from None
    if size <= 0:
        raise OptionError(f"size {value!r} must be positive")
    return size


def parse_mount_options(texts: list[str]) -> MountOptions:
    """Parse every `-o` argument given, in order; later options win."""
    opts = MountOptions()
    for text in texts:
        continuing: tuple[str, str] | None = None  # (option, value so far)
        for item in split_options(text):
            if continuing is not None and _TRIPLE.match(item):
                continuing = (continuing[0], continuing[1] + "," + item)
                _set_idmap(opts, *continuing)
                continue
            continuing = None
            key, _, value = item.partition("=")
            if key in UID_MAP_KEYS + GID_MAP_KEYS:
                _set_idmap(opts, key, value)
                continuing = (key, value)
            elif key in ("squash_to_root", "squash_to_uid", "squash_to_gid"):
                _set_squash(opts, key, value)
            elif key == "lowerdir":
                opts.lowerdirs = split_lowerdir(value)
            elif key == "upper":
                if value != "memory":
                    raise OptionError(f"upper={value!r}: only upper=memory is supported")
                opts.upper = value
            elif key == "upperdir":
                if not value:
                    raise OptionError("upperdir= needs a directory")
                opts.upperdir = value
            elif key == "workdir":
                if not value:
                    raise OptionError("workdir= needs a directory")
                opts.workdir = value
            elif key in ("upper_size", "size"):
                opts.upper_size = parse_size(value)
            elif key == "fsname":
                opts.fsname = value
            elif key == "subtype":
                pass  # always sandboxfs
            elif key in KERNEL_FLAGS and not value:
                opts.kernel_flags.append(key)
            elif key in IGNORED and not value:
                pass
            else:
                raise OptionError(f"unknown mount option {item!r}")
    return opts


def _set_idmap(opts: MountOptions, key: str, value: str) -> None:
    try:
        ranges = parse_ranges(key, value)
    except IdMapError as exc:
        raise OptionError(str(exc)) from None
    if key in UID_MAP_KEYS:
        opts.uid_ranges = ranges
    else:
        opts.gid_ranges = ranges


def _set_squash(opts: MountOptions, key: str, value: str) -> None:
    if key == "squash_to_root":
        if value:
            raise OptionError(f"squash_to_root={value!r}: takes no value")
        opts.squash_uid = opts.squash_gid = 0
        return
    try:
        number = parse_id(key, value)
    except IdMapError as exc:
        raise OptionError(str(exc)) from None
    if key == "squash_to_uid":
        opts.squash_uid = number
    else:
        opts.squash_gid = number
