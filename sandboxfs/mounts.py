"""Mounting and unmounting from the command line: daemonizing, state, clean-up.

`mount()` forks: the child becomes the daemon (new session, stdio closed once
the mount is live) and reports "ok" or the failure through a pipe, so the
command returns only when the mount can be used and exits non-zero with the
reason when it cannot. The daemon's pid is recorded under the state
directory, keyed by mountpoint, so `umount()` can stop it and also clean up
after a daemon that died (a stale "Transport endpoint is not connected" mount).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from sandboxfs.daemon import DaemonConfig, default_upper_size, serve
from sandboxfs.gofer_proc import Export
from sandboxfs.idmap import IdMapping
from sandboxfs.plan import Plan
from sandboxfs.pod.serve import serve_pod

STATE_DIR = Path(os.environ.get("SANDBOXFS_RUN_DIR", "/run/sandboxfs")) / "mounts"
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _state_file(mountpoint: str) -> Path:
    key = hashlib.sha256(mountpoint.encode()).hexdigest()[:24]
    return STATE_DIR / f"{key}.json"


def control_path(mountpoint: str) -> Path:
    """Where a (non-pod) mount's daemon listens for control requests."""
    return _state_file(mountpoint).with_suffix(".sock")


def _write_state(mountpoint: str, pid: int) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = _state_file(mountpoint)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"mountpoint": mountpoint, "pid": pid}))
    tmp.rename(path)


