"""The VFS core: the interfaces every sandboxfs filesystem implements.

Layering: nothing in this package (or any filesystem built on it) imports
pyfuse3 or opens a host path. The FUSE adapter (`sandboxfs.fuse_ops`) speaks to
filesystems only through `Inode` and `FileHandle`; the overlay reaches its
layers through the same interfaces, so any filesystem can be a layer and tests
can use tmpfs as both upper and lower.
"""

from sandboxfs.vfs.attr import Attr, Creds, DirEntry, SetAttr, StatFs, now_ns
from sandboxfs.vfs.interfaces import FileHandle, Inode

__all__ = ["Attr", "Creds", "DirEntry", "FileHandle", "Inode", "SetAttr", "StatFs", "now_ns"]
