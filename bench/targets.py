"""The four filesystems under test: how each is mounted over the tree and taken down.

Every target is mounted fresh for each workload at the same mount point, over
the same read-only bind of the tree (`Layout.lower`), so the overlays can only
read it. Unmounting never gives up quietly: a mount that will not go is
detached lazily, a FUSE connection that hangs is aborted, and a daemon that
outlives its mount is killed by pid, so a run never leaves anything behind.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MOUNT_TIMEOUT_S = 60
UNMOUNT_TIMEOUT_S = 60


class MountError(Exception):
    """A target could not be mounted; the message says what the command answered."""


@dataclass(frozen=True)
class Layout:
    """Where things live under the work directory during a run."""

    workdir: Path
    tree: Path  # the cached tree itself (never written)
    lower: Path  # a read-only bind mount of the tree, the overlays' lower layer
    mnt: Path  # where each target is mounted
    upper: Path  # a fresh tmpfs per mount, for the overlays' upper and work dirs
    sandboxfs: str  # the sandboxfs command

    @classmethod
    def under(cls, workdir: Path, tree: Path, sandboxfs: str) -> Layout:
        return cls(workdir, tree, workdir / "lower", workdir / "mnt", workdir / "upper", sandboxfs)


def run(argv: list[str], timeout: float = MOUNT_TIMEOUT_S) -> None:
    """Run a mount command; a non-zero exit or a timeout is a MountError with its words."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise MountError(f"{shlex.join(argv)}: timed out after {timeout:.0f} s") from e
    except OSError as e:
        raise MountError(f"{shlex.join(argv)}: {e}") from e
    if done.returncode != 0:
        why = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()[-1]
        raise MountError(f"{shlex.join(argv)}: exit {done.returncode}: {why}")


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(path: Path) -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount at or below `path`, deepest last."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point = _unescape(fields[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append((point, fields[sep + 1]))
    return found


def is_mounted(path: Path) -> bool:
    return any(point == str(path) for point, _ in mounts_under(path))


def fuse_connection(path: Path) -> int | None:
    """The FUSE connection number of a mount (its device minor), to abort it if it hangs."""
    try:
        return os.minor(os.stat(path).st_dev)
    except OSError:
        return None


def abort_fuse(conn: int | None) -> None:
    if conn is None:
        return
    try:
        Path(f"/sys/fs/fuse/connections/{conn}/abort").write_text("1")
    except OSError:
        pass


def processes_mentioning(text: str) -> list[int]:
    """Pids (other than ours) whose command line contains `text`: a target's daemons."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(name))
    return found


def reap_children() -> None:
    """Reap exited children, among them daemons adopted as subreaper once they exit."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if rest[0] == "Z" and int(rest[1]) == os.getpid():
            try:
                os.waitpid(int(name), os.WNOHANG)
            except ChildProcessError:
                pass


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait for `pids` to exit; SIGKILL those that do not (they are the bench's own)."""
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        reap_children()
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap_children()
    return alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] != "Z"


def force_unmount(path: Path) -> str | None:
    """umount, then a lazy umount if that fails; the error text if even that failed."""
    if not is_mounted(path):
        return None
    try:
        run(["umount", str(path)], timeout=UNMOUNT_TIMEOUT_S)
        return None
    except MountError as first:
        try:
            run(["umount", "-l", str(path)], timeout=UNMOUNT_TIMEOUT_S)
        except MountError as second:
            return f"{first}; {second}"
        return f"{first} (detached lazily)"


class Target:
    """One filesystem under test. `mount` raises MountError; `unmount` returns problems."""

    name = ""
    fuse = False

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._conn: int | None = None

    def mount_commands(self, writes: bool) -> list[list[str]]:
        """The commands that mount this target for a reading or a writing workload."""
        raise NotImplementedError

    def unmount_commands(self) -> list[list[str]]:
        return [["umount", str(self.layout.mnt)]]

    def available(self) -> str | None:
        """Why this target cannot run here, or None."""
        return None

    def daemon_markers(self) -> list[str]:
        """Text in the command lines of the processes serving this target's mount."""
        return [str(self.layout.mnt)] if self.fuse else []

    def mount(self, writes: bool) -> None:
        why = self.available()
        if why:
            raise MountError(why)
        try:
            for argv in self.mount_commands(writes):
                if argv[0] == "mkdir":
                    for p in argv[2:]:
                        Path(p).mkdir(parents=True, exist_ok=True)
                else:
                    run(argv)
            if not is_mounted(self.layout.mnt):
                raise MountError(f"{self.name}: the mount command returned but nothing is mounted")
            self._conn = fuse_connection(self.layout.mnt) if self.fuse else None
        except BaseException:
            self.unmount()
            raise

    def unmount(self) -> list[str]:
        """Take the target down completely; returns what went wrong on the way (if anything)."""
        problems = []
        mnt = self.layout.mnt
        daemons = [p for m in self.daemon_markers() for p in processes_mentioning(m)]
        if is_mounted(mnt):
            try:
                for argv in self.unmount_commands():
                    run(argv, timeout=UNMOUNT_TIMEOUT_S)
            except MountError as e:
                problems.append(str(e))
                if self.fuse:
                    abort_fuse(self._conn)
                err = force_unmount(mnt)
                if err:
                    problems.append(err)
        killed = wait_gone(daemons)
        if killed:
            problems.append(f"{self.name}: daemon pids {killed} outlived the unmount; killed")
        # The upper tmpfs goes last: a FUSE daemon keeps its files open until it exits.
        err = force_unmount(self.layout.upper)
        if err:
            problems.append(err)
        self._conn = None
        return problems

    def describe(self) -> dict[str, object]:
        """The commands, as strings, for the results file."""
        return {
            "mount_reading": [shlex.join(a) for a in self.mount_commands(False)],
            "mount_writing": [shlex.join(a) for a in self.mount_commands(True)],
            "unmount": [shlex.join(a) for a in self.unmount_commands()],
        }


