"""Bad input over a real socket: Rlerror or a closed connection, never a crash or a hang.

Each test sends garbage on one connection while a second connection to the
same gofer must keep being served.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from conftest import Procs, connect, spawn_listen

from gofer import wire as w
from gofer.client import open_client


class Raw:
    """A bare 9P connection: send bytes, read frames."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.fb = w.FrameBuffer(w.MAX_MSIZE)
        _OPEN.append(sock)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await self.sock.send(view):]

    async def reply(self) -> w.Message | None:
        """The next frame, or None if the server closed the connection."""
        with trio.fail_after(5):
            while True:
                for t, tag, body in self.fb.frames():
                    return w.decode(t, tag, body)
                data = await self.sock.recv(65536)
                if not data:
                    return None
                self.fb.feed(data)

    async def rpc(self, tag: int, msg: w.Message) -> w.Message | None:
        await self.send(w.encode(tag, msg))
        return await self.reply()


_OPEN: list[trio.socket.SocketType] = []


@pytest.fixture(autouse=True)
async def _close_raw_sockets() -> AsyncIterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def addr(procs: Procs, sample: Path, tmp_path: Path) -> str:
    a, _ = spawn_listen(procs, ["--root", str(sample)], f"unix:{tmp_path / 'g.sock'}")
    return a


async def raw(addr: str, version: bool = True) -> Raw:
    r = Raw(trio.socket.from_stdlib_socket(connect(addr)))
    if version:
        assert await r.rpc(w.NOTAG, w.Tversion(65536, w.VERSION_L)) == w.Rversion(
            65536, w.VERSION_L)
        assert isinstance(await r.rpc(1, w.Tattach(0, w.NOFID, b"", b"", 0)), w.Rattach)
    return r


async def still_serving(addr: str) -> None:
    with trio.fail_after(5):
        async with open_client(connect(addr)) as c:
            root, _ = await c.attach()
            assert (await c.getattr(root)).qid.type == 0x80


async def test_truncated_frame_then_close(addr: str) -> None:
    r = await raw(addr)
    frame = w.encode(5, w.Tgetattr(0, w.GETATTR_ALL))
    await r.send(frame[:9])
    r.sock.shutdown(1)  # half-close mid-frame: the server just ends the connection
    assert await r.reply() is None
    await still_serving(addr)


async def test_body_shorter_than_its_type_needs(addr: str) -> None:
    r = await raw(addr)
    await r.send(struct.pack("<IBHI", 11, w.Tgetattr.TYPE, 6, 0))  # fid but no mask
    assert await r.reply() == w.Rlerror(errno.EPROTO)
    assert isinstance(await r.rpc(7, w.Tgetattr(0, w.GETATTR_ALL)), w.Rgetattr)
    await still_serving(addr)


async def test_lying_lengths(addr: str) -> None:
    r = await raw(addr)
    body = struct.pack("<IIH", 0, 1, 1) + struct.pack("<H", 5000) + b"abc"
    await r.send(struct.pack("<IBH", 7 + len(body), w.Twalk.TYPE, 3) + body)
    assert await r.reply() == w.Rlerror(errno.EPROTO)
    body = struct.pack("<IQI", 0, 0, 1 << 30) + b"data"  # Twrite count says 1 GiB
    await r.send(struct.pack("<IBH", 7 + len(body), w.Twrite.TYPE, 4) + body)
    assert await r.reply() == w.Rlerror(errno.EPROTO)
    await r.send(struct.pack("<IBH", 1 << 30, w.Tclunk.TYPE, 5))  # frame size lies
    assert await r.reply() is None
    await still_serving(addr)


async def test_frame_size_below_header(addr: str) -> None:
    r = await raw(addr)
    await r.send(struct.pack("<I", 3) + b"\0" * 10)
    assert await r.reply() is None
    await still_serving(addr)


async def test_unknown_message_types(addr: str) -> None:
    r = await raw(addr)
    for type_ in (0, 6, 106, 112, 199, 255, w.Rgetattr.TYPE):
        await r.send(struct.pack("<IBH", 7, type_, 9))
        reply = await r.reply()
        assert isinstance(reply, w.Rlerror) and reply.ecode in (errno.EOPNOTSUPP, errno.EPROTO)
    # extension messages on a plain 9P2000.L connection are not understood
    assert await r.rpc(9, w.Tgetattrbatch((0,))) == w.Rlerror(errno.EOPNOTSUPP)
    await still_serving(addr)


