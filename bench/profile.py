"""Profiles of sandboxfs's processes while a workload runs (`--profile DIR`).

For each timed sandboxfs step, py-spy samples the FUSE daemon and its gofer
(`py-spy record --idle -f raw`, 200 Hz) from just before the step to just
after it. Each raw profile (collapsed stacks) is kept next to a short
summary: the functions with the most samples on their own (self) and
under them (inclusive), as percentages of all samples, idle included, so
time spent waiting on the gofer or the kernel shows as epoll/select.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE_HZ = 200


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

    @classmethod
    def start(cls, pids: dict[str, int], prefix: Path) -> Recorder:
        spy = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv"
                                            / "bin" / "py-spy")
        rec = cls(prefix)
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
        for role, proc, out in self.procs:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                summary = out.with_suffix(".txt")
                summary.write_text(f"{self.prefix.name} {role}\n" + summarize(out.read_text()))
                written.append(summary)
        return written


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
    lines = [f"samples: {total} ({total / RATE_HZ:.1f} s at {RATE_HZ} Hz)", "", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in under.most_common(top)]
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    """`fn (path/to/module.py:123)` → `fn (module.py)`: lines apart, one row per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})" if path else name
