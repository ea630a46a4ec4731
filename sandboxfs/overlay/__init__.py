"""An upper filesystem over read-only lowers, with kernel overlayfs's semantics.

`OverlayFs(upper_root, [lower_root, ...])` (lowers top-most first) gives
`root`, the merged root directory, an `Inode` like any other. Layers are
reached only through the VFS interfaces, so any filesystem can be one; the
upper is written in overlayfs's own format (0/0 whiteouts, the
`trusted.overlay.opaque` xattr) and lowers may carry OCI `.wh.` markers.
See `docs/overlay-semantics.md` for the rules and the deliberate differences.

Modules, as gVisor's `fsimpl/overlay`:

- `filesystem`: `OverlayFs`: layers, node tables, lower listing caches, the
  lock order.
- `inode`: `OverlayInode`: attributes, xattrs, open, and the entry points.
- `directory`: layer resolution, lookup, merged readdir.
- `namespace`: create, link, unlink, rmdir, rename.
- `copy_up`: copying a lower node into the upper.
- `whiteout`: whiteouts, opaque directories, OCI markers.
- `inomap`: inode numbers (a lower file keeps its own).
- `regular_file`: the handle of a lower file opened for reading.
"""

from sandboxfs.overlay.filesystem import OverlayFs
from sandboxfs.overlay.inode import OverlayInode
from sandboxfs.overlay.inomap import HIGH_BASE, ROOT_INO, UPPER

__all__ = ["HIGH_BASE", "ROOT_INO", "UPPER", "OverlayFs", "OverlayInode"]
