"""Runs every workload on every target, several times, and records every sample.

Order: run → workload → target, with the target order rotated each time, so
slow drift of the machine (page cache, thermal, a neighbour) hits all targets
alike. Each (run, workload, target) gets a fresh mount; each timed step runs in
a forked child with a timeout, so a hung FUSE call costs one failed sample, not
the whole run. Whatever fails is recorded as failed with its error: the report
never turns a failure into a zero or a blank.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import busy
from bench.profile import Profiler
from bench.targets import Layout, MountError, Target
from bench.tree import BuiltTree
from bench.workloads import STEP_TIMEOUT_S, Context, Scale, Step, Workload

Sample = dict[str, Any]


def drop_caches() -> None:
    """Write back dirty pages, then drop page, dentry and inode caches (needs root)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " / ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_in_child(step: Step, ctx: Context, timeout: float) -> dict[str, Any]:
    """Run one step in a forked child and return what it sent back (or why it sent nothing).

    The child only times and reports; killing it on a timeout is always safe for
    the bench, and a FUSE request in progress is interrupted by SIGKILL.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(rfd)
        try:
            res = step.fn(ctx)
            out: dict[str, Any] = {"ok": True, "elapsed": res.elapsed, "amount": res.amount,
                                   "note": res.note}
        except BaseException as e:  # everything, KeyboardInterrupt too, is reported
            out = {"ok": False, "error": _describe(e)}
        data = json.dumps(out).encode()
        while data:
            data = data[os.write(wfd, data) :]
        os._exit(0)
    os.close(wfd)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([rfd], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                return {"ok": False, "error": f"timed out after {timeout:g} s"}
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    try:
        result: dict[str, Any] = json.loads(b"".join(chunks))
        return result
    except ValueError:
        return {"ok": False, "error": f"the step's process died (wait status {status})"}


@dataclass
class Runner:
    """Holds the plan of a run and collects its samples."""

    layout: Layout
    targets: list[Target]
    workloads: list[Workload]
    tree: BuiltTree
    scale: Scale
    runs: int
    append_files: tuple[str, ...]
    timeout: float = STEP_TIMEOUT_S
    quiet_wait: float = 5.0
    on_progress: Callable[[str, int, int], None] = lambda text, done, total: None
    profiler: Profiler | None = None  # --profile: py-spy on sandboxfs's daemon and gofer
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def units(self) -> int:
        return self.runs * len(self.workloads) * len(self.targets)

    def run_all(self) -> list[Sample]:
        done = 0
        n = len(self.targets)
        for run in range(1, self.runs + 1):
            for wi, workload in enumerate(self.workloads):
                shift = (run - 1 + wi) % n
                for target in self.targets[shift:] + self.targets[:shift]:
                    self.on_progress(f"run {run}/{self.runs} · {workload.id} {workload.title}"
                                     f" · {target.name}", done, self.units)
                    self.run_unit(run, workload, target)
                    done += 1
        self.on_progress("done", done, self.units)
        return self.samples

    def _record(self, run: int, workload: Workload, step: Step, target: Target,
                **fields: Any) -> None:
        sample: Sample = {"run": run, "workload": workload.id, "metric": step.metric.id,
                          "unit": step.metric.unit, "target": target.name, "ok": False,
                          "value": None, "elapsed_s": None, "amount": None, "error": "",
                          "note": "", "busy": None}
        sample.update(fields)
        self.samples.append(sample)

    def run_unit(self, run: int, workload: Workload, target: Target) -> None:
        """One fresh mount of `target`, the workload's steps in order, then unmount."""
        ctx = Context(self.layout.mnt, self.tree, self.scale, self.append_files)
        try:
            target.mount(workload.writes)
        except MountError as e:
            for step in workload.steps:
                self._record(run, workload, step, target, error=f"mount failed: {e}")
            return
        first_unit_sample = len(self.samples)
        try:
            blocker = ""
            try:
                if target.name == "native" and workload.writes and workload.native_seed:
                    workload.native_seed(ctx, self.layout.tree)
            except Exception as e:
                blocker = f"setup failed: {_describe(e)}"
            for step in workload.steps:
                if blocker:
                    self._record(run, workload, step, target, error=blocker)
                    continue
                if self._run_step(run, workload, step, target, ctx):
                    blocker = f"not run: {step.metric.id} failed on this mount first"
        finally:
            problems = target.unmount()
        if problems:
            text = "; ".join(problems)
            self.problems.append(f"run {run} {workload.id} {target.name}: {text}")
            for sample in self.samples[first_unit_sample:]:
                sample["unmount_problems"] = text

    def _run_step(self, run: int, workload: Workload, step: Step, target: Target,
                  ctx: Context) -> str:
        """Time one step; returns its error ('' if it went well) for the steps after it."""
        os.sync()
        if step.cold:
            drop_caches()
        waited = busy.wait_quiet(self.quiet_wait) if self.quiet_wait > 0 else 0.0
        session = None
        if self.profiler is not None and target.name == "sandboxfs":
            session = self.profiler.start(step.metric.id, run)
        before = busy.snapshot()
        out = run_in_child(step, ctx, self.timeout)
        report = busy.compare(before, busy.snapshot()).as_dict()
        if session is not None and self.profiler is not None:
            self.profiler.finish(session, step.metric.label, out)
        report["waited_for_quiet_s"] = round(waited, 2)
        if not out["ok"]:
            self._record(run, workload, step, target, error=out["error"], busy=report)
            return str(out["error"])
        elapsed, amount = float(out["elapsed"]), float(out["amount"])
        self._record(run, workload, step, target, ok=True,
                     value=step.metric.value(elapsed, amount), elapsed_s=elapsed,
                     amount=amount, note=out.get("note", ""), busy=report)
        return ""
