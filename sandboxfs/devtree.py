"""The sandbox's minimal `/dev`: what a container expects to find there.

`/dev` is a memory filesystem holding the usual character devices, the
`/proc/self/fd` symlinks, and `shm/` and `pts/` directories. The device
nodes are only names with numbers: the FUSE mount is `nodev`, so opening one
through it fails; a runtime (or `sandboxfs run`) binds the host's own
`/dev/null` and friends over them, as rootless runc does. `/dev/pts` is a
mount point left for the runtime's devpts.
"""

from __future__ import annotations

import os
import stat

from sandboxfs.vfs import Creds, Inode

#: name → (major, minor) of the character devices, all mode 0666 as on Linux.
DEVICES: dict[str, tuple[int, int]] = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}

SYMLINKS: dict[str, str] = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}

DIRECTORIES: dict[str, int] = {"shm": 0o1777, "pts": 0o755}

ROOT = Creds(0, 0)


async def populate_dev(root: Inode) -> None:
    """Fill an empty directory with the device tree."""
    for name, (major, minor) in DEVICES.items():
        await root.mknod(name.encode(), stat.S_IFCHR | 0o666, os.makedev(major, minor), ROOT)
    for name, target in SYMLINKS.items():
        await root.symlink(name.encode(), target.encode(), ROOT)
    for name, mode in DIRECTORIES.items():
        await root.mkdir(name.encode(), mode, ROOT)
