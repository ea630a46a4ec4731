"""The blocking client the CLI uses to talk to a running daemon."""

from __future__ import annotations

import array
import socket
from collections.abc import Sequence
from typing import Any

from sandboxfs.control.protocol import MAX_LINE, decode, encode


class ControlError(RuntimeError):
    """The daemon could not be reached or answered with an error."""


def request(path: str, message: dict[str, Any], fds: Sequence[int] = (),
            timeout: float | None = 120.0) -> dict[str, Any]:
    """Send one request (with `fds` attached) and return the reply's fields.

    Raises ControlError with the daemon's message when the reply is not ok.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            raise ControlError(f"cannot reach the daemon at {path}: {exc.strerror}") from None
        data = encode(message)
        if fds:
            sock.sendmsg([data[:1]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                       array.array("i", fds))])
            data = data[1:]
        sock.sendall(data)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ControlError("the daemon closed the connection without a reply")
            reply += chunk
            if len(reply) > MAX_LINE:
                raise ControlError("reply too long")
    answer = decode(reply)
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "unknown error")))
    return answer
