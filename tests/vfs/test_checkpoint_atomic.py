"""Writing to a path is atomic: whatever goes wrong half way (an error
reading a file, a failing progress callback, a cancellation, a header that
is not JSON), the previous image stays byte for byte and no temporary file
is left beside it."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import trio

from sandboxfs.checkpoint import CHUNK, read_image, write_image
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode

from .checkpoint_spies import SpyInode
from .checkpoint_trees import HEADER, checkpoint, rich_tree
from .helpers import ROOT, write_at


async def two_trees(tmp_path: Path) -> tuple[Path, bytes, TmpFs]:
    """A previous image on disk, and a different tree (with a 5-chunk file)
    to write over it."""
    old = TmpFs()
    await write_at(await old.root.create(b"old", 0o644, ROOT), 0, b"previous")
    image = await checkpoint(tmp_path / "img", [("0", old.root)])
    new = await rich_tree()
    await write_at(await new.root.create(b"five", 0o644, ROOT), 0, b"5" * (CHUNK * 5))
    return image, image.read_bytes(), new


def assert_untouched(tmp_path: Path, image: Path, before: bytes) -> None:
    assert os.listdir(tmp_path) == [image.name]
    assert image.read_bytes() == before
    assert read_image(image).info["0"].files == 1


async def test_an_error_reading_a_file_leaves_the_previous_image(tmp_path: Path) -> None:
    image, before, new = await two_trees(tmp_path)
    reads = 0

    async def fail_at_third(offset: int, size: int) -> None:
        nonlocal reads
        reads += 1
        if reads == 3:
            raise OSError(errno.EIO, "disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        await write_image(image, HEADER, [("0", SpyInode(new.root, fail_at_third))])  # type: ignore[list-item]
    assert_untouched(tmp_path, image, before)


async def test_a_failing_progress_callback_leaves_the_previous_image(tmp_path: Path) -> None:
    image, before, new = await two_trees(tmp_path)

    def progress(nbytes: int, files: int) -> None:
        if files > 500:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await write_image(image, HEADER, [("0", new.root)], progress)
    assert_untouched(tmp_path, image, before)


async def test_a_cancelled_checkpoint_leaves_the_previous_image(tmp_path: Path) -> None:
    image, before, new = await two_trees(tmp_path)

    async def slow(offset: int, size: int) -> None:
        await trio.sleep(0.01)

    with trio.move_on_after(0.05) as scope:
        await write_image(image, HEADER, [("0", SpyInode(new.root, slow))])  # type: ignore[list-item]
    assert scope.cancelled_caught
    assert_untouched(tmp_path, image, before)


async def test_a_header_that_is_not_json_leaves_the_previous_image(tmp_path: Path) -> None:
    image, before, new = await two_trees(tmp_path)
    with pytest.raises(TypeError):
        await write_image(image, {"meta": {1, 2}}, [("0", new.root)])
    with pytest.raises(ValueError, match="repeat"):
        await write_image(image, HEADER, [("0", new.root), ("0", new.root)])
    assert_untouched(tmp_path, image, before)


async def test_a_finished_write_replaces_the_image_private_to_its_owner(
        tmp_path: Path) -> None:
    image, before, new = await two_trees(tmp_path)
    trees: list[tuple[str, Inode]] = [("0", new.root)]
    await write_image(str(image), HEADER, trees)
    assert os.listdir(tmp_path) == [image.name]
    assert stat.S_IMODE(os.stat(image).st_mode) == 0o600
    assert read_image(image).info["0"].files > 1000
