"""`sandboxfs run BUNDLE`: a runtime's view of the mounted tree.

Mounts the bundle (the whole plan) on a private mountpoint, then, in a child
with a mount namespace and a PID namespace of its own (the root made private
first, so nothing reaches the host), mounts the kernel's `proc`, `sysfs`
(read-only) and a new `devpts` at the mount points the plan left for them,
binds the host's `/dev/null`, `zero`, `full`, `random`, `urandom` and `tty`
over the device names of the sandbox's `/dev` (the FUSE mount is `nodev`, so
its own device nodes do not open; rootless runc does the same), chroots,
takes `process.user`, and runs `process.args` with exactly `process.env` in
`process.cwd`. Its exit status (128+N for signal N) is `run`'s; the tree is
unmounted afterwards, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from sandboxfs import mounts, nsutil
from sandboxfs.devtree import DEVICES
from sandboxfs.plan import Plan
from sandboxfs.spec import Process

RUN_DIR = os.path.join(os.environ.get("SANDBOXFS_RUN_DIR", "/run/sandboxfs"), "run")


def run(plan: Plan, process: Process, *, fsname: str, upper_size: int | None) -> int:
    os.makedirs(RUN_DIR, exist_ok=True)
    mountpoint = tempfile.mkdtemp(prefix="c-", dir=RUN_DIR)
    try:
        status = mounts.mount(mountpoint=mountpoint, lowers=[plan.root.source], fsname=fsname,
                              upper_size=upper_size, kernel_flags=[], foreground=False,
                              log_path=None, plan=plan)
        if status != 0:
            return status
        try:
            return _run_inside(mountpoint, process)
        finally:
            mounts.umount(mountpoint)
    finally:
        os.rmdir(mountpoint)


def _run_inside(root: str, process: Process) -> int:
    pid = os.fork()
    if pid == 0:
        code = 127
        try:
            nsutil.unshare(nsutil.CLONE_NEWNS | nsutil.CLONE_NEWPID)
            nsutil.mount(None, "/", None, nsutil.MS_REC | nsutil.MS_PRIVATE)
            init = os.fork()  # the first child of a new PID namespace is its PID 1
            if init == 0:
                _exec_in(root, process)
            code = _wait(init)
        except BaseException as exc:  # the child must never return into the CLI
            print(f"sandboxfs: run: {exc}", file=sys.stderr)
        os._exit(code)
    return _wait(pid)


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _exec_in(root: str, process: Process) -> None:
    try:
        _kernel_mounts(root)
        os.chroot(root)
        os.chdir(process.cwd)
        os.setgroups(list(process.additional_gids))
        os.setgid(process.gid)
        os.setuid(process.uid)
        env = dict(item.split("=", 1) for item in process.env)
        os.execve(_resolve(process.args[0], env.get("PATH", "")), list(process.args), env)
    except BaseException as exc:
        print(f"sandboxfs: run: {process.args[0]}: {exc}", file=sys.stderr)
        os._exit(127)


def _kernel_mounts(root: str) -> None:
    nsutil.mount("proc", f"{root}/proc", "proc",
                 nsutil.MS_NOSUID | nsutil.MS_NODEV | nsutil.MS_NOEXEC)
    nsutil.mount("sysfs", f"{root}/sys", "sysfs",
                 nsutil.MS_RDONLY | nsutil.MS_NOSUID | nsutil.MS_NODEV | nsutil.MS_NOEXEC)
    if os.path.isdir(f"{root}/dev/pts"):
        nsutil.mount("devpts", f"{root}/dev/pts", "devpts", nsutil.MS_NOSUID | nsutil.MS_NOEXEC,
                     "newinstance,ptmxmode=0666,mode=620")
    for name in DEVICES:
        target = f"{root}/dev/{name}"
        if os.path.exists(f"/dev/{name}") and os.path.lexists(target):
            nsutil.mount(f"/dev/{name}", target, None, nsutil.MS_BIND)


def _resolve(program: str, path: str) -> str:
    """`program` as execve needs it: a path, or found in the process's PATH."""
    if "/" in program:
        return program
    found = shutil.which(program, path=path or "/usr/bin:/bin")
    if found is None:
        raise FileNotFoundError(f"{program}: not found in PATH={path}")
    return found


def override(process: Process, args: Sequence[str]) -> Process:
    """`process` with other args (`sandboxfs run BUNDLE -- ARGS`)."""
    return Process(args=tuple(args), env=process.env, cwd=process.cwd, uid=process.uid,
                   gid=process.gid, additional_gids=process.additional_gids)
