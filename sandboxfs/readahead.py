"""Raise the kernel's read-ahead for the FUSE mount (1 MiB reads, W3 of the bench).

A FUSE mount gets a backing device of its own with the default read-ahead
(128 KiB), so a sequential read reaches the daemon in small requests; 4 MiB
read-ahead more than doubles a cold `dd bs=1M` here. The knob is
`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`, and two things decide when to
touch it:

- the kernel clamps read-ahead to what the FUSE INIT reply allows when it
  processes INIT, which happens once the daemon serves: the value must be
  written after that;
- the daemon confines itself (landlock) before serving: the file must be
  opened before that. An open descriptor stays writable.

So `open_read_ahead` runs before confinement, `apply_read_ahead` runs as a
task once serving has begun. The device number comes from
/proc/self/mountinfo: a stat of the mountpoint would be a FUSE request the
daemon is not serving yet. Best effort throughout: without the knob or the
permission, nothing changes.
"""

from __future__ import annotations

import logging
import os

import trio

log = logging.getLogger(__name__)

READ_AHEAD_KB = 4096


def mount_device(mountpoint: str) -> str | None:
    """"MAJOR:MINOR" of the mount at `mountpoint` (the last one, if stacked)."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].encode().decode("unicode_escape") == mountpoint:
                found = fields[2]
    return found


def open_read_ahead(mountpoint: str) -> int | None:
    """The mount's read_ahead_kb, opened for writing; None if unavailable."""
    try:
        device = mount_device(mountpoint)
        if device is None:
            return None
        return os.open(f"/sys/class/bdi/{device}/read_ahead_kb", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        log.info("read-ahead of %s left as it was: %s", mountpoint, exc)
        return None


async def apply_read_ahead(fd: int, kb: int = READ_AHEAD_KB) -> None:
    """Write `kb` once FUSE INIT has surely been processed (and once more later:
    INIT's clamp must not win), then close."""
    try:
        for delay in (0.2, 1.0):
            await trio.sleep(delay)
            os.pwrite(fd, str(kb).encode(), 0)
    except OSError as exc:
        log.info("read-ahead not raised: %s", exc)
    finally:
        os.close(fd)
