"""RequestWaiter, the request wait put into pyfuse3's session loop, on a pipe."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pyfuse3
import pytest
import trio
import trio.testing

from sandboxfs import fuse_loop
from sandboxfs.fuse_loop import RequestWaiter


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


async def test_a_queued_request_is_answered_without_parking(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.write(w, b"x")
    waiter = RequestWaiter(r)
    # No checkpoint on this path: it completes within one trio step, so a
    # task that would run at the next checkpoint has not run yet.
    ran = []

    async def other() -> None:
        ran.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        assert await waiter.wait() is True
        assert ran == []
    assert ran == [True]


async def test_waits_until_readable_and_lets_only_one_task_park(pipe: tuple[int, int]) -> None:
    r, w = pipe
    waiter = RequestWaiter(r)
    answers: list[str] = []

    async def wait(name: str) -> None:
        assert await waiter.wait() is True
        answers.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, "a")
        nursery.start_soon(wait, "b")  # parks on the lock: trio allows one fd waiter
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []
        os.write(w, b"x")
    assert sorted(answers) == ["a", "b"]


async def test_closing_the_fd_ends_every_wait(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    waiter = RequestWaiter(r)
    answers: list[bool] = []

    async def wait() -> None:
        answers.append(await waiter.wait())

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.notify_closing(r)  # what pyfuse3.terminate() does
    assert answers == [False, False, False]
    assert await waiter.wait() is False


def test_install_replaces_pyfuse3s_wait_only_for_the_new_fuse_fd(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = pyfuse3._wait_fuse_readable  # type: ignore[attr-defined]
    monkeypatch.setattr(pyfuse3, "_wait_fuse_readable", original)
    fd = os.open("/dev/fuse", os.O_RDWR)
    try:
        assert fuse_loop.install(fuse_loop.fuse_fds()) is None  # no new fd: kept
        assert pyfuse3._wait_fuse_readable is original  # type: ignore[attr-defined]
        waiter = fuse_loop.install(fuse_loop.fuse_fds() - {fd})
        assert waiter is not None and waiter.fd == fd
        assert pyfuse3._wait_fuse_readable == waiter.wait  # type: ignore[attr-defined]
        monkeypatch.setattr(pyfuse3, "__version__", "4.0.0")
        assert fuse_loop.install(fuse_loop.fuse_fds() - {fd}) is None
    finally:
        os.close(fd)
