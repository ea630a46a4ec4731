"""The pod daemon: one FUSE mount showing each container at `MOUNTPOINT/ID`,
and the control socket that adds and removes containers at run time.

The daemon never starts a process or opens a host path after mounting: the
first container's gofer is started before it confines itself, and each
later container's gofer is started by `sandboxfs pod add` (the CLI), which
hands the daemon its sockets over the control socket (SCM_RIGHTS).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import pyfuse3
import trio

from sandboxfs.assemble import gofer_exports
from sandboxfs.checkpoint import Image, ImageError
from sandboxfs.checkpoint.service import Match, match_table, mount_table, write_paused
from sandboxfs.confine import deny_all_host_paths, start_unmount_guard
from sandboxfs.control import server as control
from sandboxfs.daemon import DaemonConfig, fuse_options, raise_fd_limit, stop_on_signal, timeouts_of
from sandboxfs.fuse_loop import init_session, serve_session
from sandboxfs.fuse_ops import CacheTimeouts, FuseOps
from sandboxfs.gofer_proc import GoferProcess
from sandboxfs.mountns import MountedInode
from sandboxfs.plan import Plan
from sandboxfs.pod.pod import Pod
from sandboxfs.readahead import apply_read_ahead, open_read_ahead
from sandboxfs.vfs import Inode

log = logging.getLogger(__name__)


def _timeouts(inode: Inode) -> CacheTimeouts:
    if isinstance(inode, MountedInode):
        return timeouts_of(inode.mount)
    return CacheTimeouts.none()  # the pod's top directory changes with every add/remove


def _forget_entry(name: bytes) -> None:
    try:
        pyfuse3.invalidate_entry_async(pyfuse3.ROOT_INODE, name, ignore_enoent=True)
    except Exception:  # the kernel may already have dropped it
        log.debug("invalidate %r failed", name, exc_info=True)


def _restoring(image: Image | None, cid: str, plan: Plan) -> tuple[Image, Match] | None:
    """What container `cid` restores from a pod checkpoint (matched by the CLI already)."""
    if image is None:
        return None
    for entry in image.header["pod"]["containers"]:
        if entry["id"] == cid:
            return image, match_table(entry["mounts"], plan, prefix=f"{cid}/")
    raise ImageError(f"container {cid!r} is not in the image")


def handlers(pod: Pod, cfg: DaemonConfig, ops: FuseOps) -> dict[str, control.Handler]:
    """The pod's control operations (docs/pods.md)."""

    async def info(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        return {"sandbox_bundle": cfg.sandbox_bundle, "mountpoint": cfg.mountpoint,
                "containers": sorted(pod.containers),
                "rootfs": {cid: c.plan.root.source for cid, c in pod.containers.items()}}

    async def checkpoint(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """The whole pod: every container's memory filesystems and every master."""
        if len(fds) != 1:
            raise ValueError("checkpoint needs the image file's descriptor")
        containers = [{"id": cid, "plan": c.plan.to_json(), "mounts": mount_table(c.plan, c.memory)}
                      for cid, c in pod.containers.items()]
        header = {"meta": request.get("meta", {}),
                  "pod": {"containers": containers, "masters": pod.masters.table()}}
        trees = [(f"{cid}/{i}", fs.root) for cid, c in pod.containers.items()
                 for i, fs in sorted(c.memory.items())]
        trees += [(pod.masters.section(name), fs.root)
                  for name, fs in pod.masters.filesystems.items()]
        return await write_paused(ops.pauser, fds[0], header, trees,
                                  stop=bool(request.get("stop")))

    async def add(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        container_id = str(request["id"])
        plan = Plan.from_json(request["plan"])
        sockets = [socket.socket(fileno=os.dup(fd)) for fd in fds]
        try:
            await pod.add(container_id, plan, sockets)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return {"path": os.path.join(cfg.mountpoint, container_id)}

    async def remove(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        await pod.remove(str(request["id"]))
        return {}

    async def stats(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        return {"fuse": ops.stats(), "inode_numbers": len(pod.inos),
                "masters": {name: fs.used_pages * 4096
                            for name, fs in pod.masters.filesystems.items()},
                "containers": {cid: {"memory_bytes": c.memory_bytes(),
                                     "mounts": len(c.plan.mounts) + 1,
                                     "cache": c.cache_stats()}
                               for cid, c in sorted(pod.containers.items())}}

    return {"info": info, "add": add, "remove": remove, "stats": stats,
            "checkpoint": checkpoint}


async def serve_pod(cfg: DaemonConfig, ready: Callable[[str | None], None]) -> None:
    """Mount the pod with its first container and serve until unmounted."""
    assert cfg.plan is not None and cfg.pod_id is not None and cfg.control_path is not None
    raise_fd_limit()
    gofer = GoferProcess.start(gofer_exports(cfg.plan), log_fd=cfg.log_fd)
    mounted = False
    confined = False
    try:
        listener = control.bind(cfg.control_path)
        async with trio.open_nursery() as nursery:
            pod = Pod(nursery, cfg.upper_size, forget_entry=_forget_entry)
            image = Image.open(cfg.restore_image) if cfg.restore_image else None
            if image is not None:
                await pod.masters.restore(image)
            await pod.add(cfg.pod_id, cfg.plan, gofer.sockets, on_stop=gofer.stop,
                          restore=_restoring(image, cfg.pod_id, cfg.plan))
            for cid, plan, sockets in cfg.pod_extra:
                await pod.add(cid, plan, sockets, restore=_restoring(image, cid, plan))
            ops = FuseOps(pod.root, CacheTimeouts.exclusive(), timeouts_for=_timeouts)
            init_session(ops, cfg.mountpoint, fuse_options(cfg))
            mounted = True
            read_ahead = open_read_ahead(cfg.mountpoint)
            ready(None)
            if cfg.confine:
                start_unmount_guard(cfg.mountpoint, [cfg.state_file, cfg.control_path])
                confined = deny_all_host_paths()
            nursery.start_soon(control.serve, listener, handlers(pod, cfg, ops))
            nursery.start_soon(stop_on_signal, cfg.mountpoint)
            if read_ahead is not None:
                nursery.start_soon(apply_read_ahead, read_ahead)
            await serve_session()
            await pod.close()
            nursery.cancel_scope.cancel()
    except BaseException as exc:
        if not mounted:
            ready(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if mounted:
            pyfuse3.close(unmount=not confined)
        gofer.stop()
