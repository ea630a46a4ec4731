"""`OverlayFs`: the layers, the node tables, and the caches of lower listings.

Layers are numbered: 0 is the upper, lower `i` (top-most first, as passed)
is layer `i + 1`. A layer is reached only through the VFS `Inode` and
`FileHandle` interfaces, and a lower only through reading calls (lookup,
readdir, getattr, readlink, getxattr, listxattr, open O_RDONLY).

Node identity: a non-directory is one `OverlayInode` per underlying inode,
keyed by (layer, inode number) in `nodes`; every name that reaches the same
lower inode (hard links) or the same upper inode gets the same node. A copy
made by copy-up is entered under its upper key too. Directories are kept by
their parent's `children` table (they have one name).
"""

from __future__ import annotations

import stat
from collections.abc import Sequence

import trio

from sandboxfs.overlay.inode import OverlayInode
from sandboxfs.overlay.inomap import ROOT_INO, UPPER, InoAllocator, layer_fsids
from sandboxfs.overlay.prefetch import PER_LISTING, ListingPrefetch
from sandboxfs.overlay.whiteout import (
    OCI_OPAQUE_MARKER,
    ORIGIN_INO,
    Whiteouts,
    has_opaque_xattr,
    maybe_lookup,
    read_format_xattr,
    read_redirect,
)
from sandboxfs.vfs import Attr, DirEntry, Inode


