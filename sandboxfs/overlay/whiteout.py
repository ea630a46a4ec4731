"""Whiteouts and opaque directories: the overlay's on-disk vocabulary.

The upper uses kernel overlayfs's own format, so an on-disk upper mounts
under the kernel and a previous upper can serve as a lower:

- a *whiteout* is a character device 0/0: the name is deleted for every
  layer below;
- an *opaque* directory carries the xattr `trusted.overlay.opaque` = `y`:
  nothing of the layers below shows through it;
- a *redirect* (`trusted.overlay.redirect`) on a directory of the upper
  names where its lower parts are: `/a/b` from the root of every layer
  below, or `b` (no slash) in the lowers of its parent. Renaming a directory
  that has lower parts writes one, as overlayfs with `redirect_dir=on` does.

Where the upper cannot hold those (no CAP_MKNOD, or `trusted.*` xattrs
refused, as for an unprivileged user), the fallbacks are fuse-overlayfs's
and overlayfs's `userxattr` ones: `user.overlay.*` xattrs, and OCI
`.wh.NAME` files for whiteouts. Both forms are read back; `.wh.` markers in
the upper only where the overlay says so (`markers`, an on-disk upper:
there `.wh.` names cannot be created).

Lowers may also carry OCI image-layer markers (image-spec `layer.md`):
`.wh.NAME` hides NAME in the layers below its own, and `.wh..wh..opq` makes
its directory opaque for the layers below. Every marker, whiteout and
`trusted.overlay.*`/`user.overlay.*` xattr is internal: users never see one.
"""

from __future__ import annotations

import errno
import itertools
import stat
from dataclasses import dataclass

from sandboxfs.vfs import Attr, Creds, Inode

FORMAT_PREFIXES = (b"trusted.overlay.", b"user.overlay.")
OPAQUE = b"opaque"
REDIRECT = b"redirect"
#: sandboxfs's own: the inode number a copied-up file showed (`inomap`).
#: Kernel overlayfs hides and ignores `*.overlay.*` names it does not know.
ORIGIN_INO = b"sandboxfs.ino"
OPAQUE_XATTR = FORMAT_PREFIXES[0] + OPAQUE
REDIRECT_XATTR = FORMAT_PREFIXES[0] + REDIRECT
ORIGIN_INO_XATTR = FORMAT_PREFIXES[0] + ORIGIN_INO
#: The longest redirect kernel overlayfs follows (its `redirect_max` default):
#: a directory whose lower path is longer cannot be renamed (EXDEV), as there.
REDIRECT_MAX = 256
OCI_WHITEOUT_PREFIX = b".wh."
OCI_OPAQUE_MARKER = b".wh..wh..opq"

#: Names for whiteouts that are about to be renamed into place (a whiteout is
#: hidden wherever it is, so the temporary name is never visible either).
_TEMP_NAMES = itertools.count()
_ABSENT = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)


def is_whiteout(attr: Attr) -> bool:
    """A character device 0/0: overlayfs's whiteout."""
    return stat.S_ISCHR(attr.mode) and attr.rdev == 0


def is_internal_xattr(name: bytes) -> bool:
    """`trusted.overlay.*` and `user.overlay.*` belong to the format, never to users."""
    return name.startswith(FORMAT_PREFIXES)


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


async def read_format_xattr(inode: Inode, suffix: bytes) -> bytes | None:
    """A format xattr (`trusted.overlay.SUFFIX`, else `user.overlay.SUFFIX`), or
    None. One listxattr first: for a gofer layer, absent (the common case)
    costs one round trip, not one per namespace."""
    try:
        names = await inode.listxattr()
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise
    for prefix in FORMAT_PREFIXES:
        if prefix + suffix in names:
            try:
                return await inode.getxattr(prefix + suffix)
            except OSError as exc:
                if exc.errno not in _ABSENT:
                    raise
    return None


async def write_format_xattr(inode: Inode, suffix: bytes, value: bytes) -> None:
    """Set `trusted.overlay.SUFFIX`, or `user.overlay.SUFFIX` where the upper
    refuses trusted xattrs (an unprivileged gofer)."""
    try:
        await inode.setxattr(FORMAT_PREFIXES[0] + suffix, value)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        await inode.setxattr(FORMAT_PREFIXES[1] + suffix, value)


