"""The control protocol: one JSON object per line, each way, on a unix socket.

A request is `{"op": NAME, ...arguments}`; the reply is `{"ok": true, ...}`
or `{"ok": false, "error": MESSAGE}`. Open file descriptors (a new
container's gofer sockets) travel with a request as SCM_RIGHTS on its first
byte. Kept free of I/O: these functions only turn objects into bytes and
back, so the server (trio) and the client (blocking) share them.
"""

from __future__ import annotations

import json
from typing import Any

#: Largest request or reply line accepted (a plan is a few KiB).
MAX_LINE = 1 << 20
#: Most fds one request may carry.
MAX_FDS = 64


class ProtocolError(ValueError):
    """A line that is not one JSON object, or too long."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise ProtocolError("message too long")
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("not a JSON object")
    return value


def error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}
