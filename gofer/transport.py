"""The only gofer module that touches sockets: bytes and donated fds, awaited with trio.

A `Transport` moves raw bytes (framing is the codec's job, `wire.FrameBuffer`)
and, on AF_UNIX sockets, file descriptors with SCM_RIGHTS. The fds of a frame
(one, or up to 16 for Ropenatbatch) are attached to its first byte, so the
receiver gets them no later than the frame and can keep a FIFO of fds (docs/protocol.md, "fd
donation").
"""

from __future__ import annotations

import array
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import trio

#: bytes asked for per receive; bigger than most frames so one syscall gets one frame
RECV_SIZE = 256 * 1024
#: room for this many fds in one recvmsg (at most 16 per frame, Ropenatbatch; Linux
#: ends a recvmsg after the first message that carried fds)
_MAX_FDS = 64


class Transport:
    """A stream socket carrying 9P frames; `can_pass_fds` on unix sockets only.

    Works on the stdlib socket with trio's wait_readable/wait_writable rather
    than trio's socket wrappers: a syscall that can complete at once does so
    without a scheduler round trip (measured: a third of a Tgetattr round trip
    was spent in those yields). Fairness is kept by a checkpoint every
    `_YIELD_EVERY` receives that did not have to wait.
    """

    _YIELD_EVERY = 16

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.can_pass_fds = sock.family == socket.AF_UNIX
        self._send_lock = trio.Lock()
        self._eager = 0

    @classmethod
    def from_stdlib(cls, sock: socket.socket) -> Transport:
        """Take ownership of a connected stdlib stream socket."""
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def _recv_now(self) -> tuple[bytes, list[int]]:
        if not self.can_pass_fds:
            return self.sock.recv(RECV_SIZE), []
        data, ancdata, flags, _ = self.sock.recvmsg(
            RECV_SIZE, socket.CMSG_SPACE(_MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(payload[:len(payload) - len(payload) % arr.itemsize])
                fds.extend(arr)
        if flags & socket.MSG_CTRUNC:
            for fd in fds:
                os.close(fd)
            raise OSError("control data truncated: donated fds were lost")
        return data, fds

    async def receive(self) -> tuple[bytes, list[int]]:
        """Some bytes and the fds that came with them; b"" at end of stream.

        The fds are ours (close-on-exec) and the caller must close or keep them.
        """
        self._eager += 1
        if self._eager >= self._YIELD_EVERY:
            self._eager = 0
            await trio.lowlevel.checkpoint()
        while True:
            try:
                return self._recv_now()
            except BlockingIOError:
                self._eager = 0
                await trio.lowlevel.wait_readable(self.sock)

    def _send_now(self, view: memoryview, fd: int | Sequence[int] | None) -> int:
        try:
            if fd is not None:
                fds = [fd] if isinstance(fd, int) else list(fd)
                return self.sock.sendmsg([view], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   array.array("i", fds).tobytes())])
            return self.sock.send(view)
        except BlockingIOError:
            return 0

    async def send(self, data: bytes, fd: int | Sequence[int] | None = None) -> None:
        """Send one whole frame, with `fd` (or several fds) attached to its first byte.

        Frames never interleave (send lock), and a frame sent halfway is
        finished even if the caller is cancelled: it would break the stream.
        """
        if fd is not None and not self.can_pass_fds:
            raise ValueError("fds can only be passed on unix sockets")
        if self._send_lock.locked():
            await self._send_lock.acquire()
        else:
            self._send_lock.acquire_nowait()
        try:
            view = memoryview(data)
            sent = self._send_now(view, fd)
            if sent == len(view):
                return
            if sent:
                fd = None
            view = view[sent:]
            with trio.CancelScope(shield=True):
                while view:
                    await trio.lowlevel.wait_writable(self.sock)
                    sent = self._send_now(view, fd)
                    if sent:
                        fd = None
                    view = view[sent:]
        finally:
            self._send_lock.release()

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A parsed `--listen` value: unix:PATH or tcp:HOST:PORT (loopback only)."""

    family: socket.AddressFamily
    address: str | tuple[str, int]

    @classmethod
    def parse(cls, spec: str) -> ListenAddress:
        """Raise ValueError with a message fit for the user on anything else."""
        kind, _, rest = spec.partition(":")
        if kind == "unix" and rest:
            return cls(socket.AF_UNIX, rest)
        if kind == "tcp":
            host, _, port = rest.rpartition(":")
            host = host.strip("[]")
            try:
                ip = ipaddress.ip_address(host)
                portno = int(port)
            except ValueError:
                raise ValueError(f"--listen {spec}: expected tcp:127.0.0.1:PORT") from None
            if not ip.is_loopback:
                raise ValueError(f"--listen {spec}: only loopback addresses are served "
                                 "(the gofer has no authentication)")
            if not 0 <= portno <= 65535:
                raise ValueError(f"--listen {spec}: bad port")
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            return cls(fam, (str(ip), portno))
        raise ValueError(f"--listen {spec}: expected unix:PATH or tcp:127.0.0.1:PORT")

    def bind(self) -> socket.socket:
        """A bound, listening stdlib socket (done before landlock confines us)."""
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            if self.family != socket.AF_UNIX:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.address)
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        return sock


def describe(sock: socket.socket) -> str:
    """The `--listen` spelling of a bound socket's address (port 0 resolved)."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"tcp:{host}:{port}"


async def accept(listener: socket.socket) -> Transport:
    """The next connection on the (non-blocking) stdlib `listener`."""
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            await trio.lowlevel.wait_readable(listener)
            continue
        return Transport.from_stdlib(conn)
