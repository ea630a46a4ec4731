"""Kubernetes volumes → mount hints: what the gVisor shim does before runsc starts.

The kubelet does not tell the runtime which mounts of a pod are the same
volume; it only bind-mounts host directories under
`/var/lib/kubelet/pods/UID/volumes/PLUGIN/NAME` into each container. A pod
author (or an admission hook) names volumes in annotations
(`dev.gvisor.spec.mount.NAME.type/share/options`); this module completes
them from what is on the host, so `sandboxfs.hints` and the plan can serve a
pod-shared volume once:

* In the sandbox spec: the pod UID comes from the sandbox log directory
  annotation (`/var/log/pods/UID` in the old CRI layout,
  `/var/log/pods/NAMESPACE_NAME_UID` in the new one); each hinted volume's
  `source` is set to its one directory under the kubelet's pod tree, and an
  emptyDir volume gets `lifecycle=pod` unless a lifecycle is already set.
* In a container spec: a mount whose source is that volume's directory (in
  any pod) takes the hint's type; when the type stops being `bind`, the
  `bind`/`rbind` options go, since they would make it a bind again.
* In both: a bind mount on `/dev/shm` (the pod's shared shm directory)
  becomes a tmpfs, because shm_open(3) only uses a tmpfs-looking /dev/shm;
  the sandbox spec gains a pod-shared tmpfs hint for it, and a duplicate
  tmpfs `/dev/shm` entry some runtimes add is removed.

`translate` is pure apart from looking up volume directories; `annotate_bundle`
rewrites `config.json` atomically and keeps the first original as
`config.json.orig`.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandboxfs.hints import TYPES, hint_key, is_hint_key, is_sandbox, split_hint_key
from sandboxfs.spec import SpecError, load_bundle

SANDBOX_LOG_DIR_KEY = "io.kubernetes.cri.sandbox-log-directory"
EMPTY_DIR_PLUGIN = "kubernetes.io~empty-dir"
DEFAULT_PODS_DIR = Path("/var/lib/kubelet/pods")
SHM_PATH = "/dev/shm"
# Kubernetes volume names are DNS labels, which cannot hold "_": this name
# can never collide with a real volume of the pod.
DEVSHM_VOLUME = "sandboxfs_devshm"
BACKUP_SUFFIX = ".orig"


@dataclass(frozen=True, slots=True)
class Translation:
    """The translated config.json, whether it differs, and what was noticed."""

    config: dict[str, Any]
    changed: bool
    notes: tuple[str, ...] = ()


def pod_uid(annotations: Mapping[str, str]) -> str:
    """The pod UID, from the last component of the sandbox log directory.

    Raises SpecError naming the annotation if it is missing or in neither
    CRI layout.
    """
    where = f"annotations[{SANDBOX_LOG_DIR_KEY!r}]"
    log_dir = annotations.get(SANDBOX_LOG_DIR_KEY, "")
    if not log_dir:
        raise SpecError(where, "missing; not a Kubernetes pod sandbox")
    fields = posixpath.basename(posixpath.normpath(log_dir)).split("_")
    if len(fields) == 1 and fields[0]:
        return fields[0]  # old layout: /var/log/pods/UID
    if len(fields) == 3 and fields[2]:
        return fields[2]  # new layout: /var/log/pods/NAMESPACE_NAME_UID
    raise SpecError(where, f"unexpected sandbox log directory {log_dir!r}")


def volume_path(pods_dir: Path, uid: str, volume: str, where: str) -> str:
    """The one directory `PODS/UID/volumes/*/VOLUME`; SpecError if not exactly one."""
    pattern = os.path.join(glob.escape(str(pods_dir)), glob.escape(uid), "volumes", "*",
                           glob.escape(volume))
    found = sorted(glob.glob(pattern))
    if len(found) != 1:
        what = "no directory" if not found else f"{len(found)} directories ({', '.join(found)})"
        raise SpecError(where, f"volume {volume!r} of pod {uid}: {what} matches {pattern}")
    return found[0]


def is_volume_path(pods_dir: Path, volume: str, path: str) -> bool:
    """True if `path` is `PODS/*/volumes/*/VOLUME` for any pod and volume plugin.

    Matched component by component, so a `*` never spans a `/`. The pod UID
    is not known to a container's spec, but a volume name is unique within
    its pod and a container only mounts its own pod's volumes.
    """
    if not path:
        return False
    parts = Path(posixpath.normpath(path)).parts
    base = Path(posixpath.normpath(str(pods_dir))).parts
    n = len(base)
    return (len(parts) == n + 4 and parts[:n] == base and parts[n + 1] == "volumes"
            and parts[n + 3] == volume)


def change_mount_type(mount: dict[str, Any], new_type: str) -> None:
    """Give `mount` a new type; drop `bind`/`rbind` unless the new type is bind.

    The runtime-spec lets options alone make a bind mount whatever the type
    says, so the options must go for the new type to take effect.
    """
    mount["type"] = new_type
    if new_type != "bind":
        mount["options"] = [o for o in mount.get("options", []) if o not in ("bind", "rbind")]


def _is_bind(mount: Mapping[str, Any]) -> bool:
    options = mount.get("options", [])
    return mount.get("type", "bind") == "bind" or "bind" in options or "rbind" in options


def _at_shm(mount: Mapping[str, Any]) -> bool:
    destination = mount.get("destination", "")
    return isinstance(destination, str) and posixpath.normpath(destination) == SHM_PATH


def _volume_types(annotations: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(name, type key, type value) of every volume hint with a type, by name."""
    found = []
    for key in sorted(annotations):
        if not is_hint_key(key):
            continue
        name, field = split_hint_key(key)
        if field == "type":
            found.append((name, key, annotations[key]))
    return found


