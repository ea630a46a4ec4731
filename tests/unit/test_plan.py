from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandboxfs.hints import MountHint
from sandboxfs.plan import MountInfo, Plan, compile_plan, parse_options
from sandboxfs.plan.options import OptionError
from sandboxfs.plan_cli import cmd_plan
from sandboxfs.spec import Bundle, SpecError, load_bundle


def make_bundle(tmp_path: Path, mounts: list[dict[str, Any]] | None = None, *,
                readonly: bool = False, annotations: dict[str, str] | None = None,
                name: str = "bundle") -> Path:
    """A bundle dir with an empty rootfs (no /tmp) and a `data` dir and `file` beside it."""
    bundle = tmp_path / name
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "file").write_text("x")
    config: dict[str, Any] = {"root": {"path": "rootfs", "readonly": readonly}}
    if mounts is not None:
        config["mounts"] = mounts
    if annotations is not None:
        config["annotations"] = annotations
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def plan_of(tmp_path: Path, mounts: list[dict[str, Any]], **kw: Any) -> Plan:
    return compile_plan(load_bundle(make_bundle(tmp_path, mounts, **kw)))


def shape(plan: Plan) -> list[tuple[str, str]]:
    return [(m.destination, m.type) for m in plan.mounts]


def tmpfs(dest: str, *options: str) -> dict[str, Any]:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": list(options)}


def bind(dest: str, source: str, *options: str) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": source, "options": list(options)}


BASE_LEN4 = [("/dev", "devtmpfs"), ("/sys", "sysfs"), ("/tmp", "tmpfs")]


@pytest.mark.parametrize("mounts,expected", [
    pytest.param([{"destination": "/proc", "type": "proc", "source": "proc"}],
                 BASE_LEN4 + [("/proc", "proc"), ("/dev/pts", "devpts")], id="only-proc"),
    pytest.param([], [("/dev", "devtmpfs"), ("/sys", "sysfs"), ("/tmp", "tmpfs"),
                      ("/proc", "proc"), ("/dev/pts", "devpts")], id="no-mounts"),
    pytest.param([tmpfs("/some/very/very/deep/path")],
                 BASE_LEN4 + [("/proc", "proc"), ("/dev/pts", "devpts"),
                              ("/some/very/very/deep/path", "tmpfs")], id="deep"),
    pytest.param([tmpfs("/foo/bar/baz"), tmpfs("/foo/qux"), tmpfs("/foo"), tmpfs("/foo/bar")],
                 [("/dev", "devtmpfs"), ("/foo", "tmpfs"), ("/sys", "sysfs"), ("/tmp", "tmpfs"),
                  ("/proc", "proc"), ("/dev/pts", "devpts"), ("/foo/qux", "tmpfs"),
                  ("/foo/bar", "tmpfs"), ("/foo/bar/baz", "tmpfs")], id="nested"),
    pytest.param([tmpfs("/dev/shm", "mode=1777"), bind("/dev/fuse", "../file")],
                 BASE_LEN4 + [("/proc", "proc"), ("/dev/pts", "devpts"), ("/dev/shm", "tmpfs"),
                              ("/dev/fuse", "9p")], id="inside-dev"),
    pytest.param([bind("/sys/kernel/extra", "../data")],
                 BASE_LEN4 + [("/proc", "proc"), ("/dev/pts", "devpts"),
                              ("/sys/kernel/extra", "9p")], id="inside-sys"),
    pytest.param([tmpfs("/tmp/cache")],
                 [("/dev", "devtmpfs"), ("/sys", "sysfs"), ("/proc", "proc"),
                  ("/dev/pts", "devpts"), ("/tmp/cache", "tmpfs")], id="inside-tmp"),
    pytest.param([bind("/tmp", "../data")],
                 [("/dev", "devtmpfs"), ("/tmp", "9p"), ("/sys", "sysfs"), ("/proc", "proc"),
                  ("/dev/pts", "devpts")], id="explicit-tmp"),
    pytest.param([{"destination": "/sys", "type": "sysfs", "source": "sysfs",
                   "options": ["nosuid", "noexec", "nodev", "ro"]}],
                 [("/dev", "devtmpfs"), ("/sys", "sysfs"), ("/tmp", "tmpfs"), ("/proc", "proc"),
                  ("/dev/pts", "devpts")], id="explicit-sys"),
    pytest.param([{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                   "options": ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}],
                 BASE_LEN4 + [("/proc", "proc"), ("/dev/pts", "devpts")], id="spec-devpts"),
])
def test_plan_order(tmp_path: Path, mounts: list[dict[str, Any]],
                    expected: list[tuple[str, str]]) -> None:
    plan = plan_of(tmp_path, mounts)
    assert shape(plan) == expected
    assert plan.warnings == ()


