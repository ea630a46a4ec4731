"""Codec unit tests: every message round-trips, framing is strict, fuzzing finds no crash."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gofer import wire as w

QID = w.Qid(w.QTDIR, 7, 123456789)
STAT = w.Stat(QID, 0o40755, 1000, 1000, 3, 0, 4096, 4096, 8, -5, 1_700_000_000_123_456_789,
              1_700_000_001_000_000_000, 2049)
SAMPLES: dict[str, Any] = {
    "b": 1, "w": 0xBEEF, "d": 0xDEADBEEF, "q": 2**63 + 5, "s": b"name\xff",
    "Q": QID, "S": (b"a", b"", b"bc"), "R": (QID, w.Qid(0, 0, 1)), "D": b"\0data\n",
    "F": (1, 2, 0xFFFFFFFF), "A": STAT, "AS": (STAT, STAT),
    "B": (w.StatOrErrno(STAT), w.StatOrErrno(None, 2)),
}


def sample(cls: type[w.Message]) -> w.Message:
    return cls(*[SAMPLES[kind] for _, kind in cls.FIELDS])  # type: ignore[call-arg]


ALL = sorted(w.MESSAGES.values(), key=lambda c: c.TYPE)


def decode_all(fb: w.FrameBuffer) -> list[tuple[int, w.Message]]:
    return [(tag, w.decode(t, tag, body)) for t, tag, body in fb.frames()]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_round_trip_whole(cls: type[w.Message]) -> None:
    msg = sample(cls)
    frame = w.encode(42, msg)
    assert struct.unpack_from("<I", frame)[0] == len(frame)
    fb = w.FrameBuffer(w.MAX_MSIZE)
    fb.feed(frame)
    assert decode_all(fb) == [(42, msg)]
    assert len(fb) == 0


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_round_trip_byte_at_a_time_and_trailing(cls: type[w.Message]) -> None:
    msg = sample(cls)
    frame = w.encode(7, msg)
    fb = w.FrameBuffer(w.MAX_MSIZE)
    got: list[tuple[int, w.Message]] = []
    for i in range(len(frame)):
        fb.feed(frame[i:i + 1])
        got += decode_all(fb)
        if i < len(frame) - 1:
            assert got == []
    assert got == [(7, msg)]
    # trailing data: the next frame's start stays buffered, untouched
    fb.feed(frame + frame[:5])
    assert decode_all(fb) == [(7, msg)]
    assert len(fb) == 5
    fb.feed(frame[5:])
    assert decode_all(fb) == [(7, msg)]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_body_lengths_are_strict(cls: type[w.Message]) -> None:
    frame = w.encode(3, sample(cls))
    body = frame[w.HEADER_SIZE:]
    with pytest.raises(w.ProtocolError) as info:
        w.decode(cls.TYPE, 3, body + b"\0")
    assert info.value.tag == 3
    if body and cls is not w.Tfsync:
        with pytest.raises(w.ProtocolError):
            w.decode(cls.TYPE, 3, body[:-1])


def test_lying_inner_lengths() -> None:
    body = w.encode(1, w.Twalk(1, 2, (b"abc",)))[w.HEADER_SIZE:]
    lie_count = body[:8] + struct.pack("<H", 1000) + body[10:]
    with pytest.raises(w.ProtocolError):
        w.decode(w.Twalk.TYPE, 1, lie_count)
    lie_strlen = body[:10] + struct.pack("<H", 60000) + body[12:]
    with pytest.raises(w.ProtocolError):
        w.decode(w.Twalk.TYPE, 1, lie_strlen)
    data = w.encode(1, w.Rread(b"xyz"))[w.HEADER_SIZE:]
    with pytest.raises(w.ProtocolError):
        w.decode(w.Rread.TYPE, 1, struct.pack("<I", 2**32 - 1) + data[4:])


def test_unknown_type_carries_eopnotsupp() -> None:
    with pytest.raises(w.ProtocolError) as info:
        w.decode(250, 9, b"")
    assert info.value.errno == 95 and info.value.tag == 9


@pytest.mark.parametrize("size", [0, 6, 8193, 2**32 - 1])
def test_frame_size_out_of_bounds_is_framing_error(size: int) -> None:
    fb = w.FrameBuffer(8192)
    fb.feed(struct.pack("<IBH", size, 100, 1))
    with pytest.raises(w.FramingError):
        list(fb.frames())


def test_tfsync_without_datasync_decodes() -> None:
    assert w.decode(w.Tfsync.TYPE, 1, struct.pack("<I", 5)) == w.Tfsync(5, 0)


@pytest.mark.parametrize("msg", [w.Tclunk(-1), w.Tclunk(2**32), w.Tflush(70000),
                                 w.Twalk(1, 2, (b"x" * 70000,)), w.Tattach(1, 2, "str", b"", 0)])
def test_caller_misuse_is_usage_error(msg: w.Message) -> None:
    with pytest.raises(w.UsageError):
        w.encode(1, msg)
    with pytest.raises(w.UsageError):
        w.encode(-1, w.Tclunk(1))


def test_dirent_helpers_round_trip() -> None:
    ents = [w.Dirent(QID, 1, 4, b"a"), w.Dirent(w.Qid(0, 0, 9), 2, 8, b"file\xfe")]
    data = b"".join(w.pack_dirent(d) for d in ents)
    assert w.unpack_dirents(data) == ents
    with pytest.raises(w.ProtocolError):
        w.unpack_dirents(data[:-1])
    sents = [w.DirentStat(QID, 1, 4, b"d", STAT)]
    sdata = b"".join(w.pack_dirent_stat(d) for d in sents)
    assert w.unpack_dirent_stats(sdata) == sents
    with pytest.raises(w.ProtocolError):
        w.unpack_dirent_stats(sdata + b"\0")


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=300))
def test_fuzz_decode_only_raises_protocol_error(type_: int, body: bytes) -> None:
    try:
        w.decode(type_, 1, body)
    except w.ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 50))
def test_fuzz_stream_only_raises_protocol_error(stream: bytes, chunk: int) -> None:
    fb = w.FrameBuffer(512)
    try:
        for i in range(0, len(stream), chunk):
            fb.feed(stream[i:i + chunk])
            for t, tag, body in fb.frames():
                try:
                    w.decode(t, tag, body)
                except w.ProtocolError as exc:
                    assert not isinstance(exc, w.FramingError)
    except w.FramingError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALL), st.data())
def test_fuzz_mutated_valid_frames(cls: type[w.Message], data: st.DataObject) -> None:
    body = bytearray(w.encode(1, sample(cls))[w.HEADER_SIZE:])
    for _ in range(data.draw(st.integers(1, 4))):
        if body:
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    try:
        w.decode(cls.TYPE, 1, bytes(body[:cut]))
    except w.ProtocolError:
        pass
