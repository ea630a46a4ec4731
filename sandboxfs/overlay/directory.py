"""Merged directories: which layers a directory has, lookup and readdir.

A name resolves through the layers top-most first: the first layer holding
it decides. A non-directory hides everything below it. A directory merges
with directories of the same name below until an opaque directory, a
non-directory, a whiteout (0/0 device) or an OCI `.wh.NAME` marker (which
applies to the layers below its own). Lookup and readdir follow exactly the
same rules, one name at a time or whole listings at once.

A directory of the upper with a redirect xattr takes its lower parts from
the path the redirect names instead of its own name (renamed directories,
see `namespace.rename`); a lower directory's redirect (an earlier upper used
as a lower) does the same for the layers below it.

Costs: a lower's listing is read once (lowers do not change); a merged
listing is kept until a name in the directory changes; attributes are
asked of each node on every readdir (they change without renames).
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandboxfs.overlay.copy_up import link_alias
from sandboxfs.overlay.inomap import UPPER
from sandboxfs.overlay.whiteout import (
    OCI_OPAQUE_MARKER,
    is_oci_marker,
    is_whiteout,
    maybe_lookup,
    oci_whiteout_for,
    read_redirect,
)
from sandboxfs.vfs import DirEntry, Inode

if TYPE_CHECKING:
    from sandboxfs.overlay.filesystem import OverlayFs
    from sandboxfs.overlay.inode import OverlayInode


def _enoent(name: bytes) -> OSError:
    return OSError(errno.ENOENT, "No such file or directory", name.decode(errors="replace"))


async def layers(d: OverlayInode) -> list[tuple[int, Inode]]:
    """`d`'s lower directories, trimmed at the first opaque one and following
    the redirects of lower directories (found once)."""
    if d.resolved:
        return d.lowers
    lowers = d.lowers
    if d.upper is not None and await d.fs.whiteouts.is_opaque(d.upper):
        lowers = []
    else:
        bottom = len(d.fs.lower_roots)  # nothing lies below that layer
        k = 0
        while k < len(lowers) and lowers[k][0] < bottom:
            layer, directory = lowers[k]
            redirect = await d.fs.lower_redirect(layer, directory)
            below = k < len(lowers) - 1 or redirect is not None
            if below and await d.fs.lower_is_opaque(layer, directory):
                lowers = lowers[:k + 1]
                break
            if redirect is not None:
                parent = d.parent
                path = absolute_redirect(parent, redirect) if parent else redirect
                lowers = lowers[:k + 1] + await lowers_at(d.fs, path, below=layer)
            k += 1
    d.lowers = lowers
    d.resolved = True
    return lowers


def lower_path(node: OverlayInode) -> bytes:
    """Where `node`'s lower parts are, from the root of every lower layer:
    its redirect, else its parent's lower path and its name (b"" for the root)."""
    parts: list[bytes] = []
    while node.redirect is None and node.aliases:
        parent, name = node.aliases[0]
        parts.append(name)
        node = parent
    base = node.redirect or b""
    return base + b"".join(b"/" + part for part in reversed(parts))


def absolute_redirect(parent: OverlayInode, redirect: bytes) -> bytes:
    """A redirect as a path from the layers' roots: a relative one (no
    slash) names a directory beside the one it is on, in `parent`'s lowers."""
    if redirect.startswith(b"/"):
        return redirect
    return lower_path(parent) + b"/" + redirect


async def lowers_at(fs: OverlayFs, path: bytes, *, below: int) -> list[tuple[int, Inode]]:
    """The directories at `path` in every lower layer under layer `below`, top-most
    first, ending at a whiteout or a non-directory on the way (as overlayfs
    follows an absolute redirect)."""
    names = [part for part in path.split(b"/") if part]
    found: list[tuple[int, Inode]] = []
    for i, root in enumerate(fs.lower_roots):
        layer = i + 1
        if layer <= below:
            continue
        directory: Inode | None = root
        for name in names:
            assert directory is not None
            child = await fs.lower_child(layer, directory, name)
            if child is None:
                directory = None
                break
            attr = await child.getattr()
            if is_whiteout(attr) or not stat.S_ISDIR(attr.mode):
                return found
            directory = child
        if directory is not None:
            found.append((layer, directory))
    return found