def test_parents_always_before_children(tmp_path: Path) -> None:
    dests = ["/a/b/c/d", "/a", "/zzzzzzzzzzzz", "/a/b", "/zzzzzzzzzzzz/y", "/a/b/c"]
    plan = plan_of(tmp_path, [tmpfs(d) for d in dests])
    order = [m.destination for m in plan.mounts]
    for i, parent in enumerate(order):
        for child in order[:i]:
            assert not child.startswith(parent + "/"), (child, parent)


def test_same_destination_keeps_spec_order(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [tmpfs("/x", "size=1m"), tmpfs("/x", "size=2m")])
    found = [m for m in plan.mounts if m.destination == "/x"]
    assert [dict(m.data)["size"] for m in found] == [1 << 20, 2 << 20]
    on_top = plan.find("/x")
    assert on_top is not None and dict(on_top.data)["size"] == 2 << 20


def test_spec_devpts_replaces_builtin(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                               "options": ["newinstance", "ptmxmode=0666", "gid=5"]}])
    pts = [m for m in plan.mounts if m.destination == "/dev/pts"]
    assert len(pts) == 1 and pts[0].index == 0
    assert dict(pts[0].data) == {"newinstance": True, "ptmxmode": 0o666, "gid": 5}


@pytest.mark.parametrize("rootfs_tmp,expect_tmpfs", [
    ("missing", True), ("empty", True), ("nonempty", False), ("symlink", False), ("file", False),
])
def test_tmp_rule_never_hides_files(tmp_path: Path, rootfs_tmp: str, expect_tmpfs: bool) -> None:
    bundle = make_bundle(tmp_path, [])
    tmp = bundle / "rootfs" / "tmp"
    if rootfs_tmp == "empty":
        tmp.mkdir()
    elif rootfs_tmp == "nonempty":
        tmp.mkdir()
        (tmp / "keep").write_text("mine")
    elif rootfs_tmp == "symlink":
        tmp.symlink_to("/var/tmp")
    elif rootfs_tmp == "file":
        tmp.write_text("")
    plan = compile_plan(load_bundle(bundle))
    info = plan.find("/tmp")
    assert (info is not None) == expect_tmpfs
    if info is not None:
        assert info.type == "tmpfs" and dict(info.data) == {"mode": 0o1777}
        assert info.cache == "exclusive" and info.index is None


def test_root_entry(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [], readonly=True)
    root = plan.to_json()["root"]
    expected = {"destination": "/", "type": "9p", "source": str(tmp_path / "bundle" / "rootfs"),
                "device": "9pfs-/", "readonly": True, "cache": "exclusive"}
    assert {k: root[k] for k in expected} == expected


def test_tmpfs_options_uid_noatime(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [tmpfs("/dev/fd-foo"), tmpfs("/data", "uid=1022", "noatime")])
    info = plan.find("/data")
    assert info is not None
    assert info.options == ("uid=1022", "noatime")
    assert dict(info.data) == {"uid": 1022}
    assert info.flags == frozenset({"noatime"})
    assert info.device == "none" and info.cache == "exclusive" and not info.readonly
    out = info.to_json()
    assert out["flags"]["noatime"] and not out["flags"]["nosuid"]
    assert out["data"] == {"uid": 1022}


def test_tmpfs_parameters(tmp_path: Path) -> None:
    info = plan_of(tmp_path, [tmpfs("/scratch", "size=64m", "mode=1777", "uid=0", "gid=5",
                                    "nr_inodes=1k", "nosuid", "nodev", "noexec", "ro")]
                   ).find("/scratch")
    assert info is not None
    assert dict(info.data) == {"size": 64 << 20, "mode": 0o1777, "uid": 0, "gid": 5,
                               "nr_inodes": 1024}
    assert info.flags == {"nosuid", "nodev", "noexec"} and info.readonly


