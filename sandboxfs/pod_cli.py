"""`sandboxfs pod ...`: one daemon serving a pod's containers.

    sandboxfs pod start --control SOCKET [--id ID] MOUNTPOINT SANDBOX_BUNDLE
    sandboxfs pod add --control SOCKET ID BUNDLE
    sandboxfs pod remove --control SOCKET ID
    sandboxfs pod list --control SOCKET
    sandboxfs pod stats --control SOCKET

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
    _say(f"pod: unknown command {verb!r} (start, add, remove, list, stats)")
    return 2