async def has_opaque_xattr(directory: Inode) -> bool:
    return await read_format_xattr(directory, OPAQUE) == b"y"


async def read_redirect(directory: Inode) -> bytes | None:
    """The directory's redirect xattr, or None (absent, or not a usable path)."""
    value = await read_format_xattr(directory, REDIRECT)
    if not value or b"\0" in value or value.endswith(b"/") and value != b"/":
        return None
    return value


@dataclass(slots=True)
class Whiteouts:
    """Making and clearing whiteouts in one overlay's upper. `markers`: the
    upper may hold OCI `.wh.NAME` markers (an on-disk upper), written when a
    0/0 device cannot be made."""

    markers: bool = False

    async def make(self, upper_dir: Inode, name: bytes) -> None:
        try:
            await upper_dir.mknod(name, stat.S_IFCHR, 0, Creds())
        except OSError as exc:
            if exc.errno != errno.EPERM or not self.markers:
                raise
            await self._make_marker(upper_dir, name)

    async def _make_marker(self, upper_dir: Inode, name: bytes) -> None:
        marker = oci_whiteout_for(name)
        if await maybe_lookup(upper_dir, marker) is None:
            await upper_dir.create(marker, 0o600, Creds())

    async def replace(self, upper_dir: Inode, name: bytes, *, is_dir: bool) -> None:
        """Leave a whiteout at `name` in `upper_dir`, replacing whatever the
        upper holds there (a file, or an empty directory when `is_dir`).

        The whiteout is made first under a temporary name, so running out of
        space or inodes fails before anything is removed; it is then renamed
        into place (an atomic replacement for a file). With a marker instead,
        the marker comes first and the name goes after. The lower entry never
        shows through, even after a failure.
        """
        existing = await maybe_lookup(upper_dir, name)
        if existing is None:
            await self.make(upper_dir, name)
            return
        pending = await self.prepare(upper_dir, name)
        try:
            if is_dir:
                await upper_dir.rmdir(name)
            elif pending.temp is None:
                await upper_dir.unlink(name)
        except BaseException:
            await pending.cancel()
            raise
        await pending.place()

    async def prepare(self, upper_dir: Inode, name: bytes) -> PendingWhiteout:
        """A whiteout for `name`, made now and put in place by `place()` once the
        name is gone (or moved away)."""
        temp = b"#sandboxfs-whiteout-%d" % next(_TEMP_NAMES)
        try:
            await upper_dir.mknod(temp, stat.S_IFCHR, 0, Creds())
        except OSError as exc:
            if exc.errno != errno.EPERM or not self.markers:
                raise
            existed = await maybe_lookup(upper_dir, oci_whiteout_for(name)) is not None
            await self._make_marker(upper_dir, name)
            return PendingWhiteout(upper_dir, name, None, made_marker=not existed)
        return PendingWhiteout(upper_dir, name, temp)

    async def clear(self, upper_dir: Inode) -> None:
        """Remove the whiteouts (and markers) of a directory that is empty in the
        merged view, so the upper can remove or replace it."""
        for entry in await upper_dir.readdir():
            if is_whiteout(entry.attr) or self.markers and is_oci_marker(entry.name):
                await upper_dir.unlink(entry.name)

    async def is_marked(self, upper_dir: Inode, name: bytes) -> bool:
        """Whether the upper hides `name` below it with an OCI marker."""
        return self.markers and await maybe_lookup(upper_dir, oci_whiteout_for(name)) is not None

    async def is_opaque(self, upper_dir: Inode) -> bool:
        if await has_opaque_xattr(upper_dir):
            return True
        return self.markers and await maybe_lookup(upper_dir, OCI_OPAQUE_MARKER) is not None


@dataclass(slots=True)
class PendingWhiteout:
    """A whiteout made ahead of the change that needs it (`Whiteouts.prepare`):
    a 0/0 device under `temp`, or (temp None) a `.wh.` marker already in place."""

    upper_dir: Inode
    name: bytes
    temp: bytes | None
    made_marker: bool = False

    async def place(self) -> None:
        if self.temp is not None:
            await self.upper_dir.rename(self.temp, self.upper_dir, self.name)

    async def cancel(self) -> None:
        if self.temp is not None:
            await self.upper_dir.unlink(self.temp)
        elif self.made_marker:
            await self.upper_dir.unlink(oci_whiteout_for(self.name))
