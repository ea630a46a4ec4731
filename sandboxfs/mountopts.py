"""Mount options of the `mount.fuse3` form: `sandboxfs SOURCE MOUNTPOINT -o OPTS`.

This is how fuse-overlayfs is called (`lowerdir=A:B:C`, first lowerdir on
top, `\\:` escapes a colon) and how `mount -t fuse.sandboxfs` and
containerd's `fuse3.*` helpers call us, appending generic options such as
`rw`, `dev` or `nosuid`, which are accepted and applied where they mean
something to FUSE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        for item in split_options(text):
            key, _, value = item.partition("=")
            if key == "lowerdir":
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
