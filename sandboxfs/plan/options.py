"""The mount-option vocabulary of the plan: what an OCI mount may ask for.

Every option a spec mount carries is checked here against one table. The
table is strict on purpose: an option we do not understand might have been
meant to restrict the container (`noexec` misspelt, `uidmap=` we cannot
honour), and quietly dropping it would hand the container more than it was
promised. So an unknown option is an error, never a shrug.

Three kinds of option exist:

* generic mount(8) flags (`ro`, `nosuid`, `noatime`, ...), valid on any type;
* bind and propagation flags (`rbind`, `rprivate`, ...): propagation is
  recorded but means nothing here, because sandboxfs has one private mount
  namespace per sandbox and nothing propagates in or out of it;
* data options of one filesystem type (`size=` for tmpfs, `ptmxmode=` for
  devpts) and sandboxfs's own `sandboxfs.cache=` / `sandboxfs.revalidate=`
  for gofer-backed mounts.

Parsing is pure: `parse_options` turns a list of strings into a frozen
`ParsedOptions` or raises `OptionError` with a message naming the option;
the caller adds which mount it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Flags the plan reports, each with the option that sets it and the one that
# clears it. Later options win, as mount(8) applies them left to right.
FLAG_NAMES = ("nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime",
              "strictatime", "sync", "dirsync")
_FLAG_SET = {name: name for name in FLAG_NAMES}
_FLAG_CLEAR = {"suid": "nosuid", "dev": "nodev", "exec": "noexec", "atime": "noatime",
               "diratime": "nodiratime", "norelatime": "relatime",
               "nostrictatime": "strictatime", "async": "sync"}

# noatime, relatime and strictatime choose one atime behaviour; the last wins.
_ATIME_MODES = frozenset({"noatime", "relatime", "strictatime"})

# mount(8) options that are valid but change nothing we serve; they stay in
# the accepted option list so a reader sees the spec as written.
NEUTRAL = frozenset({"defaults", "auto", "noauto", "nofail", "_netdev", "lazytime",
                     "nolazytime", "iversion", "noiversion", "mand", "nomand",
                     "silent", "loud"})

BIND = frozenset({"bind", "rbind"})
PROPAGATION = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave",
                         "unbindable", "runbindable"})

# Cache policies of gofer-backed mounts (docs/architecture.md, "Cache policies").
CACHE_POLICIES = ("exclusive", "revalidate", "none")
CACHE_OPTION = "sandboxfs.cache"
REVALIDATE_OPTION = "sandboxfs.revalidate"
DEFAULT_REVALIDATE_SECONDS = 1.0
# A window longer than this is a typo, not a policy: a shared volume whose
# changes show up an hour late is as good as exclusive, so say exclusive.
MAX_REVALIDATE_SECONDS = 3600.0

# Filesystem types a spec mount may name, and the data options each takes.
# Values: "size" (bytes, k/m/g/t suffix), "count" (like size, may be 0),
# "mode" (octal), "id" (uid or gid), "flag" (no value).
DATA_OPTIONS: dict[str, dict[str, str]] = {
    "tmpfs": {"size": "size", "nr_inodes": "count", "mode": "mode", "uid": "id", "gid": "id"},
    "devtmpfs": {"size": "size", "nr_inodes": "count", "mode": "mode"},
    "devpts": {"newinstance": "flag", "ptmxmode": "mode", "mode": "mode", "uid": "id",
               "gid": "id"},
    "proc": {},
    "sysfs": {},
    "bind": {},
}
SUPPORTED_TYPES = frozenset(DATA_OPTIONS)

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "unchanged" to the kernel, never an owner


class OptionError(ValueError):
    """An option the plan cannot accept; the message names the option."""


@dataclass(frozen=True, slots=True)
class ParsedOptions:
    """What a mount's options ask for, after later options override earlier ones.

    `data` holds the filesystem data options as (name, value) pairs in the
    order first given, values already converted (bytes, modes as ints), so a
    filesystem never parses text; a tuple keeps the object hashable.
    """

    readonly: bool = False
    flags: frozenset[str] = frozenset()
    bind: bool = False
    recursive: bool = False
    propagation: str | None = None
    data: tuple[tuple[str, int], ...] = ()
    cache: str | None = None
    revalidate: float | None = None

    def flag(self, name: str) -> bool:
        """True if the flag `name` (one of FLAG_NAMES) is in effect."""
        return name in self.flags


def _number(name: str, text: str, *, allow_zero: bool) -> int:
    body = text.strip().lower()
    scale = 1
    if body and body[-1] in _UNITS:
        body, scale = body[:-1], _UNITS[body[-1]]
    if body.endswith("%"):
        raise OptionError(f"{name}={text}: percentages are not supported; give a size")
    if not body.isdigit():
        raise OptionError(f"{name}={text}: not a number with an optional k/m/g/t suffix")
    value = int(body) * scale
    if value == 0 and not allow_zero:
        raise OptionError(f"{name}={text}: must be positive")
    return value


def _mode(name: str, text: str) -> int:
    if not text or any(ch not in "01234567" for ch in text):
        raise OptionError(f"{name}={text}: not an octal mode")
    value = int(text, 8)
    if value > 0o7777:
        raise OptionError(f"{name}={text}: mode bits beyond 07777")
    return value


def _id(name: str, text: str) -> int:
    if not text.isdigit():
        raise OptionError(f"{name}={text}: not a numeric id")
    value = int(text)
    if value > _MAX_ID:
        raise OptionError(f"{name}={text}: id out of range")
    return value


def _data_value(kind: str, name: str, value: str | None) -> int:
    if kind == "flag":
        if value is not None:
            raise OptionError(f"{name}={value}: {name} takes no value")
        return True  # shown as JSON true; still an int for arithmetic
    if value is None:
        raise OptionError(f"{name}: needs a value ({name}=...)")
    if kind == "size":
        return _number(name, value, allow_zero=False)
    if kind == "count":
        return _number(name, value, allow_zero=True)
    if kind == "mode":
        return _mode(name, value)
    return _id(name, value)


def _revalidate_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise OptionError(f"{REVALIDATE_OPTION}={text}: not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_REVALIDATE_SECONDS:
        raise OptionError(f"{REVALIDATE_OPTION}={text}: must be between 0 and "
                          f"{MAX_REVALIDATE_SECONDS:g} seconds")
    return seconds


def parse_options(options: Iterable[str], fstype: str) -> ParsedOptions:
    """Check `options` for a mount served as `fstype` ("bind" for gofer mounts).

    Raises OptionError naming the first option that is unknown, malformed, or
    not meant for this type. `fstype` must be one of SUPPORTED_TYPES.
    """
    readonly = False
    flags: set[str] = set()
    bind = recursive = False
    propagation: str | None = None
    data: dict[str, int] = {}
    cache: str | None = None
    revalidate: float | None = None
    allowed = DATA_OPTIONS[fstype]
    for option in options:
        name, eq, raw = option.partition("=")
        value = raw if eq else None
        if value is None and name in ("ro", "rw"):
            readonly = name == "ro"
        elif value is None and name in _FLAG_SET:
            if name in _ATIME_MODES:
                flags.difference_update(_ATIME_MODES)  # one atime mode at a time
            flags.add(name)
        elif value is None and name in _FLAG_CLEAR:
            flags.discard(_FLAG_CLEAR[name])
        elif value is None and name in NEUTRAL:
            pass
        elif value is None and name in BIND:
            bind = True
            recursive = recursive or name == "rbind"
        elif value is None and name in PROPAGATION:
            propagation = name
        elif name in allowed:
            data[name] = _data_value(allowed[name], name, value)
        elif name in (CACHE_OPTION, REVALIDATE_OPTION):
            if fstype != "bind":
                raise OptionError(f"{option}: only gofer-backed (bind) mounts have a "
                                  f"cache policy, not {fstype}")
            if value is None:
                raise OptionError(f"{name}: needs a value ({name}=...)")
            if name == CACHE_OPTION:
                if value not in CACHE_POLICIES:
                    raise OptionError(f"{option}: the cache policy is one of "
                                      + ", ".join(CACHE_POLICIES))
                cache = value
            else:
                revalidate = _revalidate_seconds(value)
        elif name in _known_data_names():
            raise OptionError(f"{option}: not an option of {fstype} mounts")
        else:
            raise OptionError(f"unknown mount option {option!r}")
    if revalidate is not None and cache not in (None, "revalidate"):
        raise OptionError(f"{REVALIDATE_OPTION} contradicts {CACHE_OPTION}={cache}")
    return ParsedOptions(readonly=readonly, flags=frozenset(flags), bind=bind,
                         recursive=recursive, propagation=propagation,
                         data=tuple(data.items()), cache=cache, revalidate=revalidate)


def _known_data_names() -> frozenset[str]:
    return frozenset(name for table in DATA_OPTIONS.values() for name in table)


def asks_for_bind(options: Sequence[str]) -> bool:
    """True if the options make this a bind mount whatever its type says.

    The runtime-spec lets a bind mount be written with a dummy type ("none")
    and `bind`/`rbind` in its options; runc treats those as binds, so do we.
    """
    return any(option in BIND for option in options)
