"""The checkpoint image format (docs/checkpoint.md): framing, records, checksums.

    magic[8] = b"SBXFSIMG"   version[4] (little-endian, 1)
    record*: kind[1] length[4] payload[length] crc32[4]   (crc over kind, length, payload)
    the last record is TRAILER: {"records": N, "sha256": hex of every byte before it}

Record kinds: HEADER (JSON, first), SECTION (JSON {"key"}: the tree of one
memory filesystem follows), NODE (JSON: one entry of that tree), DATA (raw
bytes of the last NODE's file, at most CHUNK each), END (the section's end),
TRAILER. Pure: bytes in, records out; the reader and writer do the I/O.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

MAGIC = b"SBXFSIMG"
VERSION = 1
PREAMBLE = struct.Struct("<8sI")
RECORD = struct.Struct("<BI")
CRC = struct.Struct("<I")
CHUNK = 1 << 20
MAX_JSON = 64 << 20

HEADER, SECTION, NODE, DATA, END, TRAILER = 1, 2, 3, 4, 5, 6
KIND_NAMES = {HEADER: "header", SECTION: "section", NODE: "node", DATA: "data", END: "end",
              TRAILER: "trailer"}


class ImageError(ValueError):
    """An image that cannot be restored; the message says what is wrong and where."""


def preamble() -> bytes:
    return PREAMBLE.pack(MAGIC, VERSION)


def record(kind: int, payload: bytes) -> bytes:
    head = RECORD.pack(kind, len(payload))
    return head + payload + CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


def json_record(kind: int, value: Any) -> bytes:
    return record(kind, json.dumps(value, separators=(",", ":")).encode())


def check_preamble(data: bytes) -> None:
    if len(data) < PREAMBLE.size:
        raise ImageError("truncated: no image header")
    magic, version = PREAMBLE.unpack(data)
    if magic != MAGIC:
        raise ImageError(f"not a sandboxfs checkpoint image (magic {magic!r})")
    if version != VERSION:
        raise ImageError(f"image format version {version} is not supported (this is {VERSION})")


def parse_json(kind: int, payload: bytes, offset: int) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ImageError(f"{KIND_NAMES[kind]} record at byte {offset}: not JSON") from None
