"""The pause gate: in-flight requests finish, new ones wait, none fail."""

from __future__ import annotations

import trio

from sandboxfs.pause import Pauser


async def test_pause_waits_for_inflight_and_holds_new_requests() -> None:
    gate = Pauser()
    log: list[str] = []

    async def request(name: str, duration: float) -> None:
        if gate.paused:
            await gate.wait_open()
        gate.enter()
        try:
            log.append(f"start {name}")
            await trio.sleep(duration)
            log.append(f"end {name}")
        finally:
            gate.leave()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request, "a", 0.05)
        await trio.sleep(0.01)
        with trio.fail_after(1):
            await gate.pause()
        log.append("paused")
        nursery.start_soon(request, "b", 0)
        await trio.sleep(0.05)
        assert "start b" not in log
        gate.resume()
    assert log == ["start a", "end a", "paused", "start b", "end b"]


async def test_pause_with_nothing_in_flight_returns_at_once() -> None:
    gate = Pauser()
    with trio.fail_after(1):
        await gate.pause()
    assert gate.paused
    gate.resume()
    assert not gate.paused
