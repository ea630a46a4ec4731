"""The daemon's control socket: a trio server dispatching requests to handlers.

The socket is bound before the daemon confines itself (binding a path is a
host-path operation; accepting on it afterwards is not). Each connection
carries one request. A handler gets the request and any fds that came with
it, and returns the reply's fields; an exception becomes an error reply
(`OSError` and `ValueError` with their message, anything else logged), so a
bad request never stops the daemon.
"""

from __future__ import annotations

import array
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from sandboxfs.control.protocol import MAX_FDS, MAX_LINE, ProtocolError, decode, encode, error

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], list[int]], Awaitable[dict[str, Any]]]


def bind(path: str) -> socket.socket:
    """A listening unix socket at `path` (a stale one there is replaced), mode 0600."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


async def serve(sock: socket.socket, handlers: dict[str, Handler]) -> None:
    """Accept and answer requests until cancelled."""
    listener = trio.socket.from_stdlib_socket(sock)
    async with trio.open_nursery() as nursery:
        while True:
            conn, _ = await listener.accept()
            nursery.start_soon(_answer, conn, handlers)


async def _answer(conn: trio.socket.SocketType, handlers: dict[str, Handler]) -> None:
    fds: list[int] = []
    with conn:
        try:
            line, fds = await _receive(conn)
            reply = await _dispatch(decode(line), fds, handlers)
        except ProtocolError as exc:
            reply = error(str(exc))
        try:
            data = memoryview(encode(reply))
            while data:
                data = data[await conn.send(data):]
        except OSError:
            pass
    for fd in fds:  # a handler keeps the fds it wants by duplicating them
        os.close(fd)


async def _receive(conn: trio.socket.SocketType) -> tuple[bytes, list[int]]:
    fds: list[int] = []
    data = b""
    while not data.endswith(b"\n"):
        chunk, ancdata, _, _ = await conn.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if not chunk:
            raise ProtocolError("connection closed mid-request")
        data += chunk
        if len(data) > MAX_LINE:
            raise ProtocolError("message too long")
    return data, fds


async def _dispatch(request: dict[str, Any], fds: list[int],
                    handlers: dict[str, Handler]) -> dict[str, Any]:
    op = request.get("op")
    handler = handlers.get(op) if isinstance(op, str) else None
    if handler is None:
        return error(f"unknown op {op!r}")
    try:
        reply = await handler(request, fds)
    except (OSError, ValueError, LookupError) as exc:
        return error(str(exc) or type(exc).__name__)
    except Exception as exc:  # a bug: keep serving
        log.exception("control op %s failed", op)
        return error(f"internal error: {type(exc).__name__}")
    return {"ok": True, **reply}
