from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandboxfs.spec import SpecError, load_bundle


def bundle(tmp_path: Path, config: object, *, raw: str | None = None) -> Path:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text(raw if raw is not None else json.dumps(config))
    return tmp_path


def test_minimal_bundle(tmp_path: Path) -> None:
    b = load_bundle(bundle(tmp_path, {"root": {"path": "rootfs", "readonly": True},
                                      "process": {"args": ["/bin/sh"], "cwd": "/"}}))
    assert b.root_path == tmp_path / "rootfs"
    assert b.root_readonly
    assert b.process is not None and b.process.args == ("/bin/sh",)


@pytest.mark.parametrize("config,field", [
    ({}, "root"),
    ({"root": "rootfs"}, "root"),
    ({"root": {"path": 3}}, "root.path"),
    ({"root": {"path": ""}}, "root.path"),
    ({"root": {"path": "missing"}}, "root.path"),
    ({"root": {"path": "rootfs", "readonly": "yes"}}, "root.readonly"),
    ({"root": {"path": "rootfs"}, "process": {"args": []}}, "process.args"),
    ({"root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "rel"}}, "process.cwd"),
    ({"root": {"path": "rootfs"}, "process": {"args": ["sh"], "user": {"uid": "0"}}},
     "process.user.uid"),
    ({"root": {"path": "rootfs"}, "mounts": [{"type": "tmpfs"}]}, "mounts[0].destination"),
    ({"root": {"path": "rootfs"}, "annotations": {"a": 1}}, "annotations['a']"),
])
def test_bad_spec_names_field(tmp_path: Path, config: object, field: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_bundle(bundle(tmp_path, config))
    assert exc.value.field == field
    assert str(exc.value).startswith(field + ":")


def test_bad_json_and_missing_config(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="invalid JSON at line 1"):
        load_bundle(bundle(tmp_path, None, raw="{nope"))
    with pytest.raises(SpecError, match="not found"):
        load_bundle(tmp_path / "nowhere")