class OverlayFs:
    """An upper directory over read-only lower directories, top-most first.

    Lock order: `ns_lock` (one per filesystem: every change of a name) →
    `OverlayInode.lock` of a file being copied up → the locks of directories
    being copied up, each taken and released on its own, parents first.
    Copy-up never takes `ns_lock`, so namespace operations may copy up.
    """

    def __init__(self, upper: Inode, lowers: list[Inode], *,
                 layer_devs: Sequence[int | None] | None = None,
                 redirect_dir: bool = True, upper_markers: bool = False,
                 prefetch: bool = False) -> None:
        """`layer_devs`: the host st_dev of every layer, upper first (None for
        a memory upper), for inode numbers as overlayfs's xino; without it
        lowers keep their host numbers as long as they do not collide.
        `redirect_dir=False`: a directory with lower parts cannot be renamed
        (EXDEV, `mv` copies), so the upper alone holds every change (what a
        dev session's diff and commit read). `upper_markers`: the upper may
        hold OCI `.wh.` markers (an on-disk upper whose gofer cannot mknod
        whiteouts); names starting with `.wh.` are then reserved. `prefetch`:
        read the listings of lower subdirectories ahead of a walk
        (`overlay/prefetch.py`)."""
        self.redirect_dir = redirect_dir
        self.whiteouts = Whiteouts(markers=upper_markers)
        self.upper_root = upper
        self.lower_roots = list(lowers)
        self.inos = InoAllocator(layer_fsids(layer_devs) if layer_devs is not None else None)
        #: Non-directory nodes by (layer, inode number in that layer).
        self.nodes: dict[tuple[int, int], OverlayInode] = {}
        #: Lower listings by (layer, inode number): lowers never change.
        self._listings: dict[tuple[int, int], dict[bytes, DirEntry]] = {}
        self._opaque: dict[tuple[int, int], bool] = {}
        self._redirects: dict[tuple[int, int], bytes | None] = {}
        #: Listings being read now, so a second reader waits instead of asking again.
        self._reading: dict[tuple[int, int], trio.Event] = {}
        self._looked_ahead: set[tuple[int, int]] = set()
        self.prefetch = ListingPrefetch(self._read_ahead) if prefetch else None
        #: Protects the merged namespace: held by every operation that adds,
        #: removes or moves a name, across its check and its change.
        self.ns_lock = trio.Lock()
        self.root = OverlayInode(self, stat.S_IFDIR, ROOT_INO, upper=upper,
                                 lowers=[(i + 1, low) for i, low in enumerate(lowers)])

    # -- lower caches ------------------------------------------------------

    async def lower_listing(self, layer: int, directory: Inode, *,
                            ahead: bool = True) -> dict[bytes, DirEntry]:
        """A lower directory's entries by name (markers included), read once.
        `ahead`: the first time it is asked for so, its first subdirectories'
        are read too, in the background (`prefetch`): one level ahead of
        whoever walks, never further."""
        key = (layer, directory.ino)
        listing = await self._listing(key, directory)
        if ahead and self.prefetch is not None and key not in self._looked_ahead:
            self._looked_ahead.add(key)
            self._offer_subdirectories(layer, listing)
        return listing

    async def _listing(self, key: tuple[int, int], directory: Inode) -> dict[bytes, DirEntry]:
        while True:
            listing = self._listings.get(key)
            if listing is not None:
                return listing
            reading = self._reading.get(key)
            if reading is None:
                break
            await reading.wait()  # a prefetch has it in flight (if it fails, read it here)
        done = self._reading[key] = trio.Event()
        try:
            listing = {e.name: e for e in await directory.readdir()}
            self._listings[key] = listing
        finally:
            del self._reading[key]
            done.set()
        return listing

    async def _read_ahead(self, layer: int, directory: Inode) -> None:
        await self.lower_listing(layer, directory, ahead=False)

    def _offer_subdirectories(self, layer: int, listing: dict[bytes, DirEntry]) -> None:
        assert self.prefetch is not None
        offered = 0
        for entry in listing.values():
            if offered == PER_LISTING:
                return
            key = (layer, entry.inode.ino)
            if stat.S_ISDIR(entry.attr.mode) and key not in self._listings \
                    and key not in self._reading:
                self.prefetch.offer(layer, entry.inode)
                offered += 1

    def has_listing(self, layer: int, directory: Inode) -> bool:
        return (layer, directory.ino) in self._listings

    async def lower_child(self, layer: int, directory: Inode, name: bytes) -> Inode | None:
        """`name` in a lower directory (from its listing when read), or None."""
        listing = self._listings.get((layer, directory.ino))
        if listing is not None:
            entry = listing.get(name)
            return None if entry is None else entry.inode
        return await maybe_lookup(directory, name)

    async def lower_redirect(self, layer: int, directory: Inode) -> bytes | None:
        """A lower directory's redirect (an earlier upper's rename), read once."""
        key = (layer, directory.ino)
        if key not in self._redirects:
            self._redirects[key] = await read_redirect(directory)
        return self._redirects[key]

    async def lower_is_opaque(self, layer: int, directory: Inode) -> bool:
        """Opaque by the OCI marker or by overlayfs's xattr (a former upper)."""
        key = (layer, directory.ino)
        opaque = self._opaque.get(key)
        if opaque is None:
            listing = await self.lower_listing(layer, directory)
            opaque = OCI_OPAQUE_MARKER in listing or await has_opaque_xattr(directory)
            self._opaque[key] = opaque
        return opaque

    async def upper_origin(self, upper: Inode, attr: Attr) -> int | None:
        """The number an upper file met for the first time should have: the
        one its copy-up recorded, else its own composed one."""
        if self.inos.known((UPPER, attr.ino)):
            return None  # decided already
        recorded = await read_format_xattr(upper, ORIGIN_INO)
        if recorded is not None and recorded.isdigit():
            return int(recorded)
        return self.inos.natural(UPPER, attr.ino)

    # -- nodes -------------------------------------------------------------

    def nondir_node(self, layer: int, inode: Inode, attr: Attr, parent: OverlayInode,
                    name: bytes, origin: int | None = None) -> OverlayInode:
        """The one node of a non-directory met at (parent, name) in `layer`;
        for the upper, `origin` is what `upper_origin` said."""
        key = (layer, attr.ino)
        node = self.nodes.get(key)
        if node is None:
            if layer == UPPER:
                node = OverlayInode(self, stat.S_IFMT(attr.mode), self.inos.grant(key, origin),
                                    upper=inode)
            else:
                node = OverlayInode(self, stat.S_IFMT(attr.mode),
                                    self.inos.grant_natural(layer, attr.ino),
                                    lowers=[(layer, inode)], nlink=attr.nlink)
            self.nodes[key] = node
        node.add_alias(parent, name)
        return node

    def dir_node(self, parent: OverlayInode, name: bytes, upper: Inode | None,
                 lowers: list[tuple[int, Inode]], *,
                 redirect: bytes | None = None) -> OverlayInode:
        """A directory node: its upper part (if any), its lower candidates
        (trimmed at the first opaque one when first needed), and the absolute
        redirect they were found by, if any."""
        if lowers:
            layer, top = lowers[0]
            ino = self.inos.grant_natural(layer, top.ino)
        else:
            assert upper is not None
            ino = self.inos.grant_natural(UPPER, upper.ino)
        node = OverlayInode(self, stat.S_IFDIR, ino, upper=upper, lowers=lowers)
        node.redirect = redirect
        node.add_alias(parent, name)
        return node

    def upper_node(self, upper: Inode, attr: Attr, parent: OverlayInode,
                   name: bytes) -> OverlayInode:
        """The node of an entry just created in the upper."""
        if stat.S_ISDIR(attr.mode):
            node = self.dir_node(parent, name, upper, [])
            node.mark_resolved()
            return node
        return self.nondir_node(UPPER, upper, attr, parent, name,
                                self.inos.natural(UPPER, attr.ino))

    def copied_up(self, node: OverlayInode, upper: Inode) -> None:
        """`node` now has `upper`: later meetings of that upper inode find it."""
        key = (UPPER, upper.ino)
        self.inos.alias(key, node.ino)
        if not node.is_dir:
            self.nodes[key] = node
