"""Checkpoint and restore as the daemon and the CLI carry them out.

The daemon writes (it is confined, so the CLI opens the image file and hands
it the descriptor), with every FUSE request held at the pause gate while it
writes, so each write is in the image entirely or not at all. The mount
table in the header names each mount as runsc's restore environment does:
filesystem type and device name (`9pfs-/`, `9pfs-DEST`, `none`), with the
destination, flags, options and cache policy. Restore matches the new
bundle's plan against it by (type, device) for gofer mounts and (type,
destination) for the rest, and refuses any mount left unmatched on either
side, before anything is mounted.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandboxfs.checkpoint.format import ImageError
from sandboxfs.checkpoint.reader import Image
from sandboxfs.checkpoint.writer import write_image
from sandboxfs.pause import Pauser
from sandboxfs.plan import Plan
from sandboxfs.plan.model import GOFER, NO_DEVICE, MountInfo
from sandboxfs.progress import terminal_counter
from sandboxfs.vfs import Inode

FORMAT_NOTE = "sandboxfs checkpoint"


async def write_paused(pauser: Pauser, fd: int, header: dict[str, Any],
                       trees: Sequence[tuple[str, Inode]], *, stop: bool) -> dict[str, int]:
    """Write the image while every request waits at the gate; the gate reopens
    after, unless `stop` (the caller unmounts next, with nothing written since)."""
    await pauser.pause()
    try:
        nbytes, files = await write_image(fd, {"format": FORMAT_NOTE, **header}, trees)
    finally:
        if not stop:
            pauser.resume()
    return {"bytes": nbytes, "files": files}


def mount_table(plan: Plan | None, memory: dict[int, Any]) -> list[dict[str, Any]]:
    """The header's mounts: one entry per mount, index 0 the root."""
    if plan is None:  # plain layers: one overlay over the layers
        return [{"index": 0, "destination": "/", "type": "layers", "device": NO_DEVICE,
                 "flags": [], "options": [], "cache": "exclusive", "memory": 0 in memory}]
    out = []
    for index, info in enumerate((plan.root, *plan.mounts)):
        out.append({"index": index, "destination": info.destination, "type": info.type,
                    "device": info.device, "flags": sorted(info.flags),
                    "options": list(info.options), "cache": info.cache,
                    "memory": index in memory})
    return out


def _key(entry: dict[str, Any]) -> tuple[str, str]:
    if entry["type"] == GOFER:
        return entry["type"], entry["device"]
    return entry["type"], entry["destination"]


def _info_entry(index: int, info: MountInfo) -> dict[str, Any]:
    return {"index": index, "destination": info.destination, "type": info.type,
            "device": info.device}


@dataclass(frozen=True, slots=True)
class Match:
    """Plan mount index → the image section holding its memory filesystem."""

    sections: dict[int, str]


def match(image: Image, plan: Plan) -> Match:
    """Pair every image mount with one plan mount; ImageError naming the first
    one left over, or one whose type differs."""
    return match_table(image.header.get("mounts", []), plan)


def match_table(table: list[dict[str, Any]], plan: Plan, prefix: str = "") -> Match:
    """`match` for one mount table (a pod's image has one per container, whose
    sections are named PREFIX + index)."""
    planned = [_info_entry(i, info) for i, info in enumerate((plan.root, *plan.mounts))]
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in planned:
        by_key.setdefault(_key(entry), entry)
    sections: dict[int, str] = {}
    used: set[int] = set()
    for entry in table:
        found = by_key.get(_key(entry))
        if found is None or found["index"] in used:
            same_dest = [p for p in planned if p["destination"] == entry["destination"]]
            if same_dest and same_dest[0]["type"] != entry["type"]:
                raise ImageError(f"mount {entry['destination']}: the image has a "
                                 f"{entry['type']} filesystem, the bundle a "
                                 f"{same_dest[0]['type']}")
            raise ImageError(f"mount {entry['destination']} ({entry['type']}, "
                             f"{entry['device']}) of the image has no match in the bundle")
        used.add(found["index"])
        if entry.get("memory"):
            sections[found["index"]] = f"{prefix}{entry['index']}"
    for entry in planned:
        if entry["index"] not in used:
            raise ImageError(f"mount {entry['destination']} ({entry['type']}, "
                             f"{entry['device']}) of the bundle is not in the image")
    return Match(sections)


async def restore_memory(image: Image, matched: Match, memory: dict[int, Inode]) -> None:
    """Fill each memory filesystem of the new namespace from its image section.

    On a terminal (the daemon's stderr is still the CLI's until it is ready),
    the bytes and files restored so far are shown as it goes."""
    show = terminal_counter("restore")
    done = (0, 0)
    for index, section in matched.sections.items():
        if index not in memory:
            raise ImageError(f"section {section}: the bundle's mount {index} keeps no memory")
        base = done

        def progress(nbytes: int, files: int, base: tuple[int, int] = base) -> None:
            if show is not None:
                show(base[0] + nbytes, base[1] + files)

        got = await image.restore_tree(section, memory[index], progress)
        done = (done[0] + got[0], done[1] + got[1])
    if show is not None:
        print(f"\rrestore: {done[0]} bytes, {done[1]} files", file=sys.stderr)


def fingerprint(root: str) -> str:
    """Names, types, sizes, mtimes and modes of a host tree: the rootfs lower must
    be the same tree at restore as at checkpoint (bytes are not read: fast)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            digest.update(f"{os.path.relpath(path, root)}\0{st.st_mode}\0{st.st_size}\0"
                          f"{st.st_mtime_ns}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()