@pytest.mark.parametrize("msize", [0, 100, (1 << 20) + 1, 2**32 - 1])
async def test_refused_msize(addr: str, msize: int) -> None:
    r = await raw(addr, version=False)
    assert await r.rpc(w.NOTAG, w.Tversion(msize, w.VERSION_L)) == w.Rlerror(errno.EINVAL)
    assert await r.rpc(1, w.Tattach(0, w.NOFID, b"", b"", 0)) == w.Rlerror(errno.EPROTO)
    assert isinstance(await r.rpc(w.NOTAG, w.Tversion(8192, b"9P2000.L")), w.Rversion)
    await still_serving(addr)


async def test_frame_bigger_than_msize_closes(addr: str) -> None:
    r = await raw(addr)
    assert await r.rpc(2, w.Twrite(0, 0, b"x" * 70000)) is None
    await still_serving(addr)


async def test_unknown_version_string(addr: str) -> None:
    r = await raw(addr, version=False)
    assert await r.rpc(w.NOTAG, w.Tversion(8192, b"9P2000")) == w.Rversion(8192, b"unknown")
    assert await r.rpc(w.NOTAG, w.Tversion(8192, w.VERSION_EXT)) == w.Rversion(
        8192, w.VERSION_EXT)


async def test_tag_reused_after_its_reply_is_fine(addr: str) -> None:
    r = await raw(addr)
    assert isinstance(await r.rpc(2, w.Twalk(0, 1, (b"big.bin",))), w.Rwalk)
    assert isinstance(await r.rpc(2, w.Tlopen(1, 0)), w.Rlopen)
    # a small read is answered before the next frame is even decoded
    await r.send(w.encode(3, w.Tread(1, 0, 600)) + w.encode(3, w.Tgetattr(0, w.GETATTR_ALL)))
    assert isinstance(await r.reply(), w.Rread)
    assert isinstance(await r.reply(), w.Rgetattr)


async def test_reused_tag_with_slow_request_closes(procs: Procs, sample: Path,
                                                   tmp_path: Path) -> None:
    (sample / "huge").write_bytes(b"z" * (1 << 20))
    a, _ = spawn_listen(procs, ["--root", str(sample)], f"unix:{tmp_path / 'h.sock'}")
    r = Raw(trio.socket.from_stdlib_socket(connect(a)))
    assert isinstance(await r.rpc(w.NOTAG, w.Tversion(1 << 20, w.VERSION_L)), w.Rversion)
    assert isinstance(await r.rpc(1, w.Tattach(0, w.NOFID, b"", b"", 0)), w.Rattach)
    assert isinstance(await r.rpc(2, w.Twalk(0, 1, (b"huge",))), w.Rwalk)
    assert isinstance(await r.rpc(2, w.Tlopen(1, 0)), w.Rlopen)
    frames = w.encode(3, w.Tread(1, 0, 1 << 19)) + w.encode(3, w.Tclunk(1))
    await r.send(frames)
    replies = []
    while (m := await r.reply()) is not None:
        replies.append(m)
    assert all(not isinstance(m, w.Rclunk) for m in replies)
    await still_serving(a)


async def test_walk_of_1000_components(addr: str) -> None:
    r = await raw(addr)
    reply = await r.rpc(4, w.Twalk(0, 1, (b"sub",) * 1000))
    assert reply == w.Rlerror(errno.EINVAL)
    reply = await r.rpc(4, w.Twalk(0, 1, (b"a" * 255,) * 250))  # 64 KiB of names
    assert reply is None or isinstance(reply, w.Rlerror)
    await still_serving(addr)


async def test_fid_misuse(addr: str) -> None:
    r = await raw(addr)
    assert await r.rpc(1, w.Tgetattr(99, 0)) == w.Rlerror(errno.EBADF)
    assert await r.rpc(1, w.Tattach(0, w.NOFID, b"", b"", 0)) == w.Rlerror(errno.EBADF)
    assert await r.rpc(1, w.Tread(0, 0, 10)) == w.Rlerror(errno.EBADF)
    assert await r.rpc(1, w.Tauth(5, b"", b"", 0)) == w.Rlerror(errno.ENOENT)
    assert await r.rpc(1, w.Tattach(5, 7, b"", b"", 0)) == w.Rlerror(errno.EINVAL)
    assert await r.rpc(1, w.Tflush(1234)) == w.Rflush()
    assert await r.rpc(1, w.Tclunk(0)) == w.Rclunk()
    assert await r.rpc(1, w.Tclunk(0)) == w.Rlerror(errno.EBADF)


async def test_garbage_flood_on_many_connections(addr: str) -> None:
    async def garbage(seed: int) -> None:
        r = Raw(trio.socket.from_stdlib_socket(connect(addr)))
        try:
            await r.send(bytes((seed * 7 + i * 13) % 256 for i in range(5000)))
            while await r.reply() is not None:
                pass
        except OSError:
            pass

    async with trio.open_nursery() as n:
        for seed in range(20):
            n.start_soon(garbage, seed)
        n.start_soon(still_serving, addr)
    await still_serving(addr)
