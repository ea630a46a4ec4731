"""Bad images are refused by `read_image` with an ImageError saying what is
wrong, before anything is restored: wrong magic, unknown version, cut at
any length, any single byte flipped, data appended, and images whose
records are intact but do not make a tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from sandboxfs.checkpoint import ImageError, read_image
from sandboxfs.checkpoint.format import (
    DATA,
    END,
    HEADER,
    NODE,
    SECTION,
    TRAILER,
    json_record,
    preamble,
    record,
)
from sandboxfs.tmpfs import TmpFs

from .checkpoint_trees import BIG, checkpoint, rich_tree
from .helpers import ROOT, write_at


async def refused(path: Path, data: bytes, match: str | None = None) -> str:
    """`data` as an image is refused and restores nothing; the message."""
    path.write_bytes(data)
    into = TmpFs()
    with pytest.raises(ImageError, match=match) as info:
        image = read_image(path)
        for key in image.sections:
            await image.restore_tree(key, into.root)
    assert await into.root.readdir() == [] and into.used_inodes == 1
    return str(info.value)


async def small_image(tmp_path: Path) -> bytes:
    fs = TmpFs()
    f = await fs.root.create(b"f", 0o644, ROOT)
    await write_at(f, 0, b"hello")
    await f.setxattr(b"user.x", b"1")
    await fs.root.link(b"g", f)
    await fs.root.mknod(b"w", stat.S_IFCHR, 0, ROOT)
    return (await checkpoint(tmp_path / "small", [("0", fs.root)])).read_bytes()


async def test_every_cut_and_every_flipped_byte_of_a_small_image(tmp_path: Path) -> None:
    good = await small_image(tmp_path)
    assert len(good) < 4096
    for cut in range(len(good)):
        await refused(tmp_path / "bad", good[:cut])
    for pos in range(len(good)):
        for bit in (0x01, 0x80):
            flipped = bytearray(good)
            flipped[pos] ^= bit
            await refused(tmp_path / "bad", bytes(flipped))


async def test_a_rich_image_damaged_here_and_there(tmp_path: Path) -> None:
    fs = await rich_tree()
    image = await checkpoint(tmp_path / "img", [("0", fs.root)])
    good = image.read_bytes()
    big = await (await fs.root.lookup(b"big")).open(os.O_RDONLY)
    sample = await big.read(BIG // 2, 64)
    await big.release()
    in_data = good.index(sample) + 10
    in_header = 12 + 5 + 20  # inside the header record's JSON
    bad = tmp_path / "bad"
    assert "not a sandboxfs checkpoint image" in await refused(bad, b"NOTANIMG" + good[8:])
    for version in (0, 2, 99):
        message = await refused(bad, good[:8] + version.to_bytes(4, "little") + good[12:])
        assert f"version {version} is not supported" in message
    assert "truncated" in await refused(bad, b"")
    for cut in (5, 12, 13, 40, in_data, len(good) // 2, len(good) - 45, len(good) - 1):
        assert "truncated" in await refused(bad, good[:cut])
    for pos in (12, 16, in_header, 200, in_data, len(good) // 3, len(good) - 10,
                len(good) - 1):
        flipped = bytearray(good)
        flipped[pos] ^= 0x40
        await refused(bad, bytes(flipped))
    assert "checksum mismatch" in await refused(
        bad, good[:in_data] + bytes([good[in_data] ^ 1]) + good[in_data + 1:])
    assert "after the trailer" in await refused(bad, good + json_record(END, {}))
    await refused(bad, good + b"more")
    await refused(bad, good + good)


def craft(*records: bytes, trailer: dict[str, Any] | None = None) -> bytes:
    """An image of `records` with a valid trailer (unless given): checksums
    all right, so only the reader's tree checks can refuse it."""
    import hashlib

    body = preamble() + b"".join(records)
    if trailer is None:
        trailer = {"records": len(records), "sha256": hashlib.sha256(body).hexdigest()}
    return body + json_record(TRAILER, trailer)


def node(path: str, kind: str = "file", **fields: Any) -> bytes:
    meta = {"path": path, "type": kind, "mode": 0o644, "uid": 0, "gid": 0, "size": 0,
            "rdev": 0, "atime_ns": 1, "mtime_ns": 2, "ctime_ns": 3, "xattrs": {}}
    meta.update(fields)
    return json_record(NODE, meta)


