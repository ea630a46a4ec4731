"""Whiteouts and opaque directories: the overlay's on-disk vocabulary.

The upper uses kernel overlayfs's own format, so the same code can later
drive an on-disk upper and a previous upper can serve as a lower:

- a *whiteout* is a character device 0/0: the name is deleted for every
  layer below;
- an *opaque* directory carries the xattr `trusted.overlay.opaque` = `y`:
  nothing of the layers below shows through it;
- a *redirect* (`trusted.overlay.redirect`) on a directory of the upper
  names where its lower parts are: `/a/b` from the root of every layer
  below, or `b` (no slash) in the lowers of its parent. Renaming a directory
  that has lower parts writes one, as overlayfs with `redirect_dir=on` does.

Lowers may also carry OCI image-layer markers (image-spec `layer.md`):
`.wh.NAME` hides NAME in the layers below its own, and `.wh..wh..opq` makes
its directory opaque for the layers below. Every marker, whiteout and
`trusted.overlay.*` xattr is internal: users never see one.
"""

from __future__ import annotations

import errno
import itertools
import stat

from sandboxfs.vfs import Attr, Creds, Inode

OVERLAY_XATTR_PREFIX = b"trusted.overlay."
OPAQUE_XATTR = b"trusted.overlay.opaque"
REDIRECT_XATTR = b"trusted.overlay.redirect"
#: sandboxfs's own: the inode number a copied-up file showed (`inomap`).
#: Kernel overlayfs hides and ignores `trusted.overlay.*` names it does not know.
ORIGIN_INO_XATTR = b"trusted.overlay.sandboxfs.ino"
#: The longest redirect kernel overlayfs follows (its `redirect_max` default):
#: a directory whose lower path is longer cannot be renamed (EXDEV), as there.
REDIRECT_MAX = 256
OCI_WHITEOUT_PREFIX = b".wh."
OCI_OPAQUE_MARKER = b".wh..wh..opq"

#: Names for whiteouts that are about to be renamed into place (a whiteout is
#: hidden wherever it is, so the temporary name is never visible either).
_TEMP_NAMES = itertools.count()


def is_whiteout(attr: Attr) -> bool:
    """A character device 0/0: overlayfs's whiteout."""
    return stat.S_ISCHR(attr.mode) and attr.rdev == 0


def is_internal_xattr(name: bytes) -> bool:
    """`trusted.overlay.*` belongs to the overlay's format, never to users."""
    return name.startswith(OVERLAY_XATTR_PREFIX)


def is_oci_marker(name: bytes) -> bool:
    """`.wh.NAME` or `.wh..wh..opq` in a lower layer."""
    return name.startswith(OCI_WHITEOUT_PREFIX)


def oci_whiteout_for(name: bytes) -> bytes:
    return OCI_WHITEOUT_PREFIX + name


async def maybe_lookup(directory: Inode, name: bytes) -> Inode | None:
    """`directory.lookup(name)`, or None when the name is absent."""
    try:
        return await directory.lookup(name)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENAMETOOLONG):
            return None
        raise


async def has_opaque_xattr(directory: Inode) -> bool:
    try:
        return await directory.getxattr(OPAQUE_XATTR) == b"y"
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise


async def read_redirect(directory: Inode) -> bytes | None:
    """The directory's redirect xattr, or None (absent, or not a usable path)."""
    try:
        value = await directory.getxattr(REDIRECT_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return None
        raise
    if not value or b"\0" in value or value.endswith(b"/") and value != b"/":
        return None
    return value


async def make_whiteout(upper_dir: Inode, name: bytes) -> None:
    await upper_dir.mknod(name, stat.S_IFCHR, 0, Creds())


async def replace_with_whiteout(upper_dir: Inode, name: bytes, *, is_dir: bool) -> None:
    """Leave a whiteout at `name` in `upper_dir`, replacing whatever the upper
    holds there (a file, or an empty directory when `is_dir`).

    The whiteout is made first under a temporary name, so running out of
    space or inodes fails before anything is removed; it is then renamed into
    place (an atomic replacement for a file). The lower entry never shows
    through, even after a failure.
    """
    existing = await maybe_lookup(upper_dir, name)
    if existing is None:
        await make_whiteout(upper_dir, name)
        return
    temp = b"#sandboxfs-whiteout-%d" % next(_TEMP_NAMES)
    await make_whiteout(upper_dir, temp)
    try:
        if is_dir:
            await upper_dir.rmdir(name)
        await upper_dir.rename(temp, upper_dir, name)
    except BaseException:
        await upper_dir.unlink(temp)
        raise


async def new_temp_whiteout(upper_dir: Inode) -> bytes:
    """A whiteout under a fresh temporary name, to be renamed into place later."""
    temp = b"#sandboxfs-whiteout-%d" % next(_TEMP_NAMES)
    await make_whiteout(upper_dir, temp)
    return temp


async def clear_whiteouts(upper_dir: Inode) -> None:
    """Remove the whiteouts of a directory that is empty in the merged view,
    so the upper can remove or replace it."""
    for entry in await upper_dir.readdir():
        if is_whiteout(entry.attr):
            await upper_dir.unlink(entry.name)
