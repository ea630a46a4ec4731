"""Linux namespace and mount calls that Python 3.11 lacks (ctypes), kept small.

Used by the commands that run a process inside a view (`sandboxfs shell`);
they run in a child that is about to exec, never in the daemon.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

_libc = ctypes.CDLL(None, use_errno=True)

#: Per-mount options of /proc/self/mountinfo that a read-only remount must keep.
_KEPT = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
         "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None), f"mount {target}")


def mount_points() -> list[tuple[str, int]]:
    """(mount point, flags to keep) of every mount this process sees, in order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            target = fields[4].encode().decode("unicode_escape")
            kept = 0
            for option in fields[5].split(","):
                kept |= _KEPT.get(option, 0)
            out.append((target, kept))
    return out


def remount_readonly(target: str, kept: int) -> None:
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
