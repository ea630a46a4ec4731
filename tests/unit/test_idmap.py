"""Id mapping: parsing the options, and ids both ways."""

from __future__ import annotations

import errno

import pytest

from sandboxfs.idmap import OVERFLOW_ID, IdMapper, IdRange, parse_ranges
from sandboxfs.mountopts import OptionError, parse_mount_options


def test_fuse_overlayfs_and_containerd_forms_give_the_same_ranges() -> None:
    want = (IdRange(0, 1000, 1), IdRange(1, 110000, 65536))
    assert parse_ranges("uidmapping", "0:1000:1:1:110000:65536") == want
    assert parse_ranges("uidmapping", "0:1000:1,1:110000:65536") == want
    colons = parse_mount_options(["lowerdir=/a,uidmapping=0:1000:1:1:110000:65536,rw"])
    commas = parse_mount_options(["lowerdir=/a,uidmap=0:1000:1,1:110000:65536,rw"])
    assert colons.uid_ranges == commas.uid_ranges == want
    assert commas.kernel_flags == ["rw"]  # the continuation stopped at the next option
    gids = parse_mount_options(["lowerdir=/a,gidmap=0:100000:65536"])
    assert gids.gid_ranges == (IdRange(0, 100000, 65536),) and gids.uid_ranges == ()


def test_ids_both_ways() -> None:
    m = IdMapper((IdRange(0, 1000, 1), IdRange(1, 110000, 65536)))
    assert [m.shown(0), m.shown(1), m.shown(65536), m.shown(65537)] == [1000, 110000, 175535,
                                                                         OVERFLOW_ID]
    assert [m.stored(1000), m.stored(110000), m.stored(175535)] == [0, 1, 65536]
    with pytest.raises(OSError) as exc:
        m.stored(0)  # host root is not mapped: nothing to store
    assert exc.value.errno == errno.EOVERFLOW
    identity = IdMapper()
    assert identity.is_identity and identity.shown(7) == 7 and identity.stored(7) == 7


def test_squash_shows_one_owner_and_stores_by_the_ranges() -> None:
    opts = parse_mount_options(["lowerdir=/a,squash_to_root"])
    mapping = opts.idmapping()
    assert mapping is not None
    assert mapping.uid.shown(1234) == 0 and mapping.gid.shown(99) == 0
    assert mapping.uid.stored(1234) == 1234
    opts = parse_mount_options(["lowerdir=/a,squash_to_uid=7,squash_to_gid=8"])
    mapping = opts.idmapping()
    assert mapping is not None and (mapping.uid.shown(0), mapping.gid.shown(0)) == (7, 8)
    assert parse_mount_options(["lowerdir=/a"]).idmapping() is None


@pytest.mark.parametrize("text,match", [
    ("uidmapping=0:1000", "triples"),
    ("uidmapping=", "triples"),
    ("gidmap=a:b:c", "decimal"),
    ("uidmap=0:1000:0", "positive"),
    ("uidmapping=0:1000:10:5:2000:10", "overlap on the inside"),
    ("uidmapping=0:1000:10:20:1005:10", "overlap on the outside"),
    ("uidmap=0:4294967290:100", "past id"),
    ("squash_to_uid=-1", "squash_to_uid"),
    ("squash_to_root=1", "takes no value"),
])
def test_bad_mappings_named(text: str, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        parse_mount_options([f"lowerdir=/a,{text}"])
