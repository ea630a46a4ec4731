"""`Pod`: the containers one daemon serves under one FUSE mount.

Each container is its own mount namespace (its plan, its gofer sockets, its
memory upper) shown at `MOUNTPOINT/ID`. A container lives in a task of its
own, because its gofer clients are trio context managers that must be
entered and left by one task: `add` starts the task and returns once the
namespace is built; `remove` tells it to stop and waits until everything it
held (upper, gofer clients and sockets, memory filesystems) is released.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from gofer.client import open_client
from sandboxfs.assemble import build_namespace, export_caches, gofer_exports
from sandboxfs.checkpoint import Image
from sandboxfs.checkpoint.service import Match, restore_memory
from sandboxfs.mountns import InoSpace, MountedInode
from sandboxfs.plan import Plan
from sandboxfs.pod.masters import PodMasters
from sandboxfs.pod.root import PodRoot
from sandboxfs.remote import RemoteFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode
from sandboxfs.vfs.attr import now_ns


class PodError(ValueError):
    """A request the pod cannot take (a duplicate or unknown id, a bad name)."""


def check_id(container_id: str) -> None:
    if not container_id or container_id in (".", "..") or "/" in container_id \
            or "\0" in container_id or len(container_id.encode()) > 255:
        raise PodError(f"container id {container_id!r}: not a valid file name")


@dataclass(eq=False)
class Container:
    id: str
    plan: Plan
    root: MountedInode | None = None
    memory_bytes: Callable[[], int] = lambda: 0
    cache_stats: Callable[[], dict[str, dict[str, int]]] = dict
    memory: dict[int, TmpFs] = field(default_factory=dict)  # by mount index (checkpoints)
    stop: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)
    on_stop: list[Callable[[], None]] = field(default_factory=list)


class Pod:
    """Containers by id, the pod's masters and its inode space."""

    def __init__(self, nursery: trio.Nursery, upper_size: int,
                 forget_entry: Callable[[bytes], None] = lambda name: None) -> None:
        self._nursery = nursery
        self._upper_size = upper_size
        self._forget_entry = forget_entry
        self.inos = InoSpace()
        self.masters = PodMasters()
        self.containers: dict[str, Container] = {}
        self.root = PodRoot(self._roots)

    def _roots(self) -> dict[str, Inode]:
        return {cid: c.root for cid, c in self.containers.items() if c.root is not None}

    async def add(self, container_id: str, plan: Plan, sockets: list[socket.socket],
                  on_stop: Callable[[], None] | None = None,
                  restore: tuple[Image, Match] | None = None) -> Container:
        """Build `container_id`'s namespace over its gofer `sockets` (one per export);
        with `restore`, its memory filesystems come from that checkpoint."""
        check_id(container_id)
        if container_id in self.containers:
            raise PodError(f"container {container_id!r} already exists")
        if len(sockets) != len(gofer_exports(plan)):
            raise PodError(f"container {container_id!r}: {len(sockets)} gofer sockets for "
                           f"{len(gofer_exports(plan))} exports")
        container = Container(container_id, plan)
        if on_stop is not None:
            container.on_stop.append(on_stop)
        self.containers[container_id] = container
        try:
            await self._nursery.start(self._run, container, sockets, restore)
        except BaseException:
            self.containers.pop(container_id, None)
            raise
        self.root.mtime_ns = now_ns()
        return container

    async def _run(self, container: Container, sockets: list[socket.socket],
                   restore: tuple[Image, Match] | None,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                for sock in sockets:
                    stack.callback(sock.close)
                remotes: list[RemoteFs] = []
                caches = export_caches(container.plan)
                for sock in sockets:
                    client = await stack.enter_async_context(open_client(sock))
                    export = gofer_exports(container.plan)[len(remotes)]
                    cache = caches[len(remotes)]
                    remote = await RemoteFs.attach(client, readonly=export.readonly,
                                                   policy=cache.policy, window=cache.window)
                    stack.callback(remote.close)
                    remotes.append(remote)
                built = await build_namespace(container.plan, remotes, self._upper_size,
                                              inos=self.inos,
                                              own_root_inos=len(self.containers) == 1,
                                              masters=self.masters,
                                              restoring=restore is not None)
                if restore is not None:
                    await restore_memory(restore[0], restore[1],
                                         {i: fs.root for i, fs in built.memory.items()})
                container.memory = built.memory
                for fs in built.memory.values():
                    stack.callback(fs.close)
                container.root = built.ns.root
                container.memory_bytes = lambda: sum(
                    fs.used_pages * 4096 for fs in built.memory.values())
                container.cache_stats = built.cache_stats
                task_status.started()
                await container.stop.wait()
        finally:
            for callback in container.on_stop:
                callback()
            container.done.set()

    async def remove(self, container_id: str) -> None:
        """Stop showing the container and release all it held."""
        container = self.containers.pop(container_id, None)
        if container is None:
            raise PodError(f"no container {container_id!r} in this pod")
        self.root.mtime_ns = now_ns()
        self._forget_entry(container_id.encode(errors="surrogateescape"))
        container.stop.set()
        await container.done.wait()

    async def close(self) -> None:
        for container_id in list(self.containers):
            await self.remove(container_id)
        self.masters.close()