async def is_merged(d: OverlayInode) -> bool:
    """More than one layer makes up `d` (overlayfs reports nlink 1 for those)."""
    lowers = await layers(d)
    return len(lowers) + (d.upper is not None) > 1


async def _lower_layer_entry(d: OverlayInode, k: int, name: bytes) -> Inode | None:
    layer, directory = d.lowers[k]
    return await d.fs.lower_child(layer, directory, name)


async def _hidden_below(d: OverlayInode, k: int, name: bytes) -> bool:
    """Whether lower `k` of `d` carries an OCI whiteout for `name` (only
    worth asking when a layer lies below it)."""
    if k == len(d.lowers) - 1:
        return False
    layer, directory = d.lowers[k]
    listing = await d.fs.lower_listing(layer, directory)
    return oci_whiteout_for(name) in listing


async def find_child(d: OverlayInode, name: bytes) -> OverlayInode | None:
    """Resolve `name` in `d` through its layers; None when nothing shows."""
    lowers = await layers(d)
    fs = d.fs
    upper_dir: Inode | None = None
    if fs.whiteouts.markers and is_oci_marker(name):
        return None  # the upper's own markers are format, never names
    if d.upper is not None:
        found = await maybe_lookup(d.upper, name)
        if found is not None:
            attr = await found.getattr()
            if is_whiteout(attr):
                return None
            if not stat.S_ISDIR(attr.mode):
                return fs.nondir_node(UPPER, found, attr, d, name,
                                      await fs.upper_origin(found, attr))
            upper_dir = found
            redirect = await read_redirect(found) if fs.lower_roots else None
            if redirect is not None:
                path = absolute_redirect(d, redirect)
                return fs.dir_node(d, name, upper_dir, await lowers_at(fs, path, below=UPPER),
                                   redirect=path)
    candidates: list[tuple[int, Inode]] = []
    if lowers and d.upper is not None and await fs.whiteouts.is_marked(d.upper, name):
        lowers = []  # an OCI marker in the upper hides the name below
    if not is_oci_marker(name):
        for k, (layer, _) in enumerate(lowers):
            found = await _lower_layer_entry(d, k, name)
            if found is not None:
                attr = await found.getattr()
                if is_whiteout(attr):
                    break
                if stat.S_ISDIR(attr.mode):
                    candidates.append((layer, found))
                elif upper_dir is None and not candidates:
                    return fs.nondir_node(layer, found, attr, d, name)
                else:
                    break  # a non-directory ends the merge
            if await _hidden_below(d, k, name):
                break
    if upper_dir is None and not candidates:
        return None
    return fs.dir_node(d, name, upper_dir, candidates)


async def lookup_child(d: OverlayInode, name: bytes) -> OverlayInode | None:
    """`find_child`, remembered in `d.children` (kept exact by every change)."""
    d.require_dir()
    if d.removed:
        return None
    while True:
        if name in d.children:
            return d.children[name]
        generation = d.generation
        node = await find_child(d, name)
        if d.generation == generation:
            # Another lookup may have filled the name meanwhile, with the same answer.
            return d.children.setdefault(name, node)
        # A name changed while we looked: what we found may be stale; look again.
        if node is not None and d.children.get(name) is not node:
            node.drop_alias(d, name)


async def lower_has_entry(d: OverlayInode, name: bytes) -> bool:
    """Whether some lower layer of `d` shows `name` (so removing or moving
    it needs a whiteout in the upper)."""
    lowers = await layers(d)
    if is_oci_marker(name):
        return False
    if lowers and d.upper is not None and await d.fs.whiteouts.is_marked(d.upper, name):
        return False
    for k in range(len(lowers)):
        found = await _lower_layer_entry(d, k, name)
        if found is not None:
            return not is_whiteout(await found.getattr())
        if await _hidden_below(d, k, name):
            return False
    return False


async def lookup(d: OverlayInode, name: bytes) -> OverlayInode:
    node = await lookup_child(d, name)
    if node is None:
        raise _enoent(name)
    if node.upper is not None and node.lowers and not node.is_dir:
        await link_alias(node, d, name)
    return node