def test_later_flags_win(tmp_path: Path) -> None:
    info = plan_of(tmp_path, [tmpfs("/w", "ro", "nosuid", "noatime", "rw", "suid", "relatime")]
                   ).find("/w")
    assert info is not None
    assert not info.readonly and info.flags == {"relatime"}


def test_bind_mounts(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [
        bind("/data", "../data", "rbind", "rprivate", "ro"),
        {"destination": "/etc/hostname", "type": "none", "source": str(tmp_path / "file"),
         "options": ["bind"]},
        bind("/fast", "../data", "sandboxfs.revalidate=0.5"),
        bind("/strict", "../data", "sandboxfs.cache=none"),
        bind("/mine", "../data", "sandboxfs.cache=exclusive"),
    ])
    data = plan.find("/data")
    assert data is not None
    assert (data.type, data.source, data.device) == ("9p", str(tmp_path / "data"), "9pfs-/data")
    assert data.readonly and data.recursive and data.propagation == "rprivate"
    assert (data.cache, data.revalidate, data.source_kind, data.overlay) == (
        "revalidate", 1.0, "dir", False)
    host = plan.find("/etc/hostname")
    assert host is not None and host.type == "9p"
    assert host.source_kind == "file" and host.overlay and not host.recursive
    fast, strict, mine = plan.find("/fast"), plan.find("/strict"), plan.find("/mine")
    assert fast is not None and (fast.cache, fast.revalidate) == ("revalidate", 0.5)
    assert strict is not None and (strict.cache, strict.revalidate) == ("none", None)
    assert mine is not None and (mine.cache, mine.revalidate) == ("exclusive", None)