ROOT_NODE = node("", "dir", mode=0o755)
HEAD = json_record(HEADER, {"mounts": []})
SEC = json_record(SECTION, {"key": "0"})
F = b"f".hex()


@pytest.mark.parametrize(("records", "match"), [
    ((HEAD, SEC, ROOT_NODE, record(END, b"")), None),  # the control: accepted
    ((SEC, ROOT_NODE, record(END, b"")), "not the header"),
    ((HEAD, HEAD), "second header"),
    ((HEAD, ROOT_NODE), "outside a section"),
    ((HEAD, SEC, ROOT_NODE), "no end"),
    ((HEAD, SEC, ROOT_NODE, record(END, b""), SEC, ROOT_NODE, record(END, b"")), "repeated"),
    ((HEAD, SEC, node(F), record(END, b"")), "root directory"),
    ((HEAD, SEC, ROOT_NODE, node("61/62"), record(END, b"")), "parent"),
    ((HEAD, SEC, ROOT_NODE, node(F), node(F), record(END, b"")), "second entry"),
    ((HEAD, SEC, ROOT_NODE, node("zz"), record(END, b"")), "valid name"),
    ((HEAD, SEC, ROOT_NODE, node("2e"), record(END, b"")), "valid name"),
    ((HEAD, SEC, ROOT_NODE, node("/" + F), record(END, b"")), "valid name"),
    ((HEAD, SEC, ROOT_NODE, node("66", size=3), record(END, b"")), "missing 3 bytes"),
    ((HEAD, SEC, ROOT_NODE, node(F, size=3), record(DATA, b"abcd"), record(END, b"")),
     "more bytes"),
    ((HEAD, SEC, ROOT_NODE, record(DATA, b"x"), record(END, b"")), "more bytes"),
    ((HEAD, SEC, ROOT_NODE, node(F, "link", link_to="6e6f"), record(END, b"")),
     "link to no earlier"),
    ((HEAD, SEC, ROOT_NODE, node(F, "dir"), node("67", "link", link_to=F), record(END, b"")),
     "link to no earlier"),
    ((HEAD, SEC, ROOT_NODE, node(F, "door"), record(END, b"")), "unknown type"),
    ((HEAD, SEC, ROOT_NODE, node(F, mode=0o100644), record(END, b"")), "permission bits"),
    ((HEAD, SEC, ROOT_NODE, node(F, uid=-1), record(END, b"")), "uid"),
    ((HEAD, SEC, ROOT_NODE, node(F, mtime_ns="now"), record(END, b"")), "mtime_ns"),
    ((HEAD, SEC, ROOT_NODE, node(F, xattrs={"zz": "00"}), record(END, b"")), "xattrs"),
    ((HEAD, SEC, ROOT_NODE, node(F, "symlink"), record(END, b"")), "target"),
    ((HEAD, SEC, ROOT_NODE, record(NODE, b"{not json"), record(END, b"")), "not JSON"),
    ((json_record(HEADER, [1]),), "not a JSON object"),
])
async def test_intact_records_that_make_no_tree(tmp_path: Path, records: tuple[bytes, ...],
                                                match: str | None) -> None:
    data = craft(*records)
    if match is None:
        (tmp_path / "ok").write_bytes(data)
        image = read_image(tmp_path / "ok")
        await image.restore_tree("0", TmpFs().root)
        return
    await refused(tmp_path / "bad", data, match)


async def test_a_trailer_that_does_not_match(tmp_path: Path) -> None:
    records = (HEAD, SEC, ROOT_NODE, record(END, b""))
    await refused(tmp_path / "bad", craft(*records, trailer={"records": 3, "sha256": "0"}),
                  "record count")
    await refused(tmp_path / "bad", craft(*records, trailer={"records": 4, "sha256": "0"}),
                  "SHA-256")


async def test_an_image_changed_after_it_was_verified_restores_nothing(
        tmp_path: Path) -> None:
    fs = await rich_tree()
    path = await checkpoint(tmp_path / "img", [("0", fs.root)])
    image = read_image(path)
    other = TmpFs()
    await other.root.mkdir(b"x", 0o755, ROOT)
    await checkpoint(path, [("0", other.root)])  # replaced (renamed over)
    into = TmpFs()
    with pytest.raises(ImageError, match="changed since it was verified"):
        await image.restore_tree("0", into.root)
    assert await into.root.readdir() == []
