"""A pod's shared masters: one memory filesystem per tmpfs mount hint.

A hint with share `pod` or `container` is mounted once per pod; every
container whose spec mounts its source gets the same master, so what one
container writes the others see at once, as the same inode (the master's
share key numbers it alike in every namespace). The plan has already checked
each container's options against the hint's; the master is made from the
first user's mount data, which are the hint's own.
"""

from __future__ import annotations

from sandboxfs.assemble import tmpfs_of
from sandboxfs.plan.model import MountInfo
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode


class PodMasters:
    """Masters by hint name, made on first use and kept for the pod's life."""

    def __init__(self) -> None:
        self.filesystems: dict[str, TmpFs] = {}

    def master(self, info: MountInfo) -> tuple[Inode, str]:
        assert info.hint is not None
        fs = self.filesystems.get(info.hint)
        if fs is None:
            fs = self.filesystems[info.hint] = tmpfs_of(info)
        return fs.root, f"pod-master:{info.hint}"

    def close(self) -> None:
        for fs in self.filesystems.values():
            fs.close()
