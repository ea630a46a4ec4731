"""`--whiteouts`: an overlay upper's export may hold 0/0 character devices, no other device."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from tests.gofer.conftest import Procs, gofer_client


async def test_whiteouts_only_on_an_upper_export(procs: Procs, sample: Path) -> None:
    async with gofer_client(procs, sample, "--whiteouts") as c:
        root, _ = await c.attach()
        await c.mknod(root, b"gone", stat.S_IFCHR | 0o000, 0, 0, 0)
        st = os.lstat(sample / "gone")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        with pytest.raises(OSError) as info:
            await c.mknod(root, b"null", stat.S_IFCHR | 0o666, 1, 3, 0)
        assert info.value.errno == errno.EPERM
    async with gofer_client(procs, sample) as c:
        root, _ = await c.attach()
        with pytest.raises(OSError) as info:
            await c.mknod(root, b"gone2", stat.S_IFCHR | 0o000, 0, 0, 0)
        assert info.value.errno == errno.EPERM
    assert not (sample / "null").exists() and not (sample / "gone2").exists()
