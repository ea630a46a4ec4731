"""`sandboxfs pod ...`: one daemon serving a pod's containers.

    sandboxfs pod start --control SOCKET [--id ID] MOUNTPOINT SANDBOX_BUNDLE
    sandboxfs pod add --control SOCKET ID BUNDLE
    sandboxfs pod remove --control SOCKET ID
    sandboxfs pod list --control SOCKET
    sandboxfs pod stats --control SOCKET
    sandboxfs pod checkpoint --control SOCKET IMAGE [--stop]
    sandboxfs pod restore --control SOCKET IMAGE MOUNTPOINT ID=BUNDLE... [--force]

`start` mounts the sandbox (first) container at MOUNTPOINT/ID (ID defaults
to the bundle directory's name) and returns once it is live. `add` compiles
the container's plan with the sandbox's mount hints, starts the container's
gofer (here, not in the confined daemon) and hands the daemon its sockets.
`umount MOUNTPOINT` stops the whole pod. Exit status as for every command:
0, 1 when the operation failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from sandboxfs import mounts
from sandboxfs.assemble import gofer_exports
from sandboxfs.checkpoint import Image, ImageError
from sandboxfs.checkpoint.service import fingerprint, match_table
from sandboxfs.checkpoint_cli import CheckpointError, take_checkpoint
from sandboxfs.control import ControlError, request
from sandboxfs.gofer_proc import GoferProcess
from sandboxfs.hints import parse_hints
from sandboxfs.mountopts import OptionError, parse_size
from sandboxfs.plan import compile_plan
from sandboxfs.pod.pod import PodError, check_id
from sandboxfs.spec import SpecError, load_bundle


def _say(message: str) -> None:
    print(f"sandboxfs: {message}", file=sys.stderr)


def _start(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs pod start")
    p.add_argument("--control", required=True, help="path of the pod's control socket")
    p.add_argument("--id", help="the first container's id (default: the bundle's name)")
    p.add_argument("--upper-size", help="bound of each container's memory upper")
    p.add_argument("--foreground", "-f", action="store_true")
    p.add_argument("--log")
    p.add_argument("mountpoint")
    p.add_argument("bundle")
    args = p.parse_args(list(argv))
    try:
        bundle = load_bundle(args.bundle)
        plan = compile_plan(bundle)
        upper_size = parse_size(args.upper_size) if args.upper_size else None
        first_id = args.id or os.path.basename(os.path.normpath(args.bundle))
        check_id(first_id)
    except (SpecError, OptionError, PodError) as exc:
        _say(str(exc))
        return 2
    for warning in plan.warnings:
        _say(f"warning: {warning}")
    return mounts.mount(
        mountpoint=args.mountpoint, lowers=[], fsname=f"sandboxfs-pod:{first_id}",
        upper_size=upper_size, kernel_flags=[], foreground=args.foreground,
        log_path=args.log, plan=plan,
        pod=mounts.PodSettings(control_path=os.path.abspath(args.control), first_id=first_id,
                               sandbox_bundle=str(bundle.path)))


def _add(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs pod add")
    p.add_argument("--control", required=True)
    p.add_argument("id")
    p.add_argument("bundle")
    args = p.parse_args(list(argv))
    try:
        check_id(args.id)
        info = request(args.control, {"op": "info"})
        sandbox = load_bundle(info["sandbox_bundle"])
        bundle = load_bundle(args.bundle)
        plan = compile_plan(bundle, hints=parse_hints(sandbox.annotations))
    except (SpecError, PodError) as exc:
        _say(str(exc))
        return 2
    except ControlError as exc:
        _say(str(exc))
        return 1
    for warning in plan.warnings:
        _say(f"warning: {warning}")
    gofer = GoferProcess.start(gofer_exports(plan), die_with_parent=False)
    try:
        reply = request(args.control, {"op": "add", "id": args.id, "plan": plan.to_json()},
                        fds=[s.fileno() for s in gofer.sockets])
    except ControlError as exc:
        _say(str(exc))
        return 1
    finally:
        for sock in gofer.sockets:  # the daemon holds its own copies now
            sock.close()
    print(reply["path"])
    return 0


def _checkpoint(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs pod checkpoint")
    p.add_argument("--control", required=True)
    p.add_argument("image")
    p.add_argument("--stop", action="store_true", help="unmount the pod after")
    args = p.parse_args(list(argv))
    try:
        mountpoint = request(args.control, {"op": "info"})["mountpoint"]
        done = take_checkpoint(mountpoint, args.image, stop=args.stop, control=args.control,
                               show_progress=sys.stderr.isatty())
    except (ControlError, CheckpointError) as exc:
        _say(f"checkpoint failed: {exc}")
        return 1
    print(f"checkpoint: {done['bytes']} bytes, {done['files']} files in {args.image}",
          file=sys.stderr)
    return mounts.umount(mountpoint) if args.stop else 0


def _restore(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs pod restore")
    p.add_argument("--control", required=True)
    p.add_argument("--force", action="store_true", help="accept rootfs trees that changed")
    p.add_argument("--upper-size")
    p.add_argument("image")
    p.add_argument("mountpoint")
    p.add_argument("containers", nargs="+", metavar="ID=BUNDLE",
                   help="every container of the image with its (new) bundle")
    args = p.parse_args(list(argv))
    try:
        bundles = dict(item.split("=", 1) for item in args.containers)
        upper_size = parse_size(args.upper_size) if args.upper_size else None
    except (ValueError, OptionError) as exc:
        _say(f"containers: give ID=BUNDLE ({exc})")
        return 2
    try:
        image = Image.open(args.image)
        entries = image.header.get("pod", {}).get("containers", [])
        if not entries:
            raise ImageError("not a pod checkpoint (use sandboxfs restore)")
        ids = [e["id"] for e in entries]
        if sorted(ids) != sorted(bundles):
            raise ImageError(f"the image holds containers {ids}; give a bundle for each "
                             f"and no other")
        sandbox = load_bundle(bundles[ids[0]])
        hints = parse_hints(sandbox.annotations)
        plans = {}
        fingerprints = image.header.get("meta", {}).get("fingerprints", {})
        for entry in entries:
            cid = entry["id"]
            bundle = sandbox if cid == ids[0] else load_bundle(bundles[cid])
            plans[cid] = compile_plan(bundle, hints=None if cid == ids[0] else hints)
            match_table(entry["mounts"], plans[cid], prefix=f"{cid}/")
            if fingerprints.get(cid) != fingerprint(str(bundle.root_path)) and not args.force:
                raise ImageError(f"container {cid}: its rootfs {bundle.root_path} is not the "
                                 f"tree the checkpoint was taken over (--force to accept it)")
    except SpecError as exc:
        _say(str(exc))
        return 2
    except (ImageError, OSError) as exc:
        _say(f"restore refused, nothing mounted: {exc}")
        return 1
    extra = []
    for cid in ids[1:]:
        gofer = GoferProcess.start(gofer_exports(plans[cid]), die_with_parent=False)
        extra.append((cid, plans[cid], gofer.sockets))
    try:
        return mounts.mount(
            mountpoint=args.mountpoint, lowers=[], fsname=f"sandboxfs-pod:{ids[0]}",
            upper_size=upper_size, kernel_flags=[], foreground=False, log_path=None,
            plan=plans[ids[0]], restore_image=os.path.abspath(args.image),
            pod=mounts.PodSettings(control_path=os.path.abspath(args.control),
                                   first_id=ids[0], sandbox_bundle=str(sandbox.path),
                                   extra=tuple(extra)))
    finally:
        for _, _, sockets in extra:  # the daemon has its own copies now
            for sock in sockets:
                sock.close()


def _simple(op: str, argv: Sequence[str], with_id: bool) -> int:
    p = argparse.ArgumentParser(prog=f"sandboxfs pod {op}")
    p.add_argument("--control", required=True)
    if with_id:
        p.add_argument("id")
    args = p.parse_args(list(argv))
    message = {"op": op, **({"id": args.id} if with_id else {})}
    try:
        reply = request(args.control, message)
    except ControlError as exc:
        _say(str(exc))
        return 1
    reply.pop("ok", None)
    if reply:
        print(json.dumps(reply, indent=2, sort_keys=True))
    return 0


def cmd_pod(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb == "start":
        return _start(rest)
    if verb == "add":
        return _add(rest)
    if verb == "remove":
        return _simple("remove", rest, with_id=True)
    if verb == "list":
        return _simple("info", rest, with_id=False)
    if verb == "stats":
        return _simple("stats", rest, with_id=False)
    if verb == "checkpoint":
        return _checkpoint(rest)
    if verb == "restore":
        return _restore(rest)
    _say(f"pod: unknown command {verb!r} "
         "(start, add, remove, list, stats, checkpoint, restore)")
    return 2
