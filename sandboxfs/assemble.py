"""From a compiled plan to a mount namespace: which host trees the gofer
serves, and which filesystem each mount of the plan becomes.

The daemon calls `gofer_exports` before starting the gofer (one export, so
one socket, per gofer-backed mount, root first, as runsc's io-fds), then
`build_namespace` with the `RemoteFs` attached on each socket, in the same
order. Nothing here touches a host path: bind sources are only names handed
to the gofer.

What each plan type becomes:

- `9p` (the root, bind mounts): the root is a memory overlay over its
  gofer's tree; a directory bind is the host tree itself (read-write unless
  `ro`, through the gofer); a file bind gets a memory overlay of its own
  unless `ro`, so the container may write it and the host file stays.
- `tmpfs`: a memory filesystem with `size`, `nr_inodes`, `mode`, `uid`, `gid`.
- `devtmpfs` (`/dev`): a small memory filesystem holding `sandboxfs.devtree`.
- `proc`, `sysfs`, `devpts`: an empty read-only directory, the mount point
  where a runtime mounts the kernel's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from sandboxfs.devtree import populate_dev
from sandboxfs.gofer_proc import Export
from sandboxfs.mountns import InoSpace, Mount, MountNamespace, StubDir
from sandboxfs.overlay import OverlayFs
from sandboxfs.overlay.single_file import FileOverlay
from sandboxfs.plan import Plan
from sandboxfs.plan.model import DEVPTS, DEVTMPFS, GOFER, PROC, SYSFS, TMPFS, MountInfo
from sandboxfs.remote import CachePolicy, RemoteFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Creds, Inode

#: Bound of `/dev`'s memory filesystem: it holds device names and small files.
DEV_SIZE = 1 << 20
#: Bound of a file bind's private upper.
FILE_OVERLAY_SIZE = 64 << 20
PLACEHOLDER_TYPES = frozenset({PROC, SYSFS, DEVPTS})


class UnsupportedMount(ValueError):
    """A plan mount type this daemon cannot serve (the plan should not hold one)."""


def gofer_exports(plan: Plan) -> list[Export]:
    """The host trees to serve, root first, then each gofer-backed mount in plan order.

    A file bind with an overlay is exported read-only: its writes stay in memory.
    """
    exports = [Export(plan.root.source, readonly=True)]
    for info in plan.mounts:
        if info.type == GOFER:
            exports.append(Export(info.source, readonly=info.readonly or info.overlay))
    return exports


@dataclass(frozen=True, slots=True)
class ExportCache:
    """How the daemon caches one export: its policy and revalidation window."""

    policy: CachePolicy = CachePolicy.EXCLUSIVE
    window: float = 1.0


def export_caches(plan: Plan) -> list[ExportCache]:
    """The cache of each export of `gofer_exports(plan)`, in order."""
    return [ExportCache()] + [ExportCache(CachePolicy(info.cache), info.revalidate or 1.0)
                              for info in plan.mounts if info.type == GOFER]


class Masters(Protocol):
    """Where a pod keeps its shared masters (see `sandboxfs.pod`)."""

    def master(self, info: MountInfo) -> tuple[Inode, str]:
        """The root of the master serving hinted mount `info`, and its share key."""
        ...


@dataclass(slots=True)
class Built:
    """A namespace and the memory filesystems it made, by mount index (0: the
    root's upper): released on removal, written by a checkpoint."""

    ns: MountNamespace
    memory: dict[int, TmpFs] = field(default_factory=dict)
    remotes: dict[str, RemoteFs] = field(default_factory=dict)  # by destination

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Each gofer-backed mount's cache counters, by destination."""
        return {dest: remote.stats.to_json() for dest, remote in self.remotes.items()}


async def build_namespace(plan: Plan, remotes: list[RemoteFs], upper_size: int, *,
                          inos: InoSpace | None = None, own_root_inos: bool = True,
                          masters: Masters | None = None, restoring: bool = False) -> Built:
    """The namespace of `plan`; `remotes` are attached to `gofer_exports(plan)` in order.

    In a pod, `inos` is the pod's, `own_root_inos` is True only for its first
    container, and tmpfs mounts served by a pod hint use the pod's `masters`.
    `restoring`: memory filesystems are left empty (a checkpoint fills them).
    """
    remote_iter = iter(remotes)
    root_upper = TmpFs(size_limit=upper_size)
    overlay = OverlayFs(root_upper.root, [next(remote_iter).root], prefetch=True)
    built = Built(MountNamespace(_mount(plan.root, 0, overlay.root, readonly=False),
                                 inos=inos, own_root_inos=own_root_inos), {0: root_upper},
                  {"/": remotes[0]})
    for index, info in enumerate(plan.mounts, start=1):
        share_key = None
        if info.type == TMPFS and info.hint is not None and masters is not None:
            root, share_key = masters.master(info)
        else:
            root = await _filesystem(info, index, built, remote_iter, restoring)
        built.ns.add(_mount(info, index, root, share_key=share_key))
    return built


async def _filesystem(info: MountInfo, index: int, built: Built,
                      remotes: Iterator[RemoteFs], restoring: bool = False) -> Inode:
    ns = built.ns
    data = dict(info.data)
    if info.type == GOFER:
        remote = next(remotes)
        built.remotes[info.destination] = remote
        if info.overlay:
            upper = TmpFs(size_limit=FILE_OVERLAY_SIZE)
            built.memory[index] = upper
            return FileOverlay(remote.root, upper.root)
        return remote.root
    if info.type == TMPFS:
        fs = tmpfs_of(info)
        built.memory[index] = fs
        return fs.root
    if info.type == DEVTMPFS:
        dev = TmpFs(size_limit=data.get("size") or DEV_SIZE, root_mode=data.get("mode", 0o755))
        built.memory[index] = dev
        if not restoring:
            await populate_dev(dev.root)
        return dev.root
    if info.type in PLACEHOLDER_TYPES:
        return StubDir(ns.fresh_ino())
    raise UnsupportedMount(f"{info.destination}: type {info.type!r} cannot be served")


def tmpfs_of(info: MountInfo) -> TmpFs:
    """A memory filesystem with a tmpfs mount's `size`, `nr_inodes`, `mode`, `uid`, `gid`."""
    data = dict(info.data)
    return TmpFs(size_limit=data.get("size") or None,
                 inode_limit=data.get("nr_inodes") or None,
                 root_mode=data.get("mode", 0o1777),
                 root_creds=Creds(uid=data.get("uid", 0), gid=data.get("gid", 0)))


def _mount(info: MountInfo, index: int, root: Inode, *, readonly: bool | None = None,
           share_key: str | None = None) -> Mount:
    return Mount(
        index=index,
        destination=info.destination,
        root=root,
        fstype=info.type,
        readonly=info.readonly if readonly is None else readonly,
        nosuid="nosuid" in info.flags,
        nodev="nodev" in info.flags,
        noexec="noexec" in info.flags,
        cache=info.cache,
        revalidate=info.revalidate or 1.0,
        share_key=share_key,
    )
