"""`TmpSpecial`: fifos, sockets, character and block devices.

Only metadata lives here. The kernel does their I/O itself (a fifo opened on
a FUSE mount is a kernel pipe; device nodes reach their driver), so `open`
is never meant to reach this node and answers ENXIO.
"""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

from sandboxfs.tmpfs.inode import TmpInode

if TYPE_CHECKING:
    from sandboxfs.tmpfs.filesystem import TmpFs

SPECIAL_TYPES = (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK)


class TmpSpecial(TmpInode):
    def __init__(self, fs: TmpFs, mode: int, rdev: int, uid: int, gid: int) -> None:
        assert stat.S_IFMT(mode) in SPECIAL_TYPES, oct(mode)
        devices = stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        super().__init__(fs, mode, uid, gid, rdev if devices else 0)
