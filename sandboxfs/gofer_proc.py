"""Starting the gofer process that serves a mount's host trees.

One gofer process per sandbox, one socketpair per served tree (as runsc's
`--io-fds`): the daemon keeps one end of each pair and never learns more of
the host than what comes through it. The gofer dies with its parent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Export:
    """A host tree to serve: its path and whether the gofer must refuse writes."""

    path: str
    readonly: bool = True
    whiteouts: bool = False  # an overlay upper: the gofer may make 0/0 character devices
    devices: bool = False  # device nodes may be made (the gofer's flag covers every export)


class GoferProcess:
    """A running gofer and the daemon-side ends of its sockets, in export order."""

    def __init__(self, proc: subprocess.Popen[bytes], sockets: list[socket.socket]) -> None:
        self.proc = proc
        self.sockets = sockets

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, exports: list[Export], *, log_fd: int | None = None,
              die_with_parent: bool = True) -> GoferProcess:
        """Start serving `exports`. `die_with_parent=False` is for a gofer whose
        sockets are handed to another process (`pod add`): it then leaves when
        every socket is closed."""
        argv = [sys.executable, "-m", "gofer", "serve"]
        if die_with_parent:
            argv.append("--die-with-parent")
        if any(export.devices for export in exports):
            argv.append("--allow-devices")
        ours: list[socket.socket] = []
        theirs: list[socket.socket] = []
        for export in exports:
            mine, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ours.append(mine)
            theirs.append(other)
            argv += ["--root", export.path]
            if export.readonly:
                argv.append("--ro")
            if export.whiteouts:
                argv.append("--whiteouts")
            argv += ["--fd", str(other.fileno())]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd if log_fd is not None else subprocess.DEVNULL,
                stderr=log_fd if log_fd is not None else subprocess.DEVNULL,
                pass_fds=[s.fileno() for s in theirs],
                close_fds=True,
            )
        except BaseException:
            for s in ours:
                s.close()
            raise
        finally:
            for s in theirs:
                s.close()
        return cls(proc, ours)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it does not leave in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
