"""Profiles of sandboxfs's processes while a workload runs (`--profile DIR`).

For each timed sandboxfs step, py-spy samples the FUSE daemon and its gofer
(`py-spy record --idle -f raw`, 200 Hz) from just before the step to just
after it. Each raw profile (collapsed stacks) is kept next to a short
summary: the functions with the most samples on their own (self) and
under them (inclusive), as percentages of all samples, idle included, so
time spent waiting on the gofer or the kernel shows as epoll/select.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE_HZ = 200
#: Leaf frames that are a process waiting, not working: trio's epoll wait, and
#: the socket calls in which a sender is preempted by the process it woke.
WAIT_FRAMES = ("EpollIOManager.get_events", "Transport._send_now", "Transport._recv_now")


def sandboxfs_processes(mountpoint: Path) -> dict[str, int]:
    """The daemon serving `mountpoint` (its unmount guard, a child with the same
    command line, is left out) and the daemon's gofer."""
    mentions: dict[int, int] = {}
    gofers: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if str(mountpoint).encode() in args:
            mentions[int(entry)] = ppid
        elif b"gofer" in args and b"serve" in args:
            gofers[int(entry)] = ppid
    daemons = [pid for pid, ppid in mentions.items() if ppid not in mentions]
    found: dict[str, int] = {}
    if daemons:
        found["daemon"] = daemons[0]
        for pid, ppid in gofers.items():
            if ppid == daemons[0]:
                found["gofer"] = pid
    return found


@dataclass
class Recorder:
    """py-spy attached to some processes until `stop()`."""

    prefix: Path
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    stats_cmd: list[str] | None = None
    requests_before: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, pids: dict[str, int], prefix: Path,
              stats_cmd: list[str] | None = None) -> Recorder:
        spy = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv"
                                            / "bin" / "py-spy")
        rec = cls(prefix, stats_cmd=stats_cmd)
        rec.requests_before = fuse_requests(stats_cmd)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for role, pid in pids.items():
            out = prefix.with_name(f"{prefix.name}-{role}.raw")
            proc = subprocess.Popen(
                [spy, "record", "-p", str(pid), "-r", str(RATE_HZ), "--idle", "-f", "raw",
                 "-o", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rec.procs.append((role, proc, out))
        return rec

    def stop(self) -> list[Path]:
        """Stop sampling, write each raw profile's summary; the summaries' paths."""
        written = []
        after = fuse_requests(self.stats_cmd)
        counts = {op: n - self.requests_before.get(op, 0) for op, n in after.items()}
        requests = ", ".join(f"{op} {n:,}" for op, n in sorted(counts.items(), key=lambda x: -x[1])
                             if n)
        for role, proc, out in self.procs:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                summary = out.with_suffix(".txt")
                head = f"{self.prefix.name} {role}\n"
                if role == "daemon" and requests:
                    head += f"FUSE requests during the step: {requests}\n"
                summary.write_text(head + summarize(out.read_text()))
                written.append(summary)
        return written


def fuse_requests(stats_cmd: list[str] | None) -> dict[str, int]:
    """The daemon's request counters (`sandboxfs stats`), or {} if unavailable."""
    if stats_cmd is None:
        return {}
    proc = subprocess.run(stats_cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {}
    counts: dict[str, int] = json.loads(proc.stdout).get("fuse", {}).get("requests", {})
    return counts


def summarize(raw: str, top: int = 15) -> str:
    """Self and inclusive sample shares of the top functions of a collapsed profile."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            under[frame] += count
    if not total:
        return "no samples\n"
    waiting = sum(n for f, n in own.items() if f.startswith(WAIT_FRAMES))
    lines = [f"samples: {total} ({total / RATE_HZ:.1f} s at {RATE_HZ} Hz)",
             f"waiting (epoll, socket send/recv: the other process, the kernel): "
             f"{100 * waiting / total:.1f}%", "", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive (the frames of every sample, main and trio's loop, left out):"]
    outer = max(under.values())  # main, trio's run...: on every sample of the main thread
    inner = [(f, n) for f, n in under.most_common() if n < 0.97 * outer]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inner[:top]]
    return "\n".join(lines) + "\n"



def _short(frame: str) -> str:
    """`fn (path/to/module.py:123)` → `fn (module.py)`: lines apart, one row per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})" if path else name


def main(argv: list[str]) -> int:
    """`python -m bench.profile RAW...`: print the summary of saved raw profiles."""
    for path in argv:
        print(f"{path}\n{summarize(Path(path).read_text())}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
