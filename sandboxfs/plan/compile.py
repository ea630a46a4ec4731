"""Compiling a bundle's config.json into the mount plan, as runsc does.

The rules, in the order they apply (docs/plan.md has the long form):

1. The root is the bundle's rootfs served by the gofer (`9p`, device `9pfs-/`).
2. `/dev` (devtmpfs) and `/dev/pts` (devpts) are always mounted: sandboxfs
   builds its own minimal device tree, so a spec mount of `/dev` itself is
   ignored with a warning, while a spec devpts at `/dev/pts` replaces ours.
3. Every spec mount, in spec order, is checked and compiled; a type we
   cannot serve (`mqueue`, `cgroup`, ...) is skipped with a warning naming
   it, never silently.
4. `/proc` and `/sys` are added when the spec has none, as the runtime-spec
   says a runtime should.
5. A tmpfs goes on `/tmp` only when nothing in the spec is mounted at or
   under `/tmp` and the rootfs's `/tmp` is missing or an empty directory:
   it is an optimisation, and it must never hide files.
6. The list is sorted, stably, by the length of the destination. A child's
   clean path is always longer than its parent's, so parents come first;
   runsc sorts by the same key, and stability keeps two mounts on one
   destination in spec order, so the later one is on top, as on Linux.

Compiling reads the host only to check bind sources and the rootfs's
`/tmp`; it happens before the daemon confines itself, and it is configuration,
so the plan records what it found rather than letting a filesystem look again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import sandboxfs.hints as hintlib  # a module import: hints imports plan.options
from sandboxfs.plan.model import (
    DEVPTS,
    DEVTMPFS,
    GOFER,
    NO_DEVICE,
    PROC,
    ROOT_DEVICE,
    SYSFS,
    TMPFS,
    MountInfo,
    Plan,
    gofer_device,
)
from sandboxfs.plan.options import (
    DEFAULT_REVALIDATE_SECONDS,
    SUPPORTED_TYPES,
    OptionError,
    ParsedOptions,
    asks_for_bind,
    parse_options,
)
from sandboxfs.spec import Bundle, Mount, SpecError

TMP_MODE = 0o1777  # sticky, world-writable: what every /tmp is


def clean_destination(destination: str, where: str) -> str:
    """`/a//b/./c/` → `/a/b/c`; relative paths, `..` and `/` itself are errors.

    `..` is refused rather than resolved: a destination that climbs is
    either a mistake or an attempt to land somewhere the reader of the spec
    would not expect, and cleaning it would hide which.
    """
    if not destination.startswith("/"):
        raise SpecError(where, f"destination {destination!r} must be an absolute path")
    parts = [p for p in destination.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SpecError(where, f"destination {destination!r} must not contain '..'")
    if not parts:
        raise SpecError(where, "cannot mount over the root; root.path is the root")
    return "/" + "/".join(parts)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _describe(index: int, mount: Mount) -> str:
    return f"mounts[{index}] ({mount.destination})"


def _mount_kind(mount: Mount) -> str | None:
    """The supported type this spec mount asks for, or None to skip it."""
    if mount.type == "bind" or asks_for_bind(mount.options):
        return "bind"
    if mount.type in SUPPORTED_TYPES:
        return mount.type
    return None


def _parse(mount: Mount, kind: str, where: str) -> ParsedOptions:
    try:
        return parse_options(mount.options, kind)
    except OptionError as exc:
        raise SpecError(where, str(exc)) from None


def _check_against_hint(mount: Mount, kind: str, hint: hintlib.MountHint, where: str) -> None:
    conflicts = hintlib.compatibility_conflicts(mount.options, hint.options,
                                                replica_type=kind, master_type=hint.type)
    if conflicts:
        listed = "; ".join(str(c) for c in conflicts)
        raise SpecError(where, f"options conflict with mount hint {hint.name!r} "
                               f"({hint.key('options')}): {listed}")


def _bind_source(bundle: Bundle, mount: Mount, where: str) -> tuple[str, str]:
    """The absolute bind source and whether it is a "dir" or a "file"."""
    if not mount.source:
        raise SpecError(where, "a bind mount needs a source")
    source = os.path.normpath(os.path.join(bundle.path, mount.source))
    try:
        st = os.stat(source)  # follows symlinks, as mount(2) does for a bind
    except FileNotFoundError:
        raise SpecError(where, f"bind source {source} does not exist") from None
    except OSError as exc:
        raise SpecError(where, f"bind source {source}: {exc.strerror}") from None
    return source, "dir" if stat.S_ISDIR(st.st_mode) else "file"


def _compile_spec_mount(bundle: Bundle, index: int, mount: Mount, destination: str, kind: str,
                        hints: Sequence[hintlib.MountHint]) -> MountInfo:
    where = _describe(index, mount)
    opts = _parse(mount, kind, where)
    base = MountInfo(destination=destination, type=kind, source=mount.source,
                     options=mount.options, readonly=opts.readonly, flags=opts.flags,
                     propagation=opts.propagation, recursive=opts.recursive, index=index)
    hint = None
    if kind == "bind" and mount.source:
        # A relative bind source is relative to the bundle; match what it names.
        hint = hintlib.find_hint(hints, os.path.join(bundle.path, mount.source))
    elif kind == TMPFS:
        hint = hintlib.find_hint(hints, mount.source)
    if hint is not None and hint.type == TMPFS:
        # The pod's one tmpfs master serves every container mounting this
        # volume, so its parameters (size, mode) are the master's.
        _check_against_hint(mount, kind, hint, where)
        return replace(base, type=TMPFS, cache="exclusive", data=hint.parsed_options.data,
                       hint=hint.name)
    if kind == "bind":
        if hint is not None:
            _check_against_hint(mount, kind, hint, where)
        source, source_kind = _bind_source(bundle, mount, where)
        # Only this container sees a container-share volume, so caching it
        # all is safe; anything others may write is revalidated.
        default = "exclusive" if hint is not None and hint.share == "container" else "revalidate"
        cache = opts.cache or default
        window = (opts.revalidate if opts.revalidate is not None
                  else DEFAULT_REVALIDATE_SECONDS) if cache == "revalidate" else None
        return replace(base, type=GOFER, source=source, device=gofer_device(destination),
                       cache=cache, revalidate=window, source_kind=source_kind,
                       overlay=source_kind == "file",
                       hint=hint.name if hint is not None else None)
    # tmpfs and devtmpfs are memory the daemon owns: nothing else changes
    # them, so the kernel may cache everything. proc, sysfs and devpts show
    # live state (processes, ptys) and are never cached.
    cache = "exclusive" if kind in (TMPFS, DEVTMPFS) else "none"
    return replace(base, cache=cache, data=opts.data)


def _builtin(destination: str, fstype: str, *, options: tuple[str, ...] = (),
             data: tuple[tuple[str, int], ...] = ()) -> MountInfo:
    cache = "exclusive" if fstype in (TMPFS, DEVTMPFS) else "none"
    return MountInfo(destination=destination, type=fstype, source=fstype, options=options,
                     device=NO_DEVICE, cache=cache, data=data)


def rootfs_tmp_is_free(root: Path) -> bool:
    """True if a tmpfs on `/tmp` would hide nothing: missing, or an empty directory.

    A symlink, a file, or anything we cannot read counts as not free: when
    in doubt, leave the container's tree as it is.
    """
    tmp = root / "tmp"
    try:
        st = os.lstat(tmp)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    try:
        with os.scandir(tmp) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _default_hints(bundle: Bundle) -> tuple[tuple[hintlib.MountHint, ...], list[str]]:
    if hintlib.is_sandbox(bundle.annotations):
        return hintlib.parse_hints(bundle.annotations), []
    if any(hintlib.is_hint_key(k) for k in bundle.annotations):
        return (), ["this is a container of a pod: its mount hints come from the sandbox "
                    "spec, and none were given (sandboxfs plan --pod-bundle)"]
    return (), []


def compile_plan(bundle: Bundle, *,
                 hints: Sequence[hintlib.MountHint] | None = None) -> Plan:
    """Compile a loaded bundle into the mount plan.

    `hints` are the pod's mount hints; by default they are parsed from the
    bundle's own annotations when the bundle is a sandbox (a container of a
    pod gets its sandbox's hints, as in runsc). Raises SpecError naming the
    mount (`mounts[3] (/data)`) or annotation at fault.
    """
    warnings: list[str] = []
    if hints is None:
        parsed, notes = _default_hints(bundle)
        hints, warnings = parsed, warnings + notes
    hints = tuple(hints)

    root = MountInfo(destination="/", type=GOFER, source=str(bundle.root_path),
                     device=ROOT_DEVICE, readonly=bundle.root_readonly, cache="exclusive",
                     source_kind="dir")

    compiled: list[MountInfo] = []
    for index, mount in enumerate(bundle.mounts):
        where = _describe(index, mount)
        destination = clean_destination(mount.destination, where)
        if destination == "/dev":
            warnings.append(f"{where}: ignored; sandboxfs builds its own /dev")
            continue
        kind = _mount_kind(mount)
        if kind is None:
            warnings.append(f"{where}: type {mount.type!r} is not supported; skipped")
            continue
        compiled.append(_compile_spec_mount(bundle, index, mount, destination, kind, hints))

    mounted = [m.destination for m in compiled]
    mounts: list[MountInfo] = [_builtin("/dev", DEVTMPFS)]
    if not any(m.destination == "/dev/pts" and m.type == DEVPTS for m in compiled):
        mounts.append(_builtin("/dev/pts", DEVPTS))
    mounts.extend(compiled)
    if "/proc" not in mounted:
        mounts.append(_builtin("/proc", PROC))
    if "/sys" not in mounted:
        mounts.append(_builtin("/sys", SYSFS))
    if not any(_under(d, "/tmp") for d in mounted) and rootfs_tmp_is_free(bundle.root_path):
        mounts.append(_builtin("/tmp", TMPFS, options=(f"mode={TMP_MODE:o}",),
                               data=(("mode", TMP_MODE),)))
    mounts.sort(key=lambda m: len(m.destination))  # list.sort is stable
    return Plan(root=root, mounts=tuple(mounts), hints=hints, warnings=tuple(warnings))
