"""Profiles of the sandboxfs daemon and its gofer while a step runs (`--profile DIR`).

For each sandboxfs step, `py-spy record --idle -f raw` is attached to the daemon
(the `sandboxfs bench` process serving the mount) and to its gofer (a separate
Python process, `python -m gofer serve`), and `sandboxfs stats` is read before
and after the step, so the FUSE requests and gofer (9P) requests the step made
are counted. Each step leaves:

- `DIR/raw/<metric>-run<N>-{daemon,gofer}.raw`: py-spy's collapsed stacks
  (large; not meant to be committed);
- `DIR/<metric>[-run<N>].txt`: a short summary: the step's time, the request
  counts, and per process the share of samples spent waiting and the top
  functions by self and inclusive samples.

`python -m bench.profile FILE.raw...` prints the summary of saved raw files.
Timings of a profiled run are distorted (py-spy samples 200 times a second on
the same CPUs): use them for the profiles, never as figures.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RATE = 200  # samples per second
TOP = 18

# A sample whose innermost frame is one of these is the process waiting, not working.
WAIT_LEAVES = (
    "get_events (trio/_core/_io_epoll.py",  # trio's epoll wait: the daemon idle
    "select (selectors.py",
    "poll (selectors.py",
    "_recv_into (",
    "wait (threading.py",
)

# Entry points and trio's loop, on (nearly) every stack: not worth listing as inclusive.
OUTER_FRAMES = (
    "<module> (", "main (sandboxfs/cli.py", "_cmd_fuse_form (", "mount (sandboxfs/mounts.py",
    "_run_daemonized (", "run (trio/_core/_run.py", "unrolled_run (trio/_core/_run.py",
    "_run_module_as_main (", "_run_code (", "main (gofer/cli.py", "run (gofer/cli.py",
    "serve_transport (gofer/server.py",
    "Connection.serve (gofer/server.py", "Connection._receive_loop (gofer/server.py",
)


def _function(frame: str) -> str:
    """'name (path/file.py:123)' -> 'name (path/file.py)': lines of one function merged."""
    head, sep, tail = frame.rpartition(":")
    if sep and tail.endswith(")") and tail[:-1].isdigit():
        return head + ")"
    return frame


def parse_raw(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw (collapsed) format: 'frame;frame;...;leaf COUNT' per line."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks[tuple(_function(f) for f in stack.split(";"))] += int(count)
    return stacks


def is_wait(stack: tuple[str, ...]) -> bool:
    return bool(stack) and any(stack[-1].startswith(w) or w in stack[-1] for w in WAIT_LEAVES)


# Where a sample's time goes, by its innermost frame (first match wins), for the
# "by kind" lines of a summary. Frames are 'function (path)'.
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pyfuse3 session loop (Cython: /dev/fuse read, dispatch, reply)",
     ("async_wrapper.<locals>.wrapper (_pyfuse3.py)",)),
    ("trio scheduler and locks", ("(trio/_core/", "(trio/_sync.py)", "(outcome/")),
    ("9P socket send/recv syscalls", ("Transport._send_now (", "Transport._recv_now (")),
    ("host file reads (pread in RemoteFile.read)", ("RemoteFile.read (",)),
    ("9P encode/decode", ("(gofer/wire.py)", "__create_fn__.<locals>.__init__ (<string>)")),
)
# Inclusive shares worth a line of their own in every summary.
INCLUSIVE_OF_NOTE = ("Client._rpc_fd (gofer/client.py)", "fuse_errors.<locals>.wrapper (")


def kind_of(leaf: str) -> str:
    for kind, marks in KINDS:
        if any(m in leaf for m in marks):
            return kind
    return "everything else (the filesystem's own Python)"


def summarize(stacks: Counter[tuple[str, ...]], title: str, top: int = TOP) -> str:
    """Waiting share, then the top functions by self and by inclusive samples."""
    total = sum(stacks.values())
    if total == 0:
        return f"## {title}\n\nno samples\n"
    waiting = sum(n for s, n in stacks.items() if is_wait(s))
    busy = total - waiting
    self_n: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for stack, n in stacks.items():
        if is_wait(stack):
            continue
        if stack:
            self_n[stack[-1]] += n
        for frame in set(stack):
            incl[frame] += n
    lines = [f"## {title}", "",
             f"{total} samples at {RATE}/s ({total / RATE:.2f} s of wall time); "
             f"waiting (idle leaf: epoll/select/recv) {waiting / total:.0%}, "
             f"working {busy / total:.0%}.",
             "Percentages below are of ALL samples (waiting included).", "",
             "working samples by kind of innermost frame:"]
    kinds: Counter[str] = Counter(kind_of(s[-1]) for s, n in stacks.items() for _ in range(n)
                                  if s and not is_wait(s))
    for kind, n in kinds.most_common():
        lines.append(f"  {n / total:6.1%}  {kind}")
    for mark in INCLUSIVE_OF_NOTE:
        n = sum(c for s, c in stacks.items() if any(f.startswith(mark) for f in s))
        if n:
            lines.append(f"  {n / total:6.1%}  inclusive: {mark.rstrip(' (')}")
    lines += ["", "top self (innermost frame):"]
    for frame, n in self_n.most_common(top):
        lines.append(f"  {n / total:6.1%}  {frame}")
    lines += ["", "top inclusive (frame anywhere on the stack; the entry points and "
              "trio's run loop, under every sample, left out):"]
    shown = 0
    for frame, n in incl.most_common():
        if frame.startswith(OUTER_FRAMES):
            continue
        lines.append(f"  {n / total:6.1%}  {frame}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines) + "\n"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def sandboxfs_pids(lower: Path) -> tuple[int, int] | None:
    """(daemon, gofer) of the sandboxfs mount over `lower`: the gofer is the
    `-m gofer serve --root LOWER` process, the daemon its parent."""
    marker = f"--root {lower} "
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        cmd = _cmdline(int(name))
        if "gofer serve" in cmd and marker in cmd + " ":
            try:
                return _ppid(int(name)), int(name)
            except (OSError, ValueError, IndexError):
                return None
    return None


def read_stats(sandboxfs: str, mnt: Path) -> dict[str, Any]:
    done = subprocess.run([sandboxfs, "stats", str(mnt)], capture_output=True, text=True,
                          timeout=30)
    if done.returncode != 0:
        return {}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = set(after) | set(before)
    out = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


def request_counts(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, int],
                                                                           dict[str, int]]:
    """FUSE requests and gofer requests made between two `sandboxfs stats` readings."""
    fuse = _delta(after.get("fuse", {}).get("requests", {}),
                  before.get("fuse", {}).get("requests", {}))
    gofer: dict[str, int] = {}
    for b, a in zip(before.get("gofer", []), after.get("gofer", []), strict=False):
        for k, v in _delta(a, b).items():
            gofer[k] = gofer.get(k, 0) + v
    return fuse, dict(sorted(gofer.items(), key=lambda kv: -kv[1]))


@dataclass
class _Recording:
    name: str
    raw: Path
    proc: subprocess.Popen[bytes]


@dataclass
class Session:
    """One profiled step: the py-spy processes and the stats read before it."""

    stem: str
    recordings: list[_Recording] = field(default_factory=list)
    stats_before: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Profiler:
    """Attaches py-spy to the sandboxfs daemon and gofer around each sandboxfs step."""

    def __init__(self, out_dir: Path, sandboxfs: str, mnt: Path, lower: Path,
                 runs: int) -> None:
        self.out_dir = out_dir
        self.sandboxfs = sandboxfs
        self.mnt = mnt
        self.lower = lower
        self.runs = runs
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.written: list[Path] = []

    def available(self) -> str | None:
        if not Path(self.py_spy).exists():
            return "py-spy is not installed (pip install py-spy into the bench's venv)"
        return None

    def start(self, metric: str, run: int) -> Session:
        stem = f"{metric}-run{run}"
        session = Session(stem)
        raw_dir = self.out_dir / "raw"
        raw_dir.mkdir(parents=True, exist_ok=True)
        session.stats_before = read_stats(self.sandboxfs, self.mnt)
        pids = sandboxfs_pids(self.lower)
        if pids is None:
            session.problems.append("sandboxfs daemon/gofer not found: no profile")
            return session
        for name, pid in zip(("daemon", "gofer"), pids, strict=True):
            raw = raw_dir / f"{stem}-{name}.raw"
            raw.unlink(missing_ok=True)
            proc = subprocess.Popen(
                [self.py_spy, "record", "-p", str(pid), "-f", "raw", "-o", str(raw),
                 "-r", str(RATE), "--idle", "--nonblocking"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            session.recordings.append(_Recording(name, raw, proc))
        for rec in session.recordings:  # wait until each py-spy says it samples
            assert rec.proc.stdout is not None
            deadline = time.monotonic() + 10
            seen = b""
            while b"Sampling" not in seen and time.monotonic() < deadline:
                ready, _, _ = select.select([rec.proc.stdout], [], [], 0.2)
                if ready:
                    chunk = os.read(rec.proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    seen += chunk
            if b"Sampling" not in seen:
                session.problems.append(f"py-spy on the {rec.name} did not start: {seen!r}")
        return session

    def finish(self, session: Session, metric_label: str, out: dict[str, Any]) -> Path:
        """Stop py-spy, read the stats again, write the summary; returns its path."""
        for rec in session.recordings:
            if rec.proc.poll() is None:
                rec.proc.send_signal(signal.SIGINT)
        for rec in session.recordings:
            try:
                rec.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                rec.proc.kill()
                rec.proc.wait()
                session.problems.append(f"py-spy on the {rec.name} did not stop; killed")
            if rec.proc.stdout is not None:
                rec.proc.stdout.close()
        after = read_stats(self.sandboxfs, self.mnt)
        fuse, gofer = request_counts(session.stats_before, after)
        lines = [f"# {metric_label}: sandboxfs daemon and gofer (py-spy {RATE}/s, --idle)", ""]
        if out.get("ok"):
            lines.append(f"step took {float(out['elapsed']):.3f} s under the profiler "
                         "(distorted: not a figure).")
        else:
            lines.append(f"step FAILED: {out.get('error')}")
        lines += ["", f"FUSE requests: {sum(fuse.values())} "
                      + (json.dumps(fuse) if fuse else "(no counts: daemon without counters)"),
                  f"gofer requests: {sum(gofer.values())} " + (json.dumps(gofer) or "{}"), ""]
        lines += [f"problem: {p}" for p in session.problems]
        for rec in session.recordings:
            if rec.raw.exists():
                lines += ["", summarize(parse_raw(rec.raw.read_text()), rec.name)]
            else:
                lines += ["", f"## {rec.name}", "", "no profile written"]
        name = session.stem if self.runs > 1 else session.stem.rsplit("-run", 1)[0]
        path = self.out_dir / f"{name}.txt"
        path.write_text("\n".join(lines).rstrip() + "\n")
        self.written.append(path)
        return path


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m bench.profile FILE.raw...", file=sys.stderr)
        return 2
    for name in argv:
        print(summarize(parse_raw(Path(name).read_text()), name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
