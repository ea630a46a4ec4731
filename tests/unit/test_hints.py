from __future__ import annotations

import pytest

from sandboxfs.hints import (
    Conflict,
    compatibility_conflicts,
    find_hint,
    hint_key,
    is_sandbox,
    parse_hints,
    split_hint_key,
)
from sandboxfs.plan.options import OptionError
from sandboxfs.spec import SpecError

SLASH = "gvisor.dev/spec/mount/"
DOT = "dev.gvisor.spec.mount."


def hint(name: str, *, source: str = "/src", type: str = "tmpfs", share: str = "pod",
         prefix: str = DOT, **extra: str) -> dict[str, str]:
    sep = "/" if prefix == SLASH else "."
    fields = {"source": source, "type": type, "share": share, **extra}
    return {f"{prefix}{name}{sep}{field}": value for field, value in fields.items()}


@pytest.mark.parametrize("prefix", [DOT, SLASH])
def test_happy_hint_both_prefixes(prefix: str) -> None:
    annotations = {**hint("cache", prefix=prefix, options="rw,noexec,nosuid",
                          lifecycle="pod"),
                   "unrelated": "x", "gvisor.dev/other": "y"}
    (only,) = parse_hints(annotations)
    assert (only.name, only.source, only.type, only.share, only.options, only.lifecycle) == (
        "cache", "/src", "tmpfs", "pod", ("noexec", "nosuid", "rw"), "pod")
    sep = "/" if prefix == SLASH else "."
    assert only.key("options") == f"{prefix}cache{sep}options"


def test_hints_sorted_by_name_and_json() -> None:
    annotations = {**hint("zeta", source="/z", type="bind", share="shared",
                          options="ro,sandboxfs.cache=none"),
                   **hint("alpha", source="/a", prefix=SLASH, options="size=1m,mode=1777"),
                   **hint("mid", source="/m", share="container")}
    hints = parse_hints(annotations)
    assert [h.name for h in hints] == ["alpha", "mid", "zeta"]
    assert [h.to_json() for h in hints] == [
        {"name": "alpha", "source": "/a", "type": "tmpfs", "share": "pod",
         "options": ["mode=1777", "size=1m"], "lifecycle": None},
        {"name": "mid", "source": "/m", "type": "tmpfs", "share": "container",
         "options": [], "lifecycle": None},
        {"name": "zeta", "source": "/z", "type": "bind", "share": "shared",
         "options": ["ro", "sandboxfs.cache=none"], "lifecycle": None},
    ]


def test_same_hint_in_both_spellings_merges() -> None:
    annotations = {f"{DOT}v.source": "/s", f"{SLASH}v/source": "/s",
                   f"{SLASH}v/type": "bind", f"{DOT}v.share": "pod"}
    (only,) = parse_hints(annotations)
    assert (only.name, only.source, only.type, only.share) == ("v", "/s", "bind", "pod")


def test_no_hints() -> None:
    assert parse_hints({}) == ()
    assert parse_hints({"io.kubernetes.cri.container-type": "sandbox"}) == ()