def _forget_state(mountpoint: str) -> None:
    """Remove the state files; a confined daemon cannot (its guard does it then)."""
    for path in (_state_file(mountpoint), control_path(mountpoint)):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _read_pid(mountpoint: str) -> int | None:
    try:
        return int(json.loads(_state_file(mountpoint).read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def is_mounted(mountpoint: str) -> bool:
    """True if /proc/mounts lists a sandboxfs (or any FUSE) mount at `mountpoint`."""
    target = mountpoint.replace(" ", "\\040")
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1] == target and fields[2].startswith("fuse"):
                return True
    return False


def mount(*, mountpoint: str, lowers: list[str], fsname: str, upper_size: int | None,
          kernel_flags: list[str], foreground: bool, log_path: str | None,
          plan: Plan | None = None, pod: PodSettings | None = None,
          restore_image: str | None = None, upperdir: str | None = None,
          idmap: IdMapping | None = None, redirect_dir: bool = True) -> int:
    """Mount plain layers (`lowers`, top-most first), or a bundle's whole
    `plan` (then `lowers` is unused), or a pod whose first container has that
    plan; returns the exit status."""
    mountpoint = os.path.realpath(mountpoint)
    if not os.path.isdir(mountpoint):
        print(f"sandboxfs: mountpoint {mountpoint} is not a directory", file=sys.stderr)
        return 2
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log_path \
        else None
    cfg = DaemonConfig(
        mountpoint=mountpoint,
        lowers=[Export(path, readonly=True) for path in lowers],
        fsname=fsname.replace(",", "_"),
        upper_size=upper_size or default_upper_size(),
        kernel_flags=kernel_flags,
        log_fd=log_fd,
        state_file=str(_state_file(mountpoint)),
        plan=plan,
        pod_id=pod.first_id if pod else None,
        control_path=pod.control_path if pod else str(control_path(mountpoint)),
        sandbox_bundle=pod.sandbox_bundle if pod else None,
        restore_image=restore_image,
        upperdir=upperdir,
        layer_devs=None if plan is not None else _layer_devs(upperdir, lowers),
        idmap=idmap,
        redirect_dir=redirect_dir,
        pod_extra=list(pod.extra) if pod else [],
    )
    if foreground:
        return _run_foreground(cfg)
    return _run_daemonized(cfg)


def _layer_devs(upperdir: str | None, lowers: list[str]) -> list[int | None]:
    """The host filesystem of every layer, upper first (None: the memory upper)."""
    return [os.stat(upperdir).st_dev if upperdir else None] + [os.stat(p).st_dev for p in lowers]


@dataclass(frozen=True, slots=True)
class PodSettings:
    """What makes a mount a pod: its control socket, first container, sandbox bundle."""

    control_path: str
    first_id: str
    sandbox_bundle: str
    # Restoring a pod: its other containers (id, plan, gofer sockets), added at start.
    extra: tuple[tuple[str, Plan, list[socket.socket]], ...] = ()


def _entry(cfg: DaemonConfig) -> Callable[[DaemonConfig, Callable[[str | None], None]],
                                          Awaitable[None]]:
    return serve if cfg.pod_id is None else serve_pod


def _run_foreground(cfg: DaemonConfig) -> int:
    def ready(error: str | None) -> None:
        if error is None:
            _write_state(cfg.mountpoint, os.getpid())
        else:
            print(f"sandboxfs: mount failed: {error}", file=sys.stderr)

    try:
        trio.run(_entry(cfg), cfg, ready)
    except KeyboardInterrupt:
        pass
    except Exception:
        return 1
    finally:
        _forget_state(cfg.mountpoint)
    return 0


def _run_daemonized(cfg: DaemonConfig) -> int:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read().decode(errors="replace").strip()
        if answer == "ok":
            return 0
        os.waitpid(pid, 0)
        print(f"sandboxfs: mount failed: {answer or 'daemon exited'}", file=sys.stderr)
        return 1
    # The daemon.
    os.close(read_end)
    os.setsid()
    status = 0

    def ready(error: str | None) -> None:
        if error is None:
            _write_state(cfg.mountpoint, os.getpid())
            _detach_stdio(cfg.log_fd)
            os.write(write_end, b"ok\n")
        else:
            os.write(write_end, error.encode() + b"\n")
        os.close(write_end)

    if cfg.log_fd is not None:
        logging.getLogger().handlers.clear()
        logging.basicConfig(stream=os.fdopen(os.dup(cfg.log_fd), "w", buffering=1),
                            level=logging.INFO, force=True,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        trio.run(_entry(cfg), cfg, ready)
    except BaseException:
        logging.getLogger(__name__).exception("daemon stopped on an error")
        status = 1
    finally:
        _forget_state(cfg.mountpoint)
    os._exit(status)


def _detach_stdio(log_fd: int | None) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(log_fd if log_fd is not None else devnull, 1)
    os.dup2(log_fd if log_fd is not None else devnull, 2)
    os.close(devnull)


def serving(mountpoint: str) -> bool:
    """True when `mountpoint` is mounted and its daemon is alive."""
    pid = _read_pid(mountpoint)
    return pid is not None and _alive(pid) and is_mounted(mountpoint)


def _umount2(path: str, flags: int) -> int:
    if _libc.umount2(path.encode(), flags) == 0:
        return 0
    return ctypes.get_errno()


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def umount(mountpoint: str) -> int:
    """Unmount, then make sure the daemon (and so its gofer) is gone."""
    mountpoint = os.path.abspath(mountpoint)
    # realpath would stat through a dead FUSE mount (ENOTCONN); resolve the parent only.
    mountpoint = os.path.join(os.path.realpath(os.path.dirname(mountpoint)),
                              os.path.basename(mountpoint))
    pid = _read_pid(mountpoint)
    if not is_mounted(mountpoint) and pid is None:
        print(f"sandboxfs: {mountpoint} is not mounted", file=sys.stderr)
        return 1
    if is_mounted(mountpoint):
        err = _umount2(mountpoint, 0)
        if err == errno.EBUSY:
            err = _umount2(mountpoint, MNT_DETACH)
        if err not in (0, errno.EINVAL, errno.ENOENT):
            print(f"sandboxfs: umount {mountpoint}: {os.strerror(err)}", file=sys.stderr)
            return 1
    if pid is not None:
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _state_file(mountpoint).unlink(missing_ok=True)
    control_path(mountpoint).unlink(missing_ok=True)
    return 0


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