class Native(Target):
    """The tree itself (a read-only bind) for reads; a fresh tmpfs for writes, as the issue's
    reference figures were taken."""

    name = "native"

    def mount_commands(self, writes: bool) -> list[list[str]]:
        mnt = str(self.layout.mnt)
        if writes:
            return [["mount", "-t", "tmpfs", "tmpfs", mnt]]
        return [["mount", "--bind", "-o", "ro", str(self.layout.lower), mnt]]


class _UpperOnTmpfs(Target):
    """An overlay whose upper and work directories sit on a tmpfs of their own."""

    def _upper_commands(self) -> list[list[str]]:
        up = self.layout.upper
        return [["mount", "-t", "tmpfs", "tmpfs", str(up)],
                ["mkdir", "-p", str(up / "upper"), str(up / "work")]]

    def _layers(self) -> str:
        up = self.layout.upper
        return f"lowerdir={self.layout.lower},upperdir={up / 'upper'},workdir={up / 'work'}"

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["unmount_after_daemon_exit"] = f"umount {self.layout.upper}"
        return d


class KernelOverlay(_UpperOnTmpfs):
    name = "kernel-overlayfs"

    def mount_commands(self, writes: bool) -> list[list[str]]:
        return [*self._upper_commands(),
                ["mount", "-t", "overlay", "overlay", "-o", self._layers(), str(self.layout.mnt)]]


class FuseOverlay(_UpperOnTmpfs):
    name = "fuse-overlayfs"
    fuse = True

    def available(self) -> str | None:
        return None if shutil.which("fuse-overlayfs") else "fuse-overlayfs is not installed"

    def mount_commands(self, writes: bool) -> list[list[str]]:
        return [*self._upper_commands(),
                ["fuse-overlayfs", "-o", self._layers(), str(self.layout.mnt)]]


class Sandboxfs(Target):
    """sandboxfs's mount.fuse3 form: the tree through its gofer, a memory upper."""

    name = "sandboxfs"
    fuse = True

    def available(self) -> str | None:
        cmd = self.layout.sandboxfs
        return None if shutil.which(cmd) else f"sandboxfs command not found: {cmd}"

    def mount_commands(self, writes: bool) -> list[list[str]]:
        return [[self.layout.sandboxfs, "bench", str(self.layout.mnt),
                 "-o", f"lowerdir={self.layout.lower}"]]

    def unmount_commands(self) -> list[list[str]]:
        return [[self.layout.sandboxfs, "umount", str(self.layout.mnt)]]

    def daemon_markers(self) -> list[str]:
        return [str(self.layout.mnt), f"--root {self.layout.lower} "]


ALL_TARGETS: tuple[type[Target], ...] = (Native, KernelOverlay, FuseOverlay, Sandboxfs)
TARGET_NAMES = tuple(t.name for t in ALL_TARGETS)


def make_targets(names: list[str], layout: Layout) -> list[Target]:
    by_name = {t.name: t for t in ALL_TARGETS}
    return [by_name[n](layout) for n in names]


def expose_lower(layout: Layout) -> None:
    """Bind the tree read-only at `layout.lower`, and create the mount points."""
    for p in (layout.lower, layout.mnt, layout.upper):
        p.mkdir(parents=True, exist_ok=True)
    if not is_mounted(layout.lower):
        run(["mount", "--bind", "-o", "ro", str(layout.tree), str(layout.lower)])


def clean_workdir(layout: Layout) -> list[str]:
    """Unmount whatever is mounted under the work directory, deepest first.

    Run at the start (a previous run that was killed) and at the very end.
    """
    problems = []
    for point, fstype in reversed(mounts_under(layout.workdir)):
        path = Path(point)
        if fstype == "fuse.sandboxfs":
            try:
                run([layout.sandboxfs, "umount", point], timeout=UNMOUNT_TIMEOUT_S)
            except MountError as e:
                problems.append(str(e))
        daemons = processes_mentioning(point) if fstype.startswith("fuse") else []
        err = force_unmount(path)
        if err:
            problems.append(err)
        wait_gone(daemons)
    return problems
