"""The sandboxfs daemon: start the gofer, build the filesystem, serve FUSE.

`serve()` runs inside `trio.run`. It tells its caller that the mount is live
(or why it failed) through the `ready` callback, so the CLI can daemonize and
still exit non-zero with the reason when mounting fails.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import resource
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyfuse3
import trio

from gofer.client import open_client
from sandboxfs.assemble import Built, ExportCache, build_namespace, export_caches, gofer_exports
from sandboxfs.checkpoint import Image
from sandboxfs.checkpoint.service import (
    Match,
    match,
    mount_table,
    restore_memory,
    write_paused,
)
from sandboxfs.confine import deny_all_host_paths, start_unmount_guard
from sandboxfs.control import server as control
from sandboxfs.fuse_loop import init_session, serve_session
from sandboxfs.fuse_ops import CacheTimeouts, FuseOps
from sandboxfs.gofer_proc import Export, GoferProcess
from sandboxfs.idmap import IdMapping
from sandboxfs.mountns import REVALIDATE, UNCACHED, Mount
from sandboxfs.overlay import OverlayFs
from sandboxfs.overlay.changes import upper_changes
from sandboxfs.plan import Plan
from sandboxfs.readahead import apply_read_ahead, open_read_ahead
from sandboxfs.remote import RemoteFs
from sandboxfs.tmpfs import TmpFs
from sandboxfs.vfs import Inode

log = logging.getLogger(__name__)


def default_upper_size() -> int:
    """Half of RAM, as tmpfs defaults to."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


@dataclass(slots=True)
class DaemonConfig:
    """Everything the daemon needs, compiled by the CLI from a bundle or -o options."""

    mountpoint: str
    lowers: list[Export]  # top-most first
    fsname: str = "sandboxfs"
    upper_size: int = field(default_factory=default_upper_size)
    kernel_flags: list[str] = field(default_factory=list)
    log_fd: int | None = None
    confine: bool = True  # landlock the daemon once mounted (see sandboxfs.confine)
    state_file: str | None = None
    plan: Plan | None = None  # a bundle's mount plan; None for plain layers (`lowers`)
    pod_id: str | None = None  # pod mode: the first container's id (see sandboxfs.pod)
    control_path: str | None = None  # the control socket (a pod's, or the mount's own)
    sandbox_bundle: str | None = None  # the pod's sandbox bundle (its hints), for `pod add`
    restore_image: str | None = None  # a checkpoint image to fill the memory filesystems from
    upperdir: str | None = None  # plain layers over an on-disk upper (served read-write)
    # Plain layers: each layer's host st_dev, upper first (None: memory), for
    # inode numbers as overlayfs's xino (see overlay/inomap.py).
    layer_devs: list[int | None] | None = None
    idmap: IdMapping | None = None  # plain layers: owners shifted (sandboxfs/idmap.py)
    redirect_dir: bool = True  # False: lower directories do not move (dev sessions)
    # A pod restored: its other containers (id, plan, gofer sockets), added at start.
    pod_extra: list[tuple[str, Plan, list[socket.socket]]] = field(default_factory=list)


def export_cache(cfg: DaemonConfig, index: int) -> ExportCache:
    """The cache of the `index`th gofer export (the root and layers: exclusive)."""
    if cfg.plan is None:
        return ExportCache()
    return export_caches(cfg.plan)[index]


def timeouts_of(mount: Mount) -> CacheTimeouts:
    """Kernel cache lifetimes for a mount's policy (see ARCHITECTURE.md)."""
    if mount.cache == REVALIDATE:
        return CacheTimeouts(entry=mount.revalidate, attr=mount.revalidate, keep_cache=False)
    if mount.cache == UNCACHED:
        return CacheTimeouts.none()
    return CacheTimeouts.exclusive()


