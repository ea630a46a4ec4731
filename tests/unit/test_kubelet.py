from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sandboxfs.hints import parse_hints
from sandboxfs.kubelet import (
    DEVSHM_VOLUME,
    SANDBOX_LOG_DIR_KEY,
    annotate_bundle,
    is_volume_path,
    pod_uid,
    translate,
)
from sandboxfs.plan import compile_plan
from sandboxfs.plan_cli import cmd_annotate
from sandboxfs.spec import SpecError, load_bundle

UID = "0a1b2c3d-uid"
DOT = "dev.gvisor.spec.mount."
SLASH = "gvisor.dev/spec/mount/"
CTYPE = "io.kubernetes.cri.container-type"


@pytest.fixture
def pods(tmp_path: Path) -> Path:
    """A fake kubelet tree: one pod with an emptyDir, a configmap and a shm directory."""
    root = tmp_path / "kubelet" / "pods"
    volumes = root / UID / "volumes"
    (volumes / "kubernetes.io~empty-dir" / "scratch").mkdir(parents=True)
    (volumes / "kubernetes.io~configmap" / "settings").mkdir(parents=True)
    (volumes / "kubernetes.io~empty-dir" / "twice").mkdir(parents=True)
    (volumes / "kubernetes.io~host-path" / "twice").mkdir(parents=True)
    (root / "other-pod" / "volumes" / "kubernetes.io~empty-dir" / "scratch").mkdir(parents=True)
    return root


def sandbox_spec(annotations: dict[str, str], mounts: list[dict[str, Any]] | None = None,
                 log_dir: str | None = f"/var/log/pods/default_web_{UID}") -> dict[str, Any]:
    notes = {CTYPE: "sandbox", **annotations}
    if log_dir is not None:
        notes[SANDBOX_LOG_DIR_KEY] = log_dir
    return {"root": {"path": "rootfs"}, "annotations": notes, "mounts": mounts or []}


def container_spec(annotations: dict[str, str],
                   mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"root": {"path": "rootfs"}, "annotations": {CTYPE: "container", **annotations},
            "mounts": mounts}


@pytest.mark.parametrize("log_dir,uid", [
    (f"/var/log/pods/{UID}", UID),
    (f"/var/log/pods/{UID}/", UID),
    (f"/var/log/pods/default_web_{UID}", UID),
])
def test_pod_uid_both_layouts(log_dir: str, uid: str) -> None:
    assert pod_uid({SANDBOX_LOG_DIR_KEY: log_dir}) == uid


@pytest.mark.parametrize("annotations,message", [
    ({}, "missing"),
    ({SANDBOX_LOG_DIR_KEY: ""}, "missing"),
    ({SANDBOX_LOG_DIR_KEY: "/var/log/pods/a_b"}, "unexpected sandbox log directory"),
    ({SANDBOX_LOG_DIR_KEY: "/var/log/pods/a_b_c_d"}, "unexpected sandbox log directory"),
])
def test_pod_uid_errors(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message) as exc:
        pod_uid(annotations)
    assert exc.value.field == f"annotations[{SANDBOX_LOG_DIR_KEY!r}]"


def test_sandbox_volume_sources_and_emptydir_lifecycle(pods: Path) -> None:
    spec = sandbox_spec({f"{DOT}scratch.type": "tmpfs", f"{DOT}scratch.share": "pod",
                         f"{SLASH}settings/type": "bind", f"{SLASH}settings/share": "pod"})
    result = translate(spec, pods_dir=pods)
    notes = result.config["annotations"]
    volumes = pods / UID / "volumes"
    assert notes[f"{DOT}scratch.source"] == str(volumes / "kubernetes.io~empty-dir" / "scratch")
    assert notes[f"{DOT}scratch.lifecycle"] == "pod"
    assert notes[f"{SLASH}settings/source"] == str(volumes / "kubernetes.io~configmap"
                                                     / "settings")
    assert f"{SLASH}settings/lifecycle" not in notes
    assert result.changed and spec["annotations"].get(f"{DOT}scratch.source") is None
    assert [h.name for h in parse_hints(notes)] == ["scratch", "settings"]


