"""Changes of names in the merged view: create, link, unlink, rmdir, rename.

Each operation holds the filesystem's `ns_lock` across its checks and its
changes (other tasks interleave at every await), copies up what it touches,
changes the upper, and then brings the node tables up to date.

Rules, as kernel overlayfs:
- removing a name a lower layer shows leaves a whiteout; rmdir checks the
  merged view for emptiness and clears the whiteouts of the upper directory
  it removes;
- creating over a whiteout replaces it; a directory made there is opaque
  (nothing of the old lower directory shows through);
- rename copies a file up and whiteouts its old name when a lower had it;
  a directory with lower parts is copied up (the directory alone) and gets
  a redirect xattr naming where its lower parts are, as overlayfs with
  `redirect_dir=on` (EXDEV only when that path is longer than overlayfs
  follows); an upper-only directory moved into a directory with lower parts
  becomes opaque, so nothing hidden there reappears under it;
- RENAME_EXCHANGE works the same way for both sides.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sandboxfs.overlay.copy_up import copy_up, link_alias
from sandboxfs.overlay.directory import (
    is_ancestor,
    layers,
    lookup_child,
    lower_has_entry,
    lower_path,
    merged_names,
)
from sandboxfs.overlay.whiteout import (
    OPAQUE,
    REDIRECT,
    REDIRECT_MAX,
    has_opaque_xattr,
    is_oci_marker,
    is_whiteout,
    maybe_lookup,
    write_format_xattr,
)
from sandboxfs.vfs import Inode

if TYPE_CHECKING:
    from sandboxfs.overlay.inode import OverlayInode

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
NAME_MAX = 255


def err(code: int, what: bytes | None = None) -> OSError:
    if what is None:
        return OSError(code, os.strerror(code))
    return OSError(code, os.strerror(code), what.decode(errors="replace"))


def check_name(name: bytes) -> None:
    """ENAMETOOLONG for a name no filesystem below could hold (as the kernel's lookup)."""
    if len(name) > NAME_MAX:
        raise err(errno.ENAMETOOLONG, name)


def check_new_name(d: OverlayInode, name: bytes) -> None:
    """`check_name`, and EINVAL for a `.wh.` name where the upper holds OCI
    markers: it would read back as a whiteout."""
    check_name(name)
    if d.fs.whiteouts.markers and is_oci_marker(name):
        raise err(errno.EINVAL, name)


async def _upper_whiteout(upper_dir: Inode, name: bytes) -> bool:
    found = await maybe_lookup(upper_dir, name)
    return found is not None and is_whiteout(await found.getattr())


async def create_entry(d: OverlayInode, name: bytes, make: Callable[[Inode], Awaitable[Inode]],
                       *, is_dir: bool) -> OverlayInode:
    """Create `name` in `d` with `make(upper_dir)`, over a whiteout if one is there."""
    d.require_dir()
    check_new_name(d, name)
    async with d.fs.ns_lock:
        if d.removed:
            raise err(errno.ENOENT, name)
        if await lookup_child(d, name) is not None:
            raise err(errno.EEXIST, name)
        await copy_up(d)
        upper_dir = d.upper
        assert upper_dir is not None
        over_whiteout = await _upper_whiteout(upper_dir, name)
        if over_whiteout:
            await upper_dir.unlink(name)
        try:
            new = await make(upper_dir)
            if is_dir and over_whiteout:
                try:
                    await write_format_xattr(new, OPAQUE, b"y")
                except BaseException:
                    await upper_dir.rmdir(name)
                    raise
        except BaseException:
            if over_whiteout:
                await d.fs.whiteouts.make(upper_dir, name)
            raise
        node = d.fs.upper_node(new, await new.getattr(), d, name)
        d.children[name] = node
        d.changed()
        return node


async def link(d: OverlayInode, name: bytes, target: Inode) -> OverlayInode:
    from sandboxfs.overlay.inode import OverlayInode
    d.require_dir()
    check_name(name)
    if not isinstance(target, OverlayInode) or target.fs is not d.fs:
        raise err(errno.EXDEV)
    if target.is_dir:
        raise err(errno.EPERM)
    check_new_name(d, name)
    async with d.fs.ns_lock:
        if d.removed:
            raise err(errno.ENOENT, name)
        if await lookup_child(d, name) is not None:
            raise err(errno.EEXIST, name)
        if not target.aliases:
            raise err(errno.ENOENT)  # as link(2) of an unlinked file
        await copy_up(target)
        await copy_up(d)
        assert d.upper is not None and target.upper is not None
        over_whiteout = await _upper_whiteout(d.upper, name)
        if over_whiteout:
            await d.upper.unlink(name)
        try:
            await d.upper.link(name, target.upper)
        except BaseException:
            if over_whiteout:
                await d.fs.whiteouts.make(d.upper, name)
            raise
        target.add_alias(d, name)
        if target.nlink is not None:
            target.nlink += 1
        d.children[name] = target
        d.changed()
        return target


async def _remove_name(d: OverlayInode, name: bytes, *, is_dir: bool) -> None:
    """Remove `name` from the upper of `d`, leaving a whiteout if a lower shows it."""
    if await lower_has_entry(d, name):
        await copy_up(d)
        assert d.upper is not None
        await d.fs.whiteouts.replace(d.upper, name, is_dir=is_dir)
    else:
        assert d.upper is not None
        if is_dir:
            await d.upper.rmdir(name)
        else:
            await d.upper.unlink(name)


def _forget_name(d: OverlayInode, name: bytes, node: OverlayInode) -> None:
    node.drop_alias(d, name)
    if node.is_dir:
        node.removed = True
        node.changed()
    elif node.nlink is not None:
        node.nlink -= 1
    d.children[name] = None
    d.changed()


async def unlink(d: OverlayInode, name: bytes) -> None:
    d.require_dir()
    async with d.fs.ns_lock:
        node = await lookup_child(d, name)
        if node is None:
            raise err(errno.ENOENT, name)
        if node.is_dir:
            raise err(errno.EISDIR, name)
        await _remove_name(d, name, is_dir=False)
        _forget_name(d, name, node)


async def _require_empty(node: OverlayInode, name: bytes) -> None:
    if await merged_names(node):
        raise err(errno.ENOTEMPTY, name)


async def rmdir(d: OverlayInode, name: bytes) -> None:
    d.require_dir()
    async with d.fs.ns_lock:
        node = await lookup_child(d, name)
        if node is None:
            raise err(errno.ENOENT, name)
        if not node.is_dir:
            raise err(errno.ENOTDIR, name)
        await _require_empty(node, name)
        if node.upper is not None:
            await d.fs.whiteouts.clear(node.upper)
        await _remove_name(d, name, is_dir=True)
        _forget_name(d, name, node)


async def _upper_of(node: OverlayInode, d: OverlayInode, name: bytes) -> None:
    """Copy `node` up and make sure the upper holds it at (d, name)."""
    await copy_up(node)
    await copy_up(d)
    if not node.is_dir and node.lowers:
        await link_alias(node, d, name)


async def _redirect_path(node: OverlayInode) -> bytes | None:
    """For a directory with lower parts about to move: the redirect it needs
    (where those parts are). None for anything else. EXDEV past the length
    overlayfs follows (`mv` then copies, as there)."""
    if not node.is_dir or not await layers(node):
        return None
    path = lower_path(node)
    if len(path) > REDIRECT_MAX or not node.fs.redirect_dir:
        raise err(errno.EXDEV)
    return path


async def _prepare_move(node: OverlayInode, redirect: bytes | None, into: OverlayInode) -> None:
    """Before a copied-up directory moves into `into`: record its redirect,
    or, upper-only, make it opaque when `into` has lower parts to hide."""
    if not node.is_dir:
        return
    assert node.upper is not None
    if redirect is not None:
        await write_format_xattr(node.upper, REDIRECT, redirect)
        node.redirect = redirect
    elif await layers(into) and not await has_opaque_xattr(node.upper):
        await write_format_xattr(node.upper, OPAQUE, b"y")


async def rename(d1: OverlayInode, n1: bytes, new_parent: Inode, n2: bytes,
                 flags: int = 0) -> None:
    from sandboxfs.overlay.inode import OverlayInode
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == (
            RENAME_NOREPLACE | RENAME_EXCHANGE):
        raise err(errno.EINVAL)
    if not isinstance(new_parent, OverlayInode) or new_parent.fs is not d1.fs:
        raise err(errno.EXDEV)
    d2 = new_parent
    d1.require_dir()
    d2.require_dir()
    check_new_name(d2, n2)
    async with d1.fs.ns_lock:
        src = await lookup_child(d1, n1)
        if src is None:
            raise err(errno.ENOENT, n1)
        if d2.removed:
            raise err(errno.ENOENT, n2)
        dst = await lookup_child(d2, n2)
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise err(errno.ENOENT, n2)
            await _exchange(d1, n1, src, d2, n2, dst)
            return
        if src.is_dir and is_ancestor(src, d2):
            raise err(errno.EINVAL)
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise err(errno.EEXIST, n2)
            if dst is src:
                return  # two names of one file: rename(2) does nothing
            if dst.is_dir:
                if not src.is_dir:
                    raise err(errno.EISDIR, n2)
                await _require_empty(dst, n2)
            elif src.is_dir:
                raise err(errno.ENOTDIR, n2)
        redirect = await _redirect_path(src)
        await _upper_of(src, d1, n1)
        await copy_up(d2)
        u1, u2 = d1.upper, d2.upper
        assert u1 is not None and u2 is not None
        # Make the target name free or replaceable in the upper.
        existing = await maybe_lookup(u2, n2)
        removed_whiteout = False
        if existing is not None:
            attr = await existing.getattr()
            if is_whiteout(attr) and src.is_dir:
                await u2.unlink(n2)  # a directory cannot replace a file
                removed_whiteout = True
            elif stat.S_ISDIR(attr.mode):
                await d1.fs.whiteouts.clear(existing)
        await _prepare_move(src, redirect, d2)
        # A whiteout for the old name, made before anything moves.
        pending = await d1.fs.whiteouts.prepare(u1, n1) if await lower_has_entry(d1, n1) \
            else None
        try:
            await u1.rename(n1, u2, n2)
        except BaseException:
            if pending is not None:
                await pending.cancel()
            if removed_whiteout:
                await d1.fs.whiteouts.make(u2, n2)
            raise
        if pending is not None:
            await pending.place()
        if dst is not None:
            _forget_name(d2, n2, dst)
        src.drop_alias(d1, n1)
        src.add_alias(d2, n2)
        if src.is_dir:
            src.aliases = [(d2, n2)]
        d1.children[n1] = None
        d2.children[n2] = src
        d1.changed()
        d2.changed()


async def _exchange(d1: OverlayInode, n1: bytes, src: OverlayInode, d2: OverlayInode,
                    n2: bytes, dst: OverlayInode) -> None:
    if src is dst:
        return
    if src.is_dir and is_ancestor(src, d2) or dst.is_dir and is_ancestor(dst, d1):
        raise err(errno.EINVAL)
    src_redirect = await _redirect_path(src)
    dst_redirect = await _redirect_path(dst)
    await _upper_of(src, d1, n1)
    await _upper_of(dst, d2, n2)
    u1, u2 = d1.upper, d2.upper
    assert u1 is not None and u2 is not None
    await _prepare_move(src, src_redirect, d2)
    await _prepare_move(dst, dst_redirect, d1)
    # Both names stay occupied, so no whiteout is needed.
    await u1.rename(n1, u2, n2, RENAME_EXCHANGE)
    for node, (old_dir, old_name), (new_dir, new_name) in (
            (src, (d1, n1), (d2, n2)), (dst, (d2, n2), (d1, n1))):
        node.drop_alias(old_dir, old_name)
        node.add_alias(new_dir, new_name)
        if node.is_dir:
            node.aliases = [(new_dir, new_name)]
    d1.children[n1] = dst
    d2.children[n2] = src
    d1.changed()
    d2.changed()