@pytest.mark.parametrize("annotations,key,message", [
    ({f"{SLASH}v": "x"}, f"{SLASH}v", "has the shape"),
    ({f"{SLASH}v/source/more": "x"}, f"{SLASH}v/source/more", "has the shape"),
    ({f"{DOT}v": "x"}, f"{DOT}v", "has the shape"),
    ({f"{DOT}v.x.source": "x"}, f"{DOT}v.x.source", "has the shape"),
    ({f"{SLASH}/source": "x"}, f"{SLASH}/source", "invalid mount hint name ''"),
    ({f"{DOT}.source": "x"}, f"{DOT}.source", "invalid mount hint name ''"),
    ({f"{SLASH}../source": "x"}, f"{SLASH}../source", "invalid mount hint name '..'"),
    ({f"{SLASH}./source": "x"}, f"{SLASH}./source", "invalid mount hint name '.'"),
    ({**hint("v"), f"{DOT}v.mode": "x"}, f"{DOT}v.mode", "unknown mount hint field 'mode'"),
    (hint("v", source=""), f"{DOT}v.source", "must not be empty"),
    (hint("v", type="overlay"), f"{DOT}v.type", "invalid type 'overlay'"),
    (hint("v", share="everyone"), f"{DOT}v.share", "invalid share 'everyone'"),
    (hint("v", lifecycle="forever"), f"{DOT}v.lifecycle", "invalid lifecycle 'forever'"),
    (hint("v", options="rw,exotic"), f"{DOT}v.options", "unknown mount option 'exotic'"),
    (hint("v", type="bind", options="size=1m"), f"{DOT}v.options", "not an option of bind"),
    (hint("v", options="size=huge"), f"{DOT}v.options", "size=huge"),
    (hint("v", options="sandboxfs.cache=none"), f"{DOT}v.options", "only gofer-backed"),
    ({f"{DOT}v.type": "tmpfs", f"{DOT}v.share": "pod"}, f"{DOT}v.source", "missing"),
    ({f"{DOT}v.source": "/s", f"{DOT}v.share": "pod"}, f"{DOT}v.type", "missing"),
    ({f"{SLASH}v/source": "/s", f"{SLASH}v/type": "bind"}, f"{DOT}v.share", "missing"),
    ({**hint("a", source="/same"), **hint("b", source="/same/")}, f"{DOT}b.source",
     "mount hints 'a' and 'b' have the same source"),
    ({**hint("v", source="/one"), f"{SLASH}v/source": "/two"}, f"{SLASH}v/source",
     "contradicts"),
])
def test_bad_hints_name_the_key(annotations: dict[str, str], key: str, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_hints(annotations)
    assert exc.value.field == f"annotations[{key!r}]"
    assert message in str(exc.value)


def test_split_and_build_keys() -> None:
    assert split_hint_key(f"{DOT}vol.type") == ("vol", "type")
    assert split_hint_key(f"{SLASH}vol/type") == ("vol", "type")
    assert hint_key("vol", "source") == f"{DOT}vol.source"
    assert hint_key("vol", "source", dotted=False) == f"{SLASH}vol/source"
    with pytest.raises(SpecError, match="not a mount hint"):
        split_hint_key("io.kubernetes.cri.container-type")


def test_find_hint_compares_clean_paths() -> None:
    hints = parse_hints({**hint("a", source="/var/a/"), **hint("b", source="/var/b")})
    found = find_hint(hints, "/var//a")
    assert found is not None and found.name == "a"
    assert find_hint(hints, "/var/c") is None
    assert find_hint(hints, "") is None


@pytest.mark.parametrize("annotations,sandbox", [
    ({}, True),
    ({"io.kubernetes.cri.container-type": "sandbox"}, True),
    ({"io.kubernetes.cri.container-type": "container"}, False),
    ({"io.kubernetes.cri-o.ContainerType": "sandbox"}, True),
    ({"io.kubernetes.cri-o.ContainerType": "container"}, False),
])
def test_is_sandbox(annotations: dict[str, str], sandbox: bool) -> None:
    assert is_sandbox(annotations) is sandbox


@pytest.mark.parametrize("replica,master,conflicts", [
    ([], [], ()),
    (["rw"], ["rw"], ()),
    (["ro"], ["rw"], ()),
    (["ro"], ["ro"], ()),
    ([], ["ro"], (Conflict("rw", "ro"),)),
    (["rw"], ["ro"], (Conflict("rw", "ro"),)),
    (["ro", "rw"], ["ro"], (Conflict("rw", "ro"),)),
    (["noexec"], ["noexec"], ()),
    (["exec"], ["noexec"], (Conflict("exec", "noexec"),)),
    (["noexec", "exec"], ["noexec"], (Conflict("exec", "noexec"),)),
    (["noexec"], ["exec"], ()),
    (["noatime"], ["noatime"], ()),
    (["atime"], ["noatime"], (Conflict("atime", "noatime"),)),
    (["relatime"], ["noatime"], (Conflict("atime", "noatime"),)),
    (["nosuid"], ["nosuid"], ()),
    (["suid"], ["nosuid"], (Conflict("suid", "nosuid"),)),
    ([], ["nodev"], (Conflict("dev", "nodev"),)),
    (["rbind", "rprivate", "ro", "nosuid", "noexec"], ["nosuid", "noexec", "ro"], ()),
    (["rw", "exec", "suid", "atime", "dev"], ["ro", "noexec", "nosuid", "noatime", "nodev"],
     (Conflict("rw", "ro"), Conflict("atime", "noatime"), Conflict("exec", "noexec"),
      Conflict("suid", "nosuid"), Conflict("dev", "nodev"))),
])
def test_option_compatibility(replica: list[str], master: list[str],
                              conflicts: tuple[Conflict, ...]) -> None:
    assert compatibility_conflicts(replica, master) == conflicts


def test_compatibility_messages_name_both() -> None:
    (conflict,) = compatibility_conflicts(["rw"], ["ro"])
    assert str(conflict) == "rw replica of a ro master"


def test_compatibility_types_and_bad_options() -> None:
    assert compatibility_conflicts(["size=1m", "ro"], ["rw"], replica_type="tmpfs",
                                   master_type="tmpfs") == ()
    with pytest.raises(OptionError):
        compatibility_conflicts(["bogus"], [])