@dataclass(slots=True)
class Served:
    """What the daemon serves: the FUSE operations, and what control requests
    reach: the memory upper of plain layers, or a bundle's built namespace."""

    ops: FuseOps
    upper: Inode | None = None
    built: Built | None = None
    memory: dict[int, TmpFs] = field(default_factory=dict)  # by mount index (checkpoints)


async def build_ops(cfg: DaemonConfig, remotes: list[RemoteFs]) -> Served:
    """The FUSE operations over the sandbox's tree: a bundle's whole mount
    namespace, or plain layers under one memory upper."""
    image = Image.open(cfg.restore_image) if cfg.restore_image else None
    if cfg.plan is None and cfg.upperdir is not None:
        # The last export is the on-disk upper: the overlay writes overlayfs's
        # format into it through the gofer, like any other upper.
        on_disk = remotes[-1].root
        overlay = OverlayFs(on_disk, [remote.root for remote in remotes[:-1]],
                            layer_devs=cfg.layer_devs, upper_markers=True, prefetch=True)
        return Served(FuseOps(overlay.root, CacheTimeouts.exclusive(), idmap=cfg.idmap),
                      upper=on_disk)
    if cfg.plan is None:
        lowers: list[Inode] = [remote.root for remote in remotes]
        upper_fs = TmpFs(size_limit=cfg.upper_size)
        if image is not None:
            await restore_memory(image, Match({0: "0"}), {0: upper_fs.root})
        overlay = OverlayFs(upper_fs.root, lowers, layer_devs=cfg.layer_devs,
                            redirect_dir=cfg.redirect_dir, prefetch=True)
        return Served(FuseOps(overlay.root, CacheTimeouts.exclusive(), idmap=cfg.idmap),
                      upper=upper_fs.root, memory={0: upper_fs})
    built = await build_namespace(cfg.plan, remotes, cfg.upper_size,
                                  restoring=image is not None)
    if image is not None:
        await restore_memory(image, match(image, cfg.plan),
                             {i: fs.root for i, fs in built.memory.items()})
    ns = built.ns
    return Served(FuseOps(ns.root, CacheTimeouts.exclusive(),
                          timeouts_for=lambda inode: timeouts_of(ns.mount_of(inode))),
                  upper=built.memory[0].root, built=built, memory=built.memory)


