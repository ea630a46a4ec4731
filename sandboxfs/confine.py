"""Confining the daemon once its mount is live.

After start-up the daemon needs no host path at all: it talks to the kernel
through /dev/fuse (already open), to its gofer through sockets (already
connected), and keeps file bodies in memfds (no path). So it applies a
landlock ruleset that handles every filesystem right and allows none: from
then on any open, exec, mkdir or unlink of a host path fails with EACCES,
whatever bug or confused request asks for it.

A landlocked process may not unmount, so before confining itself the daemon
forks a small guard that waits for the daemon to exit and then detaches the
mount if it is still there (as libfuse's `auto_unmount` does): a daemon that
stops, or dies, leaves no stale mount behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence

log = logging.getLogger(__name__)

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
_MNT_DETACH = 2

# Filesystem access rights by landlock ABI version (cumulative).
_FS_RIGHTS_BY_ABI = {
    1: (1 << 13) - 1,  # EXECUTE .. MAKE_SYM
    2: (1 << 14) - 1,  # + REFER
    3: (1 << 15) - 1,  # + TRUNCATE
    4: (1 << 15) - 1,
    5: (1 << 16) - 1,  # + IOCTL_DEV
}

_libc = ctypes.CDLL(None, use_errno=True)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


def landlock_abi() -> int:
    """The kernel's landlock ABI version, 0 when landlock is unavailable."""
    version = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                            ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(version, 0)


def deny_all_host_paths() -> bool:
    """Forbid this process every filesystem access by path. False if unsupported."""
    abi = landlock_abi()
    if abi == 0:
        log.warning("landlock unavailable: the daemon stays unconfined")
        return False
    attr = _RulesetAttr(_FS_RIGHTS_BY_ABI[min(abi, max(_FS_RIGHTS_BY_ABI))])
    fd = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                       ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if fd < 0:
        log.warning("landlock_create_ruleset failed: %s", os.strerror(ctypes.get_errno()))
        return False
    try:
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            log.warning("PR_SET_NO_NEW_PRIVS failed: %s", os.strerror(ctypes.get_errno()))
            return False
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, fd, ctypes.c_uint32(0)) != 0:
            log.warning("landlock_restrict_self failed: %s", os.strerror(ctypes.get_errno()))
            return False
    finally:
        os.close(fd)
    return True


def start_unmount_guard(mountpoint: str, leftovers: Sequence[str | None] = ()) -> int:
    """Fork a guard that detaches `mountpoint` once this process has exited.

    The guard holds only the read end of a pipe whose write end stays in the
    daemon; end of file on it means the daemon is gone. It then also removes
    the `leftovers` (the daemon's state file and control socket), which the
    confined daemon cannot. Returns its pid.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(read_end)
        os.set_inheritable(write_end, False)
        return pid
    try:
        os.close(write_end)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        keep = {read_end}
        for fd in os.listdir("/proc/self/fd"):
            if int(fd) > 2 and int(fd) not in keep:
                try:
                    os.close(int(fd))
                except OSError:
                    pass
        while os.read(read_end, 1):
            pass
        _libc.umount2(mountpoint.encode(), _MNT_DETACH)
        for path in leftovers:
            if path is None:
                continue
            try:
                os.unlink(path)
            except OSError:
                pass
    finally:
        sys.stdout.flush()
        os._exit(0)