def _has_field(annotations: Mapping[str, str], name: str, field: str) -> bool:
    return any(hint_key(name, field, dotted=d) in annotations for d in (True, False))


def configure_shm(config: dict[str, Any], *, sandbox: bool) -> bool:
    """Turn a bind of the pod's shm directory on /dev/shm into a pod tmpfs.

    Returns True if the config changed. Only the first such bind counts; a
    tmpfs /dev/shm entry next to it is a duplicate and is removed.
    """
    mounts: list[dict[str, Any]] = config.get("mounts") or []
    duplicate = next((m for m in mounts if _at_shm(m) and m.get("type") == "tmpfs"), None)
    for mount in mounts:
        if not (_at_shm(mount) and _is_bind(mount)):
            continue
        if sandbox:
            annotations = config.setdefault("annotations", {})
            annotations[hint_key(DEVSHM_VOLUME, "source")] = mount.get("source", "")
            annotations[hint_key(DEVSHM_VOLUME, "type")] = "tmpfs"
            annotations[hint_key(DEVSHM_VOLUME, "share")] = "pod"
            annotations[hint_key(DEVSHM_VOLUME, "lifecycle")] = "pod"
            # The master is the widest mount any container may ask for; each
            # container's own options narrow it (hints.compatibility_conflicts).
            annotations[hint_key(DEVSHM_VOLUME, "options")] = "rw"
        change_mount_type(mount, "tmpfs")
        if duplicate is not None:
            mounts.remove(duplicate)
        return True
    return False


def translate(config: Mapping[str, Any], *, pods_dir: Path = DEFAULT_PODS_DIR) -> Translation:
    """Complete the mount hints of a sandbox or container config.json (a copy).

    Raises SpecError naming the annotation when a hinted volume has no
    single directory in the kubelet's tree or its type is invalid. A sandbox
    spec with no usable pod UID is left alone (with a note): it is not a
    Kubernetes pod, or a runtime too old to say which one.
    """
    new: dict[str, Any] = copy.deepcopy(dict(config))
    annotations: dict[str, str] = new.get("annotations") or {}
    new["annotations"] = annotations
    notes: list[str] = []
    sandbox = is_sandbox(annotations)
    volumes = _volume_types(annotations)
    if sandbox:
        try:
            uid = pod_uid(annotations)
        except SpecError as exc:
            notes.append(f"{exc}; nothing translated")
            return Translation(copy.deepcopy(dict(config)), False, tuple(notes))
        for name, key, _ in volumes:
            if name == DEVSHM_VOLUME:
                continue  # ours, from the /dev/shm bind below; not in the kubelet tree
            dotted = not key.startswith("gvisor.dev/")
            path = volume_path(pods_dir, uid, name, f"annotations[{key!r}]")
            annotations[hint_key(name, "source", dotted=dotted)] = path
            if EMPTY_DIR_PLUGIN in Path(path).parts and not _has_field(annotations, name,
                                                                       "lifecycle"):
                annotations[hint_key(name, "lifecycle", dotted=dotted)] = "pod"
    else:
        for name, key, kind in volumes:
            if kind not in TYPES:
                raise SpecError(f"annotations[{key!r}]",
                                f"invalid type {kind!r}; types are {', '.join(TYPES)}")
            for mount in new.get("mounts") or []:
                if is_volume_path(pods_dir, name, mount.get("source", "")):
                    change_mount_type(mount, kind)
    configure_shm(new, sandbox=sandbox)
    if not annotations:  # leave an absent or null annotations field as it was
        if "annotations" in config:
            new["annotations"] = copy.deepcopy(config["annotations"])
        else:
            del new["annotations"]
    return Translation(new, new != dict(config), tuple(notes))


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data` so a reader sees the old file or the new, never half.

    Written to a temporary file in the same directory, flushed to disk, then
    renamed over; the directory is synced so the rename itself survives a crash.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_config(bundle_dir: Path, config: Mapping[str, Any]) -> Path:
    """Rewrite `BUNDLE/config.json`, keeping the first original as `config.json.orig`.

    The backup is made only if none exists, so annotating twice still leaves
    the spec as the runtime first wrote it. Returns the backup's path.
    """
    path = bundle_dir / "config.json"
    backup = bundle_dir / ("config.json" + BACKUP_SUFFIX)
    mode = os.stat(path).st_mode & 0o7777
    if not backup.exists():
        _write_atomically(backup, path.read_bytes(), mode)
    _write_atomically(path, (json.dumps(config, indent=2) + "\n").encode(), mode)
    return backup


def annotate_bundle(bundle: str | os.PathLike[str], *, pods_dir: Path = DEFAULT_PODS_DIR,
                    dry_run: bool = False) -> Translation:
    """Load, translate and (unless unchanged or `dry_run`) rewrite a bundle's config.json."""
    loaded = load_bundle(bundle)
    result = translate(loaded.raw, pods_dir=pods_dir)
    if result.changed and not dry_run:
        write_config(loaded.path, result.config)
    return result