def mount_handlers(cfg: DaemonConfig, served: Served,
                   remotes: list[RemoteFs]) -> dict[str, control.Handler]:
    """The control operations of a single mount (its socket is in the state directory)."""
    ops = served.ops

    async def info(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        rootfs = cfg.plan.root.source if cfg.plan is not None else cfg.lowers[-1].path
        return {"mountpoint": cfg.mountpoint, "rootfs": rootfs}

    async def checkpoint(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """Write the image to the descriptor sent along, all requests held meanwhile.
        With `stop`, requests stay held: the caller unmounts next."""
        if len(fds) != 1:
            raise ValueError("checkpoint needs the image file's descriptor")
        header = {"mounts": mount_table(cfg.plan, served.memory),
                  "meta": request.get("meta", {})}
        trees = [(str(i), fs.root) for i, fs in sorted(served.memory.items())]
        return await write_paused(ops.pauser, fds[0], header, trees,
                                  stop=bool(request.get("stop")))

    async def stats(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        return {"fuse": ops.stats(), "cache": [r.stats.to_json() for r in remotes],
                "gofer": [dict(r.client.sent) for r in remotes]}

    async def changes(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """The root overlay's upper, entry by entry (dev sandboxes' diff and export)."""
        if served.upper is None:
            raise ValueError("this mount has no memory upper")
        await ops.pauser.pause()
        try:
            found = await upper_changes(served.upper)
        finally:
            ops.pauser.resume()
        return {"changes": [c.to_json() for c in found]}

    return {"stats": stats, "changes": changes, "info": info, "checkpoint": checkpoint}


def fuse_options(cfg: DaemonConfig) -> set[str]:
    opts = {f"fsname={cfg.fsname}", "subtype=sandboxfs", "default_permissions"}
    if os.geteuid() == 0:
        opts.add("allow_other")
    flags = set(cfg.kernel_flags)
    if not flags & {"dev", "nodev"}:
        flags.add("nodev")
    if not flags & {"suid", "nosuid"}:
        flags.add("nosuid")
    return opts | flags


#: Python's cyclic GC thresholds for the daemon (default 700, 10, 10). The daemon
#: keeps several objects per host entry it has seen (inode, attributes, overlay
#: node, reply), hundreds of thousands on a big tree, and the default thresholds
#: traverse them all again and again while a tree is first listed: measured
#: 0.57 s of collections in a cold walk of the 20,000-file bench tree, 0.08 s
#: with these. Young cycles are still collected every 20,000 allocations.
GC_THRESHOLDS = (20_000, 50, 100)


def raise_fd_limit() -> None:
    """Upper files are memfds and lower files donated fds: allow many."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(cfg: DaemonConfig, ready: Callable[[str | None], None]) -> None:
    """Mount and serve until unmounted or told to stop (SIGTERM/SIGINT)."""
    raise_fd_limit()
    gc.set_threshold(*GC_THRESHOLDS)
    exports = gofer_exports(cfg.plan) if cfg.plan is not None else list(cfg.lowers)
    if cfg.plan is None and cfg.upperdir is not None:
        # Device nodes land in the host's upperdir: only on a mount asked to
        # honour them (`-o dev`), as kernel overlayfs would create them.
        devices = "dev" in cfg.kernel_flags and "nodev" not in cfg.kernel_flags
        exports.append(Export(cfg.upperdir, readonly=False, whiteouts=True, devices=devices))
    gofer = GoferProcess.start(exports, log_fd=cfg.log_fd)
    mounted = False
    confined = False
    try:
        async with contextlib.AsyncExitStack() as stack:
            remotes: list[RemoteFs] = []
            for export, sock in zip(exports, gofer.sockets, strict=True):
                client = await stack.enter_async_context(open_client(sock))
                cache = export_cache(cfg, len(remotes))
                remote = await RemoteFs.attach(client, readonly=export.readonly,
                                               policy=cache.policy, window=cache.window)
                stack.callback(remote.close)
                remotes.append(remote)
            served = await build_ops(cfg, remotes)
            listener = control.bind(cfg.control_path) if cfg.control_path else None
            init_session(served.ops, cfg.mountpoint, fuse_options(cfg))
            mounted = True
            read_ahead = open_read_ahead(cfg.mountpoint)
            ready(None)
            if cfg.confine:
                start_unmount_guard(cfg.mountpoint, [cfg.state_file, cfg.control_path])
                confined = deny_all_host_paths()
            async with trio.open_nursery() as nursery:
                if listener is not None:
                    handlers = mount_handlers(cfg, served, remotes)
                    nursery.start_soon(control.serve, listener, handlers)
                nursery.start_soon(stop_on_signal, cfg.mountpoint)
                if read_ahead is not None:
                    nursery.start_soon(apply_read_ahead, read_ahead)
                await serve_session()
                # Unmounted (or told to stop): the gofer goes first, at once.
                # Its descriptors keep the layers' filesystems busy, and a
                # caller that unmounts those right after `umount MNT` (as
                # overlayfs users do) must not meet EBUSY; it has nothing to
                # flush (every write it made was a system call already done).
                gofer.kill()
                for remote in remotes:
                    remote.close()  # the donated fds: they hold the layers too
                nursery.cancel_scope.cancel()
    except BaseException as exc:
        if not mounted:
            ready(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if mounted:
            # A confined daemon may not unmount; its guard detaches the mount.
            pyfuse3.close(unmount=not confined)
        gofer.stop()


async def stop_on_signal(mountpoint: str) -> None:
    """SIGTERM/SIGINT: end the FUSE session so `pyfuse3.main()` returns."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            log.info("signal received: unmounting %s", mountpoint)
            pyfuse3.terminate()
            return