@pytest.mark.parametrize("mount,warning", [
    ({"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
     "mounts[0] (/dev): ignored; sandboxfs builds its own /dev"),
    ({"destination": "/dev/", "type": "bind", "source": "/dev"},
     "mounts[0] (/dev/): ignored"),
    ({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
     "mounts[0] (/dev/mqueue): type 'mqueue' is not supported; skipped"),
    ({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}, "'cgroup'"),
    ({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup"}, "'cgroup2'"),
    ({"destination": "/x", "type": "none", "source": "none"}, "'none' is not supported"),
])
def test_skipped_mounts_warn(tmp_path: Path, mount: dict[str, Any], warning: str) -> None:
    plan = plan_of(tmp_path, [mount])
    assert len(plan.warnings) == 1 and warning in plan.warnings[0]
    assert all(m.index is None for m in plan.mounts)


@pytest.mark.parametrize("mount,field,message", [
    (tmpfs("data"), "mounts[0] (data)", "must be an absolute path"),
    (tmpfs(""), "mounts[0] ()", "must be an absolute path"),
    (tmpfs("/a/../etc"), "mounts[0] (/a/../etc)", "must not contain '..'"),
    (tmpfs("/"), "mounts[0] (/)", "cannot mount over the root"),
    (tmpfs("/x", "bogus"), "mounts[0] (/x)", "unknown mount option 'bogus'"),
    (tmpfs("/x", "remount"), "mounts[0] (/x)", "unknown mount option 'remount'"),
    (bind("/x", "../data", "uidmap=0:1:1"), "mounts[0] (/x)", "unknown mount option"),
    (bind("/data", "/nonexistent/x"), "mounts[0] (/data)",
     "bind source /nonexistent/x does not exist"),
    (bind("/data", ""), "mounts[0] (/data)", "needs a source"),
    (tmpfs("/x", "size=abc"), "mounts[0] (/x)", "size=abc: not a number"),
    (tmpfs("/x", "size=0"), "mounts[0] (/x)", "must be positive"),
    (tmpfs("/x", "size=50%"), "mounts[0] (/x)", "percentages are not supported"),
    (tmpfs("/x", "size"), "mounts[0] (/x)", "needs a value"),
    (tmpfs("/x", "mode=999"), "mounts[0] (/x)", "mode=999: not an octal mode"),
    (tmpfs("/x", "mode=17777"), "mounts[0] (/x)", "beyond 07777"),
    (tmpfs("/x", "uid=-1"), "mounts[0] (/x)", "uid=-1: not a numeric id"),
    (tmpfs("/x", "gid=4294967295"), "mounts[0] (/x)", "out of range"),
    (tmpfs("/x", "nr_inodes=many"), "mounts[0] (/x)", "nr_inodes=many"),
    (tmpfs("/x", "ptmxmode=0666"), "mounts[0] (/x)", "not an option of tmpfs mounts"),
    (bind("/x", "../data", "size=1m"), "mounts[0] (/x)", "not an option of bind mounts"),
    (tmpfs("/x", "sandboxfs.cache=none"), "mounts[0] (/x)", "only gofer-backed"),
    (bind("/x", "../data", "sandboxfs.cache=sometimes"), "mounts[0] (/x)", "cache policy is one"),
    (bind("/x", "../data", "sandboxfs.revalidate=-1"), "mounts[0] (/x)", "between 0 and"),
    (bind("/x", "../data", "sandboxfs.revalidate=soon"), "mounts[0] (/x)", "not a number"),
    (bind("/x", "../data", "sandboxfs.cache=none", "sandboxfs.revalidate=2"), "mounts[0] (/x)",
     "contradicts"),
])
def test_bad_spec_names_mount(tmp_path: Path, mount: dict[str, Any], field: str,
                              message: str) -> None:
    with pytest.raises(SpecError) as exc:
        plan_of(tmp_path, [mount])
    assert exc.value.field == field
    assert message in str(exc.value)


def test_bad_mount_index_counts_spec_entries(tmp_path: Path) -> None:
    mounts = [tmpfs("/a"), {"destination": "/q", "type": "mqueue", "source": "m"}, tmpfs("/b"),
              bind("/data", "/x")]
    with pytest.raises(SpecError) as exc:
        plan_of(tmp_path, mounts)
    assert str(exc.value) == "mounts[3] (/data): bind source /x does not exist"


def test_parse_options_rejects_unknown_directly() -> None:
    with pytest.raises(OptionError, match="'exotic'"):
        parse_options(["exotic"], "tmpfs")
    assert parse_options(["defaults", "nofail"], "proc").flags == frozenset()


# --- hints in the plan -------------------------------------------------------

def _hint(**kw: Any) -> MountHint:
    fields: dict[str, Any] = {"name": "vol", "source": "", "type": "tmpfs", "share": "pod"}
    fields.update(kw)
    return MountHint(**fields)


def test_pod_tmpfs_hint_serves_bind_mount(tmp_path: Path) -> None:
    source = str(tmp_path / "data")
    annotations = {"dev.gvisor.spec.mount.vol.source": source,
                   "dev.gvisor.spec.mount.vol.type": "tmpfs",
                   "dev.gvisor.spec.mount.vol.share": "pod",
                   "dev.gvisor.spec.mount.vol.options": "rw,size=8m"}
    plan = plan_of(tmp_path, [bind("/shared", source, "rbind", "ro")], annotations=annotations)
    info = plan.find("/shared")
    assert info is not None
    assert (info.type, info.hint, info.device, info.cache) == ("tmpfs", "vol", "none", "exclusive")
    assert dict(info.data) == {"size": 8 << 20} and info.readonly
    out = plan.to_json()
    assert out["hints"] == [{"name": "vol", "source": source, "type": "tmpfs", "share": "pod",
                             "options": ["rw", "size=8m"], "lifecycle": None}]
    assert [m["hint"] for m in out["mounts"] if m["destination"] == "/shared"] == ["vol"]


def test_hint_conflict_names_mount_and_hint(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path, [bind("/shared", "../data", "rw")]))
    hint = _hint(source=str(tmp_path / "data"), options=("noexec", "ro"))
    with pytest.raises(SpecError) as exc:
        compile_plan(bundle, hints=[hint])
    assert exc.value.field == "mounts[0] (/shared)"
    assert "'vol'" in str(exc.value)
    assert "rw replica of a ro master" in str(exc.value)
    assert "exec replica of a noexec master" in str(exc.value)


@pytest.mark.parametrize("share,cache", [("container", "exclusive"), ("pod", "revalidate"),
                                         ("shared", "revalidate")])
def test_bind_hint_share_sets_cache(tmp_path: Path, share: str, cache: str) -> None:
    bundle = load_bundle(make_bundle(tmp_path, [bind("/v", "../data")]))
    plan = compile_plan(bundle, hints=[_hint(source=str(tmp_path / "data"), type="bind",
                                             share=share)])
    info = plan.find("/v")
    assert info is not None and (info.type, info.cache, info.hint) == ("9p", cache, "vol")


def test_container_of_pod_takes_hints_from_sandbox(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = str(tmp_path / "data")
    sandbox = make_bundle(tmp_path, [], name="sandbox", annotations={
        "io.kubernetes.cri.container-type": "sandbox",
        "gvisor.dev/spec/mount/vol/source": source,
        "gvisor.dev/spec/mount/vol/type": "tmpfs",
        "gvisor.dev/spec/mount/vol/share": "pod"})
    container = make_bundle(tmp_path, [bind("/v", source, "rbind")], name="ctr", annotations={
        "io.kubernetes.cri.container-type": "container",
        "gvisor.dev/spec/mount/vol/type": "tmpfs"})
    alone = compile_plan(load_bundle(container))
    assert "come from the sandbox spec" in alone.warnings[0]
    assert cmd_plan([str(container), "--pod-bundle", str(sandbox), "--compact"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(m["destination"], m["type"], m["hint"]) for m in out["mounts"]
            if m["destination"] == "/v"] == [("/v", "tmpfs", "vol")]
    assert cmd_plan([str(container), "--pod-bundle", str(container)]) == 2
    assert "--pod-bundle" in capsys.readouterr().err


# --- the command -------------------------------------------------------------

def test_cmd_plan_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path, [bind("/data", "../data", "ro"),
                                    {"destination": "/dev/mqueue", "type": "mqueue",
                                     "source": "mqueue"}])
    assert cmd_plan([str(bundle)]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert set(out) == {"root", "mounts", "hints", "warnings"}
    assert out["root"]["device"] == "9pfs-/"
    for entry in out["mounts"]:
        assert set(MountInfo(destination="/", type="9p", source="/").to_json()) == set(entry)
    data = [m for m in out["mounts"] if m["destination"] == "/data"][0]
    assert (data["type"], data["device"], data["readonly"], data["cache"], data["revalidate"]) \
        == ("9p", "9pfs-/data", True, "revalidate", 1.0)
    assert out["warnings"] == ["mounts[1] (/dev/mqueue): type 'mqueue' is not supported; skipped"]
    assert captured.err.splitlines() == [
        "sandboxfs: warning: mounts[1] (/dev/mqueue): type 'mqueue' is not supported; skipped"]


@pytest.mark.parametrize("config,line", [
    ("{nope", "sandboxfs: config.json: invalid JSON at line 1"),
    ("{}", "sandboxfs: root: missing"),
    (json.dumps({"root": {"path": "rootfs"}, "mounts": [tmpfs("rel")]}),
     "sandboxfs: mounts[0] (rel): destination 'rel' must be an absolute path"),
    (json.dumps({"root": {"path": "rootfs"}, "mounts": [tmpfs("/a"), tmpfs("/b"), tmpfs("/c"),
                                                        bind("/data", "/x")]}),
     "sandboxfs: mounts[3] (/data): bind source /x does not exist"),
    (json.dumps({"root": {"path": "rootfs"}, "mounts": [tmpfs("/t", "size=lots")]}),
     "sandboxfs: mounts[0] (/t): size=lots: not a number"),
    (json.dumps({"root": {"path": "rootfs"},
                 "annotations": {"dev.gvisor.spec.mount.v.kind": "x"}}),
     "sandboxfs: annotations['dev.gvisor.spec.mount.v.kind']: unknown mount hint field"),
])
def test_cmd_plan_bad_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   config: str, line: str) -> None:
    bundle = make_bundle(tmp_path, [])
    (bundle / "config.json").write_text(config)
    assert cmd_plan([str(bundle)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith(line)


def test_plan_is_frozen(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [])
    with pytest.raises(AttributeError):
        plan.mounts[0].type = "x"  # type: ignore[misc]
    assert isinstance(load_bundle(make_bundle(tmp_path, [])), Bundle)