def test_sandbox_keeps_an_existing_lifecycle(pods: Path) -> None:
    spec = sandbox_spec({f"{DOT}scratch.type": "tmpfs", f"{SLASH}scratch/lifecycle": "pod"})
    notes = translate(spec, pods_dir=pods).config["annotations"]
    assert f"{DOT}scratch.lifecycle" not in notes


@pytest.mark.parametrize("volume,message", [
    ("missing", "no directory matches"),
    ("twice", "2 directories"),
])
def test_sandbox_volume_must_match_one_directory(pods: Path, volume: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as exc:
        translate(sandbox_spec({f"{DOT}{volume}.type": "tmpfs"}), pods_dir=pods)
    assert exc.value.field == f"annotations['{DOT}{volume}.type']"


def test_sandbox_without_pod_uid_is_left_alone(pods: Path) -> None:
    spec = sandbox_spec({f"{DOT}scratch.type": "tmpfs"},
                        [{"destination": "/dev/shm", "type": "bind", "source": "/x"}],
                        log_dir=None)
    result = translate(spec, pods_dir=pods)
    assert not result.changed and result.config == spec
    assert "not a Kubernetes pod sandbox" in result.notes[0]


def test_container_mount_takes_hint_type(pods: Path) -> None:
    scratch = str(pods / "some-pod" / "volumes" / "kubernetes.io~empty-dir" / "scratch")
    settings = str(pods / "some-pod" / "volumes" / "kubernetes.io~configmap" / "settings")
    mounts = [
        {"destination": "/scratch", "type": "bind", "source": scratch,
         "options": ["rbind", "rprivate", "rw"]},
        {"destination": "/settings", "type": "bind", "source": settings,
         "options": ["rbind", "ro"]},
        {"destination": "/deeper", "type": "bind", "source": scratch + "/sub",
         "options": ["rbind"]},
        {"destination": "/elsewhere", "type": "bind", "source": "/srv/scratch",
         "options": ["bind"]},
    ]
    spec = container_spec({f"{DOT}scratch.type": "tmpfs", f"{SLASH}settings/type": "bind"},
                          mounts)
    result = translate(spec, pods_dir=pods)
    out = result.config["mounts"]
    assert out[0] == {"destination": "/scratch", "type": "tmpfs", "source": scratch,
                      "options": ["rprivate", "rw"]}
    assert out[1] == mounts[1]  # already bind: options kept
    assert out[2:] == mounts[2:]  # * never spans a /, other paths untouched
    assert result.changed and spec["mounts"][0]["type"] == "bind"


def test_container_rejects_bad_type(pods: Path) -> None:
    with pytest.raises(SpecError, match="invalid type 'nfs'"):
        translate(container_spec({f"{DOT}v.type": "nfs"}, []), pods_dir=pods)


@pytest.mark.parametrize("path,match", [
    ("PODS/uid/volumes/kubernetes.io~empty-dir/scratch", True),
    ("PODS/uid/volumes/kubernetes.io~empty-dir/scratch/", True),
    ("PODS/uid/volumes/kubernetes.io~empty-dir/other", False),
    ("PODS/uid/volumes/a/b/scratch", False),
    ("PODS/uid/plugins/x/scratch", False),
    ("/elsewhere/uid/volumes/x/scratch", False),
    ("", False),
])
def test_is_volume_path(pods: Path, path: str, match: bool) -> None:
    assert is_volume_path(pods, "scratch", path.replace("PODS", str(pods))) is match


SHM_BIND = {"destination": "/dev/shm", "type": "bind", "source": "/run/pod/shm",
            "options": ["rbind", "rprivate", "rw"]}
SHM_TMPFS = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "size=65536k"]}
PROC = {"destination": "/proc", "type": "proc", "source": "proc", "options": []}


@pytest.mark.parametrize("mounts", [
    pytest.param([PROC, SHM_BIND], id="alone"),
    pytest.param([PROC, SHM_TMPFS, SHM_BIND], id="with-duplicate"),
])
def test_devshm_becomes_pod_tmpfs_in_sandbox(pods: Path, mounts: list[dict[str, Any]]) -> None:
    result = translate(sandbox_spec({}, mounts), pods_dir=pods)
    assert result.config["mounts"] == [PROC, {"destination": "/dev/shm", "type": "tmpfs",
                                              "source": "/run/pod/shm",
                                              "options": ["rprivate", "rw"]}]
    (shm,) = parse_hints(result.config["annotations"])
    assert shm.to_json() == {"name": DEVSHM_VOLUME, "source": "/run/pod/shm", "type": "tmpfs",
                             "share": "pod", "options": ["rw"], "lifecycle": "pod"}


