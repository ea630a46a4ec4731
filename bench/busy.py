"""Noticing other processes on the CPU while a step is timed.

A timing is only as good as the machine was quiet. Before and after each timed
step we read the CPU time the whole machine spent busy (/proc/stat) and every
process's CPU time (/proc/PID/stat). Foreign time is the machine's user and
system time minus what the bench's processes and the kernel threads used. The
bench's own processes are this process and its descendants: the bench makes
itself a child subreaper, so the daemons that sandboxfs and fuse-overlayfs
leave behind stay its descendants. Kernel threads mostly work for the bench
(writeback, FUSE), so they never flag a step; interrupt time is left out for
the same reason. Working from the machine's total (not from other processes'
children times) keeps a long-lived process reaped during a step from being
charged to it whole; the per-process figures only name the likely culprits.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36
# A step is flagged when other processes used more than this share of one CPU
# over the step's wall time, and more than MIN_FOREIGN_S in all.
BUSY_SHARE = 0.10
MIN_FOREIGN_S = 0.05


@dataclass(frozen=True)
class ProcTimes:
    comm: str
    ppid: int
    own: float  # user + system seconds of the process itself
    children: float  # user + system seconds of its children it has reaped


@dataclass
class Snapshot:
    """Every process's CPU time at one moment, and which of them are the bench's."""

    wall: float
    procs: dict[int, ProcTimes]
    ours: set[int] = field(default_factory=set)
    loadavg: str = ""
    machine_busy: float = 0.0  # user + nice + system seconds of all CPUs since boot
    steal: float = 0.0  # seconds the hypervisor ran something else


def become_subreaper() -> bool:
    """Adopt orphaned descendants (daemonized mounts), so they count as ours and get reaped."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _read_stat(pid: int) -> ProcTimes | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.find("(") + 1 : text.rfind(")")]
    rest = text[text.rfind(")") + 2 :].split()
    own = (int(rest[11]) + int(rest[12])) / CLK_TCK
    return ProcTimes(comm, int(rest[1]), own, (int(rest[13]) + int(rest[14])) / CLK_TCK)


def machine_times() -> tuple[float, float]:
    """(user + nice + system, steal) seconds over all CPUs, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0, 0.0
    ticks = [int(x) for x in fields[1:]]
    steal = ticks[7] if len(ticks) > 7 else 0
    return (ticks[0] + ticks[1] + ticks[2]) / CLK_TCK, steal / CLK_TCK


def descendants(procs: dict[int, ProcTimes], root: int) -> set[int]:
    """`root` and every process below it by parent links."""
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    found = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def snapshot() -> Snapshot:
    """CPU times of all processes now; ours are this process's descendants."""
    procs: dict[int, ProcTimes] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            p = _read_stat(int(name))
            if p is not None:
                procs[int(name)] = p
    try:
        with open("/proc/loadavg") as f:
            load = f.read().strip()
    except OSError:
        load = ""
    busy_s, steal = machine_times()
    return Snapshot(time.monotonic(), procs, descendants(procs, os.getpid()), load, busy_s,
                    steal)


def _is_kernel_thread(pid: int, p: ProcTimes) -> bool:
    return pid == 2 or p.ppid == 2


@dataclass(frozen=True)
class BusyReport:
    """Foreign CPU seconds during a step, whether that flags it, and who likely used them."""

    foreign_cpu: float
    bench_cpu: float
    kernel_cpu: float
    steal: float
    wall: float
    busy: bool
    top: list[tuple[str, float]]
    loadavg_before: str
    loadavg_after: str

    def as_dict(self) -> dict[str, object]:
        return {
            "busy": self.busy,
            "foreign_cpu_s": round(self.foreign_cpu, 3),
            "bench_cpu_s": round(self.bench_cpu, 3),
            "kernel_threads_cpu_s": round(self.kernel_cpu, 3),
            "steal_s": round(self.steal, 3),
            "wall_s": round(self.wall, 3),
            "top_foreign": [[c, round(s, 3)] for c, s in self.top],
            "loadavg_before": self.loadavg_before,
            "loadavg_after": self.loadavg_after,
        }


def is_busy(foreign_cpu: float, wall: float) -> bool:
    """The flagging rule, apart so it can be tested."""
    return foreign_cpu > MIN_FOREIGN_S and foreign_cpu > BUSY_SHARE * max(wall, 1e-9)


def _delta(before: ProcTimes | None, after: ProcTimes, children: bool) -> float:
    now = after.own + (after.children if children else 0.0)
    if before is None:
        return now  # started during the step
    return max(0.0, now - before.own - (before.children if children else 0.0))


def compare(before: Snapshot, after: Snapshot) -> BusyReport:
    """What the machine spent on others than the bench between two snapshots.

    A process is ours if it was ours in either snapshot (a daemon that started
    or exited in between); ours are counted with the children they reaped (the
    step's own child is reaped before `after`).
    """
    ours = before.ours | after.ours
    mine = kernel = 0.0
    per_comm: dict[str, float] = {}
    for pid, p in after.procs.items():
        old = before.procs.get(pid)
        if pid in ours:
            mine += _delta(old, p, children=True)
        elif _is_kernel_thread(pid, p):
            kernel += _delta(old, p, children=False)
        else:
            used = _delta(old, p, children=False)
            if used > 0:
                per_comm[p.comm] = per_comm.get(p.comm, 0.0) + used
    # Our processes that exited during the step are in our own children time.
    machine = after.machine_busy - before.machine_busy
    foreign = max(0.0, machine - mine - kernel)
    wall = after.wall - before.wall
    top = sorted(per_comm.items(), key=lambda kv: -kv[1])[:3]
    return BusyReport(foreign, mine, kernel, after.steal - before.steal, wall,
                      is_busy(foreign, wall), top, before.loadavg, after.loadavg)


def wait_quiet(max_wait: float, window: float = 0.25) -> float:
    """Wait (up to `max_wait` s) for a window in which others use under BUSY_SHARE of a CPU.

    On a shared machine this moves a step out of a neighbour's burst instead of
    only flagging it afterwards. Returns the seconds waited.
    """
    start = time.monotonic()
    while time.monotonic() - start < max_wait:
        before = snapshot()
        time.sleep(window)
        rep = compare(before, snapshot())
        if rep.foreign_cpu <= BUSY_SHARE * rep.wall:
            break
    return time.monotonic() - start
