from __future__ import annotations

import pytest

from sandboxfs.mountopts import OptionError, parse_mount_options, parse_size, split_lowerdir


def test_lowerdir_order_and_escapes() -> None:
    assert split_lowerdir("/a:/b:/c") == ["/a", "/b", "/c"]
    assert split_lowerdir(r"/with\:colon:/b") == ["/with:colon", "/b"]


@pytest.mark.parametrize("bad", ["", "/a::/b", ":/a", "/a:"])
def test_lowerdir_empty_layer_refused(bad: str) -> None:
    with pytest.raises(OptionError, match="empty layer"):
        split_lowerdir(bad)


def test_mount_fuse3_generic_options_tolerated() -> None:
    opts = parse_mount_options(["lowerdir=/a:/b,upper=memory,rw,nodev,nosuid,dev,suid",
                                "allow_other,defaults,noatime"])
    assert opts.lowerdirs == ["/a", "/b"]
    assert opts.upper == "memory"
    assert opts.kernel_flags == ["rw", "nodev", "nosuid", "dev", "suid", "noatime"]


@pytest.mark.parametrize("text,match", [
    ("lowerdir=/a,bogus", "unknown mount option 'bogus'"),
    ("lowerdir=/a,upper=disk", "upper="),
    ("lowerdir=/a,upperdir=,workdir=/w", "upperdir= needs"),
    ("lowerdir=/a,upper_size=lots", "not a number"),
    ("lowerdir=/a,rw=1", "unknown mount option 'rw=1'"),
])
def test_bad_options_named(text: str, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        parse_mount_options([text])


def test_upperdir_and_workdir() -> None:
    opts = parse_mount_options(["lowerdir=/a,upperdir=/u,workdir=/w"])
    assert (opts.upperdir, opts.workdir) == ("/u", "/w")


def test_sizes() -> None:
    assert parse_size("4096") == 4096
    assert parse_size("1M") == 1 << 20
    assert parse_size("2g") == 2 << 30
    with pytest.raises(OptionError):
        parse_size("0")
