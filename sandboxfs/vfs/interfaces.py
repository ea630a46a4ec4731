"""The two interfaces that join a filesystem to the VFS: `Inode` and `FileHandle`.

Errors: every method reports failure by raising `OSError` with the errno the
matching system call would give (`OSError(errno.ENOENT, ...)`); the FUSE
adapter turns it into the reply. Any other exception is a bug; the adapter
maps it to EIO and logs it, so one bad request never kills the daemon.

Names are `bytes`, one path component each: never empty, never `.` or `..`,
never containing `/` or NUL (the kernel guarantees this for FUSE requests;
filesystems may assert it).

Permission checks are not done here: the kernel does them from the attributes
(`default_permissions`). Filesystems do enforce what is not a permission:
EROFS on a read-only filesystem, ENOTEMPTY, EEXIST, ENOTDIR, EISDIR, EXDEV,
ENOSPC, EMLINK, EINVAL for a rename into a descendant.
"""

from __future__ import annotations

from typing import Protocol

from sandboxfs.vfs.attr import Attr, Creds, DirEntry, SetAttr, StatFs


class FileHandle(Protocol):
    """An open file. Positions are explicit: no shared offset exists."""

    async def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`; fewer only at end of file."""
        ...

    async def write(self, offset: int, data: bytes) -> int:
        """Write `data` at `offset`; returns bytes written (short only on ENOSPC,
        and then at least one byte, else the call raises ENOSPC). EBADF when the
        handle was opened read-only."""
        ...

    async def flush(self) -> None:
        """Called on each close(2) of a descriptor sharing this handle."""
        ...

    async def fsync(self, datasync: bool) -> None:
        ...

    async def release(self) -> None:
        """The last reference is gone; free what the handle holds."""
        ...

    def fileno(self) -> int | None:
        """A kernel fd holding the same bytes (memfd or donated host fd), for
        in-kernel copies such as copy-up; None when there is none."""
        ...


class Inode(Protocol):
    """A file, directory, symlink or special file of some filesystem.

    The object stays valid while anyone holds it; after its last link is
    removed it keeps working for open handles (as an unlinked file does).
    """

    @property
    def ino(self) -> int:
        """Same as `getattr().ino`; stable for the life of the mount."""
        ...

    async def getattr(self) -> Attr:
        ...

    async def setattr(self, changes: SetAttr) -> Attr:
        """Apply `changes` and return the new attributes. `size` on a directory
        is EISDIR; EROFS on a read-only filesystem. ctime is updated."""
        ...

    # -- directories -------------------------------------------------------

    async def lookup(self, name: bytes) -> Inode:
        """The child called `name`. ENOENT if absent, ENOTDIR if self is not a
        directory."""
        ...

    async def readdir(self) -> list[DirEntry]:
        """Every entry of the directory except `.` and `..`, each with its
        inode and attributes (one snapshot; order stable between calls while
        the directory is unchanged)."""
        ...

    async def create(self, name: bytes, mode: int, creds: Creds) -> Inode:
        """Create a regular file (mode holds permission bits, may hold S_IFREG).
        EEXIST if the name exists."""
        ...

    async def mkdir(self, name: bytes, mode: int, creds: Creds) -> Inode:
        ...

    async def mknod(self, name: bytes, mode: int, rdev: int, creds: Creds) -> Inode:
        """mode carries the file type: S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK or
        S_IFREG."""
        ...

    async def symlink(self, name: bytes, target: bytes, creds: Creds) -> Inode:
        ...

    async def link(self, name: bytes, target: Inode) -> Inode:
        """A new name for `target` (not a directory: EPERM) in this directory.
        EXDEV if `target` belongs to another filesystem. Returns `target` (the
        same inode, nlink raised)."""
        ...

    async def unlink(self, name: bytes) -> None:
        """Remove a non-directory entry (EISDIR for a directory)."""
        ...

    async def rmdir(self, name: bytes) -> None:
        """Remove an empty directory (ENOTEMPTY, ENOTDIR)."""
        ...

    async def rename(self, name: bytes, new_parent: Inode, new_name: bytes,
                     flags: int = 0) -> None:
        """rename(2)/renameat2(2). flags: 0, RENAME_NOREPLACE (1) or
        RENAME_EXCHANGE (2); RENAME_WHITEOUT is EINVAL. EXDEV if new_parent is
        on another filesystem."""
        ...

    # -- files and links ---------------------------------------------------

    async def open(self, flags: int) -> FileHandle:
        """Open for I/O. `flags` as open(2) (O_ACCMODE bits, O_TRUNC,
        O_APPEND); O_TRUNC is applied here. EISDIR for directories."""
        ...

    async def readlink(self) -> bytes:
        """EINVAL if not a symlink."""
        ...

    # -- extended attributes -----------------------------------------------

    async def getxattr(self, name: bytes) -> bytes:
        """ENODATA if absent."""
        ...

    async def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        """flags: XATTR_CREATE (1, EEXIST if present), XATTR_REPLACE (2,
        ENODATA if absent)."""
        ...

    async def listxattr(self) -> list[bytes]:
        ...

    async def removexattr(self, name: bytes) -> None:
        """ENODATA if absent."""
        ...

    # -- the filesystem ----------------------------------------------------

    async def statfs(self) -> StatFs:
        ...
