"""A one-line counter on a terminal, for long commands (commit, export, restore)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def terminal_counter(what: str) -> Callable[[int, int], None] | None:
    """`show(nbytes, files)` redrawing one stderr line at most ten times a second;
    None when stderr is not a terminal (progress stays quiet when piped)."""
    if not sys.stderr.isatty():
        return None
    last = [0.0]

    def show(nbytes: int, files: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1:
            last[0] = now
            print(f"\r{what}: {nbytes} bytes, {files} files", end="", file=sys.stderr)
    return show
