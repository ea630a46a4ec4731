"""`sandboxfs shell`: run a command where a directory is its sandbox view.

The session's sandboxfs mount (the directory as a read-only lower under a
memory upper) is bound over the directory itself in a private mount
namespace, so the command and its tools use the same paths as outside.
Everything else the command sees of the host is made read-only there
(`--rw PATH` exempts a path); `/tmp` becomes a private tmpfs unless the
directory or an exempt path lies under it. `--net none` gives the command a
network namespace of its own with only loopback. The host's namespace never
sees any of it: the root is made private first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from sandboxfs import nsutil
from sandboxfs.devsession.state import Session

VIRTUAL = ("/proc", "/sys", "/dev")


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def enter_view(session: Session, rw_paths: Sequence[str], net_none: bool) -> None:
    """In a child about to exec: the private namespace with the sandbox view."""
    flags = nsutil.CLONE_NEWNS | (nsutil.CLONE_NEWNET if net_none else 0)
    nsutil.unshare(flags)
    nsutil.mount(None, "/", None, nsutil.MS_REC | nsutil.MS_PRIVATE)
    directory = session.directory
    nsutil.mount(str(session.mountpoint), directory, None, nsutil.MS_BIND)
    writable = [directory, *rw_paths]
    for path in rw_paths:
        nsutil.mount(path, path, None, nsutil.MS_BIND | nsutil.MS_REC)
    private_tmp = not any(_inside(p, "/tmp") for p in writable)
    if private_tmp:
        nsutil.mount("tmpfs", "/tmp", "tmpfs", nsutil.MS_NOSUID | nsutil.MS_NODEV, "mode=1777")
        writable.append("/tmp")
    for target, kept in nsutil.mount_points():
        if any(_inside(target, top) for top in (*VIRTUAL, *writable)):
            continue
        if _inside(target, str(session.home)):
            continue
        try:
            nsutil.remount_readonly(target, kept)
        except OSError:
            # A mount that cannot be remounted (already gone, or special): the
            # ones that matter (/, /home, /usr, ...) are plain and do not fail.
            continue
    if net_none:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(session: Session, command: Sequence[str], *, rw_paths: Sequence[str] = (),
        net_none: bool = False) -> int:
    """Run `command` in the view; returns its exit status (128+N for signal N)."""
    cwd = os.getcwd()
    pid = os.fork()
    if pid == 0:
        try:
            enter_view(session, [os.path.realpath(p) for p in rw_paths], net_none)
            os.chdir(cwd)  # re-enter: a cwd inside the directory now shows the view
            env = dict(os.environ, SANDBOXFS_SESSION=session.name)
            os.execvpe(command[0], list(command), env)
        except BaseException as exc:  # noqa: BLE001 - the child must not return
            print(f"sandboxfs: shell: {exc}", file=sys.stderr)
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
