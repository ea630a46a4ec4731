"""Progress while the bench runs: one rewritten line on a terminal, plain lines otherwise.

It writes to stderr so stdout carries only the report.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._last = ""

    def __call__(self, text: str, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.start
        eta = ""
        if 0 < done < total:
            eta = f", ~{_clock(elapsed / done * (total - done))} left"
        line = f"[{done}/{total} {_clock(elapsed)}{eta}] {text}"
        if self.tty:
            width = 160
            self.stream.write("\r\x1b[K" + line[:width])
            if text == "done":
                self.stream.write("\n")
        elif line != self._last:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = line

    def message(self, text: str) -> None:
        """A line that stays (a warning), without breaking the progress line."""
        prefix = "\r\x1b[K" if self.tty else ""
        self.stream.write(prefix + text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"
