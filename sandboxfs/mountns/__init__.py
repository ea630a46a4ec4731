"""A sandbox's mount namespace: mounts at paths, stub directories, flags.

`MountNamespace(root_mount)` then `add(mount)` for each mount of the plan
(parents before children) gives `root`, an `Inode` whose walk crosses into
mounted filesystems at their destinations. Modules:

- `mount`: `Mount`, one mounted filesystem and the flags enforced on it.
- `tree`: the mount-point tree (path components leading to mounts).
- `stub`: read-only stub directories for missing mount points.
- `inode`: `MountedInode`, the wrapper that crosses mounts and enforces flags.
- `namespace`: `MountNamespace`, inode numbering across mounts.
"""

from sandboxfs.mountns.inode import MountedInode
from sandboxfs.mountns.mount import EXCLUSIVE, REVALIDATE, UNCACHED, Mount
from sandboxfs.mountns.namespace import MOUNT_INO_BASE, InoSpace, MountNamespace
from sandboxfs.mountns.stub import StubDir
from sandboxfs.mountns.tree import MountPathError

__all__ = ["EXCLUSIVE", "MOUNT_INO_BASE", "REVALIDATE", "UNCACHED", "InoSpace", "Mount",
           "MountNamespace", "MountPathError", "MountedInode", "StubDir"]
