"""Loading and validating an OCI bundle's `config.json` (runtime-spec).

Only what sandboxfs uses is read; everything read is checked, and a bad value
raises `SpecError` naming the field (`root.path`, `mounts[2].destination`),
which the CLI prints on one line before exiting with status 2.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SpecError(ValueError):
    """The bundle's configuration cannot be accepted; `field` names the culprit."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, slots=True)
class Process:
    """What `sandboxfs run` and the demo start inside the sandbox."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Mount:
    """One entry of the spec's `mounts`, as written (compiled later by the plan)."""

    destination: str
    type: str
    source: str
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Bundle:
    """A validated bundle: absolute paths, typed fields."""

    path: Path
    root_path: Path
    root_readonly: bool
    process: Process | None
    mounts: tuple[Mount, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def _expect(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(k.__name__ for k in kinds)
        raise SpecError(name, f"must be {wanted}, not {type(value).__name__}")
    return value


def _string_list(value: Any, name: str) -> tuple[str, ...]:
    _expect(value, list, name)
    return tuple(_expect(item, str, f"{name}[{i}]") for i, item in enumerate(value))


def _load_process(raw: Any) -> Process | None:
    if raw is None:
        return None
    _expect(raw, dict, "process")
    args = _string_list(raw.get("args", []), "process.args")
    if not args:
        raise SpecError("process.args", "must name the program to run")
    env = _string_list(raw.get("env", []), "process.env")
    for i, item in enumerate(env):
        if "=" not in item or item.startswith("="):
            raise SpecError(f"process.env[{i}]", f"{item!r} is not NAME=VALUE")
    cwd = _expect(raw.get("cwd", "/"), str, "process.cwd")
    if not cwd.startswith("/"):
        raise SpecError("process.cwd", f"must be absolute, not {cwd!r}")
    user = _expect(raw.get("user", {}), dict, "process.user")
    ids = {}
    for key in ("uid", "gid"):
        value = _expect(user.get(key, 0), int, f"process.user.{key}")
        if isinstance(value, bool) or not 0 <= value < 2**32 - 1:
            raise SpecError(f"process.user.{key}", f"{value!r} is not a user or group id")
        ids[key] = value
    extra = _expect(user.get("additionalGids", []), list, "process.user.additionalGids")
    for i, gid in enumerate(extra):
        if isinstance(gid, bool) or not isinstance(gid, int) or not 0 <= gid < 2**32 - 1:
            raise SpecError(f"process.user.additionalGids[{i}]", f"{gid!r} is not a group id")
    return Process(args=args, env=env, cwd=cwd, uid=ids["uid"], gid=ids["gid"],
                   additional_gids=tuple(extra))


def _load_mounts(raw: Any) -> tuple[Mount, ...]:
    if raw is None:
        return ()
    _expect(raw, list, "mounts")
    mounts = []
    for i, entry in enumerate(raw):
        name = f"mounts[{i}]"
        _expect(entry, dict, name)
        dest = _expect(entry.get("destination"), str, f"{name}.destination")
        mounts.append(Mount(
            destination=dest,
            type=_expect(entry.get("type", "bind"), str, f"{name}.type"),
            source=_expect(entry.get("source", ""), str, f"{name}.source"),
            options=_string_list(entry.get("options", []), f"{name}.options"),
        ))
    return tuple(mounts)


def load_config(config: dict[str, Any], bundle_dir: Path) -> Bundle:
    """Validate a parsed config.json; relative root paths are taken from the bundle."""
    _expect(config, dict, "config.json")
    root = config.get("root")
    if root is None:
        raise SpecError("root", "missing")
    _expect(root, dict, "root")
    root_path = _expect(root.get("path"), str, "root.path")
    if not root_path:
        raise SpecError("root.path", "must not be empty")
    readonly = _expect(root.get("readonly", False), bool, "root.readonly")
    path = Path(os.path.normpath(bundle_dir / root_path))
    if not path.is_dir():
        raise SpecError("root.path", f"{path} is not a directory")
    annotations = config.get("annotations") or {}
    _expect(annotations, dict, "annotations")
    for key, value in annotations.items():
        _expect(value, str, f"annotations[{key!r}]")
    return Bundle(
        path=bundle_dir,
        root_path=path,
        root_readonly=readonly,
        process=_load_process(config.get("process")),
        mounts=_load_mounts(config.get("mounts")),
        annotations=dict(annotations),
        raw=config,
    )


def load_bundle(bundle: str | os.PathLike[str]) -> Bundle:
    """Read and validate `BUNDLE/config.json`."""
    bundle_dir = Path(os.path.abspath(bundle))
    config_path = bundle_dir / "config.json"
    try:
        text = config_path.read_text()
    except FileNotFoundError:
        raise SpecError("config.json", f"not found in {bundle_dir}") from None
    except OSError as exc:
        raise SpecError("config.json", f"cannot read: {exc.strerror}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError("config.json", f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    return load_config(config, bundle_dir)