@pytest.mark.parametrize("mounts", [[SHM_BIND], [SHM_BIND, SHM_TMPFS]])
def test_devshm_in_container_changes_type_only(pods: Path, mounts: list[dict[str, Any]]) -> None:
    result = translate(container_spec({}, mounts), pods_dir=pods)
    assert result.config["mounts"] == [{**SHM_BIND, "type": "tmpfs",
                                        "options": ["rprivate", "rw"]}]
    assert result.config["annotations"] == {CTYPE: "container"}


def test_tmpfs_devshm_alone_is_untouched(pods: Path) -> None:
    spec = sandbox_spec({}, [SHM_TMPFS])
    result = translate(spec, pods_dir=pods)
    assert not result.changed and result.config == spec


def test_no_annotations_field_stays_absent(pods: Path) -> None:
    spec = {"root": {"path": "rootfs"}, "mounts": [PROC]}
    result = translate(spec, pods_dir=pods)
    assert result.config == spec and not result.changed


def write_bundle(path: Path, config: dict[str, Any]) -> Path:
    (path / "rootfs").mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    os.chmod(path / "config.json", 0o640)
    return path


def test_annotate_bundle_rewrites_atomically_with_backup(tmp_path: Path, pods: Path) -> None:
    spec = sandbox_spec({f"{DOT}scratch.type": "tmpfs", f"{DOT}scratch.share": "pod"},
                        [SHM_BIND])
    bundle = write_bundle(tmp_path / "b", spec)
    original = (bundle / "config.json").read_bytes()
    result = annotate_bundle(bundle, pods_dir=pods)
    assert result.changed
    assert json.loads((bundle / "config.json").read_text()) == result.config
    assert (bundle / "config.json.orig").read_bytes() == original
    assert (bundle / "config.json").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json", "config.json.orig",
                                                       "rootfs"]
    again = annotate_bundle(bundle, pods_dir=pods)
    assert not again.changed
    assert (bundle / "config.json.orig").read_bytes() == original
    plan = compile_plan(load_bundle(bundle))
    assert [h.name for h in plan.hints] == ["sandboxfs_devshm", "scratch"]
    shm = plan.find("/dev/shm")
    assert shm is not None and (shm.type, shm.hint) == ("tmpfs", "sandboxfs_devshm")


def test_annotate_unchanged_or_dry_run_writes_nothing(tmp_path: Path, pods: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bundle = write_bundle(tmp_path / "b", sandbox_spec({}, [SHM_BIND]))
    before = (bundle / "config.json").read_bytes()
    assert cmd_annotate([str(bundle), "--kubelet-pods-dir", str(pods), "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["mounts"][0]["type"] == "tmpfs"
    assert (bundle / "config.json").read_bytes() == before
    assert not (bundle / "config.json.orig").exists()
    plain = write_bundle(tmp_path / "plain", {"root": {"path": "rootfs"}})
    assert cmd_annotate([str(plain), "--kubelet-pods-dir", str(pods)]) == 0
    assert "unchanged" in capsys.readouterr().err
    assert not (plain / "config.json.orig").exists()


def test_cmd_annotate_exit_codes(tmp_path: Path, pods: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = write_bundle(tmp_path / "good", sandbox_spec({f"{DOT}scratch.type": "tmpfs"}))
    assert cmd_annotate([str(good), "--kubelet-pods-dir", str(pods)]) == 0
    assert "annotated" in capsys.readouterr().err
    bad = write_bundle(tmp_path / "bad", sandbox_spec({f"{DOT}nope.type": "tmpfs"}))
    assert cmd_annotate([str(bad), "--kubelet-pods-dir", str(pods)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"sandboxfs: annotations['{DOT}nope.type']: volume 'nope'")
    assert cmd_annotate([str(tmp_path / "absent")]) == 2
