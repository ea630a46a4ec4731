"""The conformance fixture: one set of tests against every filesystem kind.

`make_fs(seed)` builds a filesystem holding `seed` and returns its root:

- `tmpfs`: a bare TmpFs, seeded through its own interface;
- `overlay-empty`: an OverlayFs over one empty lower, seeded through the
  overlay (everything lands in the upper);
- `overlay-lower`: an OverlayFs whose lower TmpFs holds the seed, so every
  change of a seeded entry goes through copy-up. The lower's digest is
  checked unchanged at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sandboxfs.overlay import OverlayFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode

from .helpers import Seed, digest, populate

KINDS = ["tmpfs", "overlay-empty", "overlay-lower"]

MakeFs = Callable[..., Awaitable[Inode]]


@pytest.fixture(params=KINDS)
async def make_fs(request: pytest.FixtureRequest) -> AsyncIterator[MakeFs]:
    kind: str = request.param
    lowers: list[tuple[Inode, str]] = []

    async def make(seed: Seed | None = None, **tmpfs_options: Any) -> Inode:
        seed = seed or {}
        if kind == "tmpfs":
            root: Inode = TmpFs(**tmpfs_options).root
            await populate(root, seed)
            return root
        lower = TmpFs(ino_base=1000).root
        if kind == "overlay-lower":
            await populate(lower, seed)
        lowers.append((lower, await digest(lower)))
        fs = OverlayFs(TmpFs(**tmpfs_options).root, [lower])
        if kind == "overlay-empty":
            await populate(fs.root, seed)
        return fs.root

    make.kind = kind  # type: ignore[attr-defined]
    yield make
    for lower, before in lowers:
        assert await digest(lower) == before, "a lower layer was modified"
