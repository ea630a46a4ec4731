"""`sandboxfs checkpoint` and `sandboxfs restore`.

    sandboxfs checkpoint MOUNTPOINT IMAGE [--stop]
    sandboxfs restore IMAGE BUNDLE MOUNTPOINT [--force] [--upper-size SIZE]

`checkpoint` opens a temporary file beside IMAGE and hands its descriptor to
the daemon, which writes the image while every request waits; the file is
then fsynced and renamed over IMAGE, so a crash leaves the previous image as
it was. With `--stop` the mount is unmounted after, with nothing written in
between. `restore` verifies the whole image first (a bad one is refused
before anything is mounted), matches its mounts with the bundle's plan,
checks the rootfs fingerprint (`--force` accepts a changed rootfs) and
mounts with every memory filesystem as it was. Exit status: 0; 1 when the
operation failed (an image refused, a mount unmatched); 2 for bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence

from sandboxfs import mounts
from sandboxfs.checkpoint import Image, ImageError
from sandboxfs.checkpoint.service import fingerprint, match
from sandboxfs.control import ControlError, request
from sandboxfs.mountopts import OptionError, parse_size
from sandboxfs.plan import compile_plan
from sandboxfs.spec import SpecError, load_bundle


def _say(message: str) -> None:
    print(f"sandboxfs: {message}", file=sys.stderr)


def _watch_size(fd: int, done: threading.Event, what: str) -> None:
    """On a terminal, show the bytes written so far until `done`."""
    while not done.wait(0.2):
        print(f"\r{what}: {os.fstat(fd).st_size} bytes", end="", file=sys.stderr)


class CheckpointError(RuntimeError):
    """The checkpoint was not taken; the previous image is as it was."""


def take_checkpoint(mountpoint: str, image: str, *, stop: bool = False,
                    show_progress: bool = False, control: str | None = None) -> dict[str, int]:
    """Have the daemon of `mountpoint` (or of the pod at `control`) write `image`
    atomically; returns bytes and files."""
    sock = control or str(mounts.control_path(mountpoint))
    image = os.path.abspath(image)
    tmp = f"{image}.tmp-{os.getpid()}"
    try:
        info = request(sock, {"op": "info"})
        rootfs = info["rootfs"]
        meta: dict[str, object] = {"rootfs": rootfs, "taken": time.time()}
        if isinstance(rootfs, dict):  # a pod: one rootfs per container
            meta["fingerprints"] = {cid: fingerprint(path) for cid, path in rootfs.items()}
        else:
            meta["fingerprint"] = fingerprint(rootfs)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except (ControlError, OSError) as exc:
        raise CheckpointError(str(exc)) from None
    done = threading.Event()
    watcher = None
    if show_progress:
        watcher = threading.Thread(target=_watch_size, args=(fd, done, "checkpoint"),
                                   daemon=True)
        watcher.start()
    try:
        reply = request(sock, {"op": "checkpoint", "meta": meta, "stop": stop}, fds=[fd],
                        timeout=None)
        os.fsync(fd)
    except (ControlError, OSError) as exc:
        os.close(fd)
        os.unlink(tmp)
        raise CheckpointError(f"{image} left as it was: {exc}") from None
    finally:
        done.set()
        if watcher is not None:
            watcher.join()
            print(file=sys.stderr)
    os.close(fd)
    os.rename(tmp, image)
    dir_fd = os.open(os.path.dirname(image), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {"bytes": int(reply["bytes"]), "files": int(reply["files"])}


def cmd_checkpoint(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs checkpoint")
    p.add_argument("mountpoint")
    p.add_argument("image")
    p.add_argument("--stop", action="store_true", help="unmount after the checkpoint")
    args = p.parse_args(list(argv))
    mountpoint = os.path.realpath(args.mountpoint)
    try:
        done = take_checkpoint(mountpoint, args.image, stop=args.stop,
                               show_progress=sys.stderr.isatty())
    except CheckpointError as exc:
        _say(f"checkpoint failed: {exc}")
        return 1
    print(f"checkpoint: {done['bytes']} bytes, {done['files']} files in {args.image}",
          file=sys.stderr)
    if args.stop:
        return mounts.umount(mountpoint)
    return 0


def cmd_restore(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs restore")
    p.add_argument("image")
    p.add_argument("bundle")
    p.add_argument("mountpoint")
    p.add_argument("--force", action="store_true", help="accept a rootfs that changed")
    p.add_argument("--upper-size")
    args = p.parse_args(list(argv))
    try:
        bundle = load_bundle(args.bundle)
        plan = compile_plan(bundle)
        upper_size = parse_size(args.upper_size) if args.upper_size else None
    except (SpecError, OptionError) as exc:
        _say(str(exc))
        return 2
    try:
        image = Image.open(args.image)
        match(image, plan)
        recorded = image.header.get("meta", {}).get("fingerprint")
        if recorded != fingerprint(str(bundle.root_path)) and not args.force:
            raise ImageError(f"the rootfs {bundle.root_path} is not the tree the checkpoint "
                             f"was taken over (--force to accept it)")
    except (ImageError, OSError) as exc:
        _say(f"restore refused, nothing mounted: {exc}")
        return 1
    return mounts.mount(mountpoint=args.mountpoint, lowers=[str(bundle.root_path)],
                        fsname=f"sandboxfs:{bundle.path}", upper_size=upper_size,
                        kernel_flags=[], foreground=False, log_path=None, plan=plan,
                        restore_image=os.path.abspath(args.image))
