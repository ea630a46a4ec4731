"""TmpFs specifics: the budget, inode numbers, memfd bodies, freeing."""

from __future__ import annotations

import errno
import os

from sandboxfs.tmpfs import TmpFile, TmpFs
from sandboxfs.vfs import SetAttr

from .helpers import ROOT, expect_errno, read_all, write_at


async def test_inode_limit() -> None:
    fs = TmpFs(inode_limit=4)
    await fs.root.create(b"a", 0o644, ROOT)
    await fs.root.mkdir(b"b", 0o755, ROOT)
    await fs.root.symlink(b"c", b"a", ROOT)
    await expect_errno(errno.ENOSPC, fs.root.create(b"d", 0o644, ROOT))
    await expect_errno(errno.ENOSPC, fs.root.mkdir(b"d", 0o755, ROOT))
    assert (await fs.root.statfs()).ffree == 0
    await fs.root.unlink(b"c")
    await fs.root.create(b"d", 0o644, ROOT)


async def test_inode_numbers_never_reused() -> None:
    fs = TmpFs(ino_base=500)
    assert fs.root.ino == 500
    seen = {fs.root.ino}
    for _ in range(3):
        f = await fs.root.create(b"f", 0o644, ROOT)
        assert f.ino not in seen
        seen.add(f.ino)
        await fs.root.unlink(b"f")


async def test_memfd_created_lazily_and_budget_returned() -> None:
    fs = TmpFs(size_limit=1 << 20)
    f = await fs.root.create(b"f", 0o644, ROOT)
    assert isinstance(f, TmpFile)
    h = await f.open(os.O_RDWR)
    assert f._fd is None
    await h.write(0, b"")
    assert f._fd is None
    await h.write(0, b"x" * 10000)
    assert f._fd is not None and fs.used_pages == 3
    await fs.root.unlink(b"f")
    assert fs.used_pages == 3  # still open
    assert await h.read(0, 3) == b"xxx"
    await h.release()
    assert fs.used_pages == 0 and f._fd is None
    assert (await fs.root.statfs()).bfree == 256


async def test_truncate_budget_and_sparse_files() -> None:
    fs = TmpFs(size_limit=64 << 10)
    f = await fs.root.create(b"f", 0o644, ROOT)
    await f.setattr(SetAttr(size=64 << 10))  # holes count by size
    assert fs.used_pages == 16
    await expect_errno(errno.ENOSPC, (await fs.root.create(b"g", 0o644, ROOT)).setattr(
        SetAttr(size=1)))
    await f.setattr(SetAttr(size=4096))
    assert fs.used_pages == 1
    # Larger than the whole filesystem: EFBIG (as a file past the size limit), nothing charged.
    await expect_errno(errno.EFBIG, f.setattr(SetAttr(size=(64 << 10) + 1)))
    assert fs.used_pages == 1 and (await f.getattr()).size == 4096
    assert await read_all(f) == b"\0" * 4096


async def test_fileno_is_the_body() -> None:
    fs = TmpFs()
    f = await fs.root.create(b"f", 0o644, ROOT)
    await write_at(f, 0, b"abc")
    h = await f.open(os.O_RDONLY)
    fd = h.fileno()
    assert fd is not None and os.pread(fd, 10, 0) == b"abc"
    await h.release()


async def test_append_handle_and_write_only_read() -> None:
    fs = TmpFs()
    f = await fs.root.create(b"f", 0o644, ROOT)
    h = await f.open(os.O_WRONLY | os.O_APPEND)
    await h.write(0, b"a")
    await h.write(0, b"b")
    await expect_errno(errno.EBADF, h.read(0, 1))
    await h.release()
    await expect_errno(errno.EBADF, h.write(0, b"x"))
    assert await read_all(f) == b"ab"


async def test_link_of_unlinked_file_and_long_names() -> None:
    fs = TmpFs()
    f = await fs.root.create(b"f", 0o644, ROOT)
    h = await f.open(os.O_RDONLY)
    await fs.root.unlink(b"f")
    await expect_errno(errno.ENOENT, fs.root.link(b"g", f))
    await h.release()
    await expect_errno(errno.ENAMETOOLONG, fs.root.create(b"n" * 256, 0o644, ROOT))
    await expect_errno(errno.EXDEV, fs.root.link(b"x", await TmpFs().root.create(b"y", 0, ROOT)))
