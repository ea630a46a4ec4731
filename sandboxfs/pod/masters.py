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
from sandboxfs.checkpoint import Image
from sandboxfs.plan.model import MountInfo
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode


class PodMasters:
    """Masters by hint name, made on first use and kept for the pod's life."""

    def __init__(self) -> None:
        self.filesystems: dict[str, TmpFs] = {}
        self.infos: dict[str, MountInfo] = {}  # the mount each master was made for

    def section(self, name: str) -> str:
        """The checkpoint section of master `name`."""
        return f"master/{name}"

    def master(self, info: MountInfo) -> tuple[Inode, str]:
        assert info.hint is not None
        fs = self.filesystems.get(info.hint)
        if fs is None:
            fs = self.filesystems[info.hint] = tmpfs_of(info)
            self.infos[info.hint] = info
        return fs.root, f"pod-master:{info.hint}"

    def table(self) -> dict[str, dict[str, object]]:
        """The masters for a checkpoint's header: the mount each was made for."""
        return {name: info.to_json() for name, info in self.infos.items()}

    async def restore(self, image: Image) -> None:
        """Make every master of a checkpoint, with its contents, before any container."""
        for name, info_json in image.header.get("pod", {}).get("masters", {}).items():
            info = MountInfo.from_json(info_json)
            fs = self.filesystems[name] = tmpfs_of(info)
            self.infos[name] = info
            await image.restore_tree(self.section(name), fs.root)

    def close(self) -> None:
        for fs in self.filesystems.values():
            fs.close()