async def merged_names(d: OverlayInode) -> list[tuple[bytes, OverlayInode]]:
    """Every visible name of `d` with its node, upper names first, then each
    lower's in its own order (stable while nothing changes)."""
    d.require_dir()
    if d.removed:
        return []
    while d.names is None:
        generation = d.generation
        top, dirs, found = await _merge(d)
        if d.generation != generation:
            continue  # a name changed while the layers were read: read again
        # No await from here to the assignment: the tables stay exact.
        names = _nodes_for(d, top, dirs, found)
        d.names = names
        for name, node in names:
            layer = top[name][0]
            if node.upper is not None and node.lowers and not node.is_dir and layer != UPPER:
                await link_alias(node, d, name)
        return names
    return d.names


Tops = dict[bytes, tuple[int, DirEntry]]
Dirs = dict[bytes, list[tuple[int, Inode]]]


async def _merge(d: OverlayInode) -> tuple[Tops, Dirs, Found]:
    """The top-most entry of every visible name, the directories that merge
    under each directory name, and what else the upper said (`Found`)."""
    lowers = await layers(d)
    fs = d.fs
    closed: set[bytes] = set()  # decided: nothing below counts
    top: Tops = {}
    dirs: Dirs = {}
    redirects: dict[bytes, bytes] = {}
    origins: dict[bytes, int | None] = {}
    if d.upper is not None:
        for e in await d.upper.readdir():
            if is_whiteout(e.attr):
                closed.add(e.name)
                continue
            if fs.whiteouts.markers and is_oci_marker(e.name):
                if e.name != OCI_OPAQUE_MARKER:
                    closed.add(e.name[len(b".wh."):])
                continue
            top[e.name] = (UPPER, e)
            if stat.S_ISDIR(e.attr.mode):
                dirs[e.name] = []
                redirect = await read_redirect(e.inode) if fs.lower_roots else None
                if redirect is not None:
                    path = absolute_redirect(d, redirect)
                    redirects[e.name] = path
                    dirs[e.name] = await lowers_at(fs, path, below=UPPER)
                    closed.add(e.name)  # its lower parts are where the redirect says
            else:
                closed.add(e.name)
                origins[e.name] = await fs.upper_origin(e.inode, e.attr)
    for k, (layer, directory) in enumerate(lowers):
        listing = await fs.lower_listing(layer, directory)
        markers: list[bytes] = []
        for name, e in listing.items():
            if is_oci_marker(name):
                if name != OCI_OPAQUE_MARKER:
                    markers.append(name[len(b".wh."):])
                continue
            if name in closed:
                continue
            is_dir = stat.S_ISDIR(e.attr.mode)
            if name in top:  # a directory above: merge or stop
                if is_dir:
                    dirs[name].append((layer, e.inode))
                else:
                    closed.add(name)
                continue
            if is_whiteout(e.attr):
                closed.add(name)
                continue
            top[name] = (layer, e)
            if is_dir:
                dirs[name] = [(layer, e.inode)]
            else:
                closed.add(name)
        if k < len(lowers) - 1:
            closed.update(markers)
    return top, dirs, Found(redirects, origins)


@dataclass(slots=True)
class Found:
    """What a merge read besides names: the (absolute) redirects of upper
    directories and the origins (`OverlayFs.upper_origin`) of upper files."""

    redirects: dict[bytes, bytes]
    origins: dict[bytes, int | None]


def _nodes_for(d: OverlayInode, top: Tops, dirs: Dirs,
               found: Found) -> list[tuple[bytes, OverlayInode]]:
    fs = d.fs
    result: list[tuple[bytes, OverlayInode]] = []
    for name, (layer, e) in top.items():
        node = d.children.get(name)
        if node is None:
            if name in dirs:
                upper = e.inode if layer == UPPER else None
                node = fs.dir_node(d, name, upper, dirs[name],
                                   redirect=found.redirects.get(name))
            else:
                node = fs.nondir_node(layer, e.inode, e.attr, d, name,
                                      found.origins.get(name))
            d.children[name] = node
        result.append((name, node))
    return result


async def readdir(d: OverlayInode) -> list[DirEntry]:
    return [DirEntry(name, node, await node.getattr())
            for name, node in await merged_names(d)]


def is_ancestor(ancestor: OverlayInode, node: OverlayInode | None) -> bool:
    """Whether `ancestor` is `node` or above it (moving a directory there is EINVAL)."""
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False
