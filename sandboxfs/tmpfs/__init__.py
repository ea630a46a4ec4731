"""A memory filesystem implementing the VFS `Inode`/`FileHandle` interfaces.

Layering (as gVisor's `fsimpl/tmpfs`, one small module per node kind):

- `filesystem`: `TmpFs`, the instance: inode numbers, the byte and inode
  budget (ENOSPC), statfs.
- `inode`: `TmpInode`, what every node kind shares: attributes, timestamps,
  xattrs, link counting and freeing.
- `directory`: `TmpDir`: names, create/link/unlink/rename with rename(2)'s
  exact rules.
- `regular_file`: `TmpFile` (body in a memfd, created lazily) and its open
  handle `TmpFileHandle`.
- `symlink`, `special`: symlinks; fifos, sockets and device nodes (metadata
  only: the kernel does their I/O).

Everything runs on the one trio thread; no method awaits anything that can
yield, so each operation is atomic with respect to other tasks.
"""

from sandboxfs.tmpfs.directory import TmpDir
from sandboxfs.tmpfs.filesystem import PAGE_SIZE, TmpFs
from sandboxfs.tmpfs.inode import TmpInode
from sandboxfs.tmpfs.regular_file import TmpFile, TmpFileHandle
from sandboxfs.tmpfs.special import TmpSpecial
from sandboxfs.tmpfs.symlink import TmpSymlink

__all__ = ["PAGE_SIZE", "TmpDir", "TmpFile", "TmpFileHandle", "TmpFs", "TmpInode",
           "TmpSpecial", "TmpSymlink"]
