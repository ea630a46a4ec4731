"""An upper that cannot hold overlayfs's own format: no 0/0 devices (no
CAP_MKNOD) and no `trusted.*` xattrs (no CAP_SYS_ADMIN), as for an
unprivileged gofer. The overlay falls back to OCI `.wh.` markers and
`user.overlay.*` xattrs, and reads both back."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Awaitable, Callable

from sandboxfs.overlay import OverlayFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode

from .helpers import ROOT, Proxy, Seed, expect_errno, populate, read_all, walk

TREE: Seed = {
    "f": b"lower f",
    "d/": None,
    "d/a": b"a",
    "d/sub/": None,
    "d/sub/b": b"b",
    "gone/": None,
    "gone/x": b"x",
}


class Unprivileged(Proxy):
    """A tmpfs inode as an unprivileged process sees it."""

    async def around(self, name: str, call: Callable[..., Awaitable[object]],
                     args: tuple[object, ...]) -> object:
        if name == "mknod" and stat.S_ISCHR(int(args[1])):  # type: ignore[call-overload]
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        if name in ("setxattr", "getxattr", "removexattr") and \
                bytes(args[0]).startswith(b"trusted."):  # type: ignore[call-overload]
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        result = await call(*args)
        if name == "listxattr":
            return [n for n in result if not n.startswith(b"trusted.")]  # type: ignore[attr-defined]
        return result


async def mount() -> tuple[OverlayFs, Inode, Inode]:
    lower = TmpFs(ino_base=1000).root
    await populate(lower, TREE)
    raw = TmpFs().root
    upper: Inode = Unprivileged(raw)  # type: ignore[assignment]
    return OverlayFs(upper, [lower], upper_markers=True), raw, lower


async def names(d: Inode) -> list[bytes]:
    return sorted(e.name for e in await d.readdir())


async def test_whiteouts_become_markers_and_read_back() -> None:
    fs, raw, lower = await mount()
    await fs.root.unlink(b"f")
    d = await fs.root.lookup(b"d")
    await d.unlink(b"a")
    assert await names(raw) == [b".wh.f", b"d"]
    assert await names(await raw.lookup(b"d")) == [b".wh.a"]
    assert await names(fs.root) == [b"d", b"gone"]
    await expect_errno(errno.ENOENT, fs.root.lookup(b"f"))
    await expect_errno(errno.ENOENT, fs.root.lookup(b".wh.f"))
    again = OverlayFs(Unprivileged(raw), [lower], upper_markers=True)  # type: ignore[arg-type]
    assert await names(again.root) == [b"d", b"gone"]
    assert await names(await again.root.lookup(b"d")) == [b"sub"]
    await expect_errno(errno.ENOENT, again.root.lookup(b"f"))
    # A name made again over its marker shows; the lower one stays hidden.
    f = await again.root.create(b"f", 0o644, ROOT)
    assert await read_all(f) == b""
    await expect_errno(errno.EINVAL, again.root.create(b".wh.x", 0o644, ROOT))


async def test_opaque_and_redirect_fall_back_to_user_xattrs() -> None:
    fs, raw, lower = await mount()
    gone = await fs.root.lookup(b"gone")
    await gone.unlink(b"x")
    await fs.root.rmdir(b"gone")
    made = await fs.root.mkdir(b"gone", 0o755, ROOT)
    assert await names(made) == []
    assert b".wh.gone" in await names(raw)  # the marker keeps the lower one hidden
    await fs.root.rename(b"d", fs.root, b"moved")
    assert await (await raw.lookup(b"moved")).getxattr(b"user.overlay.redirect") == b"/d"
    again = OverlayFs(Unprivileged(raw), [lower], upper_markers=True)  # type: ignore[arg-type]
    assert await names(await again.root.lookup(b"gone")) == []
    assert await names(await again.root.lookup(b"moved")) == [b"a", b"sub"]
    assert await read_all(await walk(again.root, "moved/sub/b")) == b"b"
    assert await names(again.root) == [b"f", b"gone", b"moved"]
    # The user.overlay.* names are format: not shown.
    assert await (await again.root.lookup(b"moved")).listxattr() == []


async def test_oci_opaque_marker_in_the_upper() -> None:
    fs, raw, lower = await mount()
    d = await raw.mkdir(b"d", 0o755, ROOT)
    await d.create(b".wh..wh..opq", 0o600, ROOT)
    await d.create(b"own", 0o644, ROOT)
    fs = OverlayFs(Unprivileged(raw), [lower], upper_markers=True)  # type: ignore[arg-type]
    assert await names(await fs.root.lookup(b"d")) == [b"own"]
