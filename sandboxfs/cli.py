"""The `sandboxfs` command line.

    sandboxfs mount BUNDLE MOUNTPOINT [--foreground] [--upper-size SIZE] [-o OPTS]
    sandboxfs umount MOUNTPOINT
    sandboxfs stats MOUNTPOINT
    sandboxfs run BUNDLE [--upper-size SIZE] [-- ARGS ...]
    sandboxfs checkpoint MOUNTPOINT IMAGE [--stop]
    sandboxfs restore IMAGE BUNDLE MOUNTPOINT [--force]
    sandboxfs plan BUNDLE [--pod-bundle SANDBOX_BUNDLE] [--compact]
    sandboxfs annotate BUNDLE [--kubelet-pods-dir DIR] [--dry-run]
    sandboxfs pod start|add|remove|list|stats --control SOCKET ...
    sandboxfs shell|diff|commit|export|drop|ls ...   (dev sandboxes; see docs/cli.md)
    sandboxfs SOURCE MOUNTPOINT -o lowerdir=A:B[,upper=memory][,...]   (mount.fuse3 form)

Exit status: 0 on success, 1 when the operation failed, 2 for bad input
(a malformed bundle or option), with one line on stderr saying which field.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from sandboxfs import mounts, runner
from sandboxfs.checkpoint_cli import cmd_checkpoint, cmd_restore
from sandboxfs.control import ControlError, request
from sandboxfs.dev_cli import COMMANDS as DEV_COMMANDS
from sandboxfs.mountopts import OptionError, parse_mount_options, parse_size
from sandboxfs.plan import compile_plan
from sandboxfs.plan_cli import cmd_annotate, cmd_plan
from sandboxfs.pod_cli import cmd_pod
from sandboxfs.spec import Process, SpecError, load_bundle

SUBCOMMANDS = ("mount", "umount", "unmount", "plan", "annotate")


def _die(status: int, message: str) -> int:
    print(f"sandboxfs: {message}", file=sys.stderr)
    return status


def _mount_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sandboxfs mount",
                                description="Mount an OCI bundle's rootfs as a memory overlay.")
    p.add_argument("bundle")
    p.add_argument("mountpoint")
    p.add_argument("--foreground", "-f", action="store_true",
                   help="stay attached instead of daemonizing")
    p.add_argument("--upper-size", help="bound of the memory upper (default: half of RAM)")
    p.add_argument("--log", help="file the daemon logs to (default: none)")
    p.add_argument("-o", dest="options", action="append", default=[],
                   help="extra mount options (dev, suid, ...)")
    return p


def _cmd_mount(argv: Sequence[str]) -> int:
    args = _mount_parser().parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        plan = compile_plan(bundle)
        opts = parse_mount_options(args.options)
        upper_size = parse_size(args.upper_size) if args.upper_size else opts.upper_size
    except (SpecError, OptionError) as exc:
        return _die(2, str(exc))
    if opts.lowerdirs:
        return _die(2, "-o lowerdir= is for the SOURCE MOUNTPOINT form, not with a bundle")
    for warning in plan.warnings:
        print(f"sandboxfs: warning: {warning}", file=sys.stderr)
    return mounts.mount(
        plan=plan,
        mountpoint=args.mountpoint,
        lowers=[str(bundle.root_path)],
        fsname=f"sandboxfs:{bundle.path}",
        upper_size=upper_size,
        kernel_flags=opts.kernel_flags,
        foreground=args.foreground,
        log_path=args.log,
    )


def _cmd_umount(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs umount",
                                description="Unmount and stop the daemon and its gofer.")
    p.add_argument("mountpoint")
    args = p.parse_args(argv)
    return mounts.umount(args.mountpoint)


def _cmd_run(argv: Sequence[str]) -> int:
    argv = list(argv)
    override: list[str] = []
    if "--" in argv:
        override = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser(prog="sandboxfs run",
                                description="Mount a bundle and run its process inside.")
    p.add_argument("bundle")
    p.add_argument("--upper-size", help="bound of the memory upper (default: half of RAM)")
    args = p.parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        plan = compile_plan(bundle)
        upper_size = parse_size(args.upper_size) if args.upper_size else None
        if bundle.process is None and not override:
            raise SpecError("process", "missing: nothing to run")
    except (SpecError, OptionError) as exc:
        return _die(2, str(exc))
    for warning in plan.warnings:
        print(f"sandboxfs: warning: {warning}", file=sys.stderr)
    process = bundle.process or Process(args=tuple(override))
    if override:
        process = runner.override(process, override)
    return runner.run(plan, process, fsname=f"sandboxfs:{bundle.path}", upper_size=upper_size)


def _cmd_stats(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs stats",
                                description="Print a mount's request and cache counters as JSON.")
    p.add_argument("mountpoint")
    args = p.parse_args(argv)
    path = mounts.control_path(os.path.realpath(args.mountpoint))
    try:
        reply = request(str(path), {"op": "stats"})
    except ControlError as exc:
        return _die(1, str(exc))
    reply.pop("ok", None)
    print(json.dumps(reply, indent=2, sort_keys=True))
    return 0


def _check_upperdir(upperdir: str | None, workdir: str | None,
                    lowerdirs: Sequence[str]) -> str | None:
    """What overlayfs would refuse about upperdir/workdir, or None."""
    if upperdir is None:
        return "workdir= needs an upperdir=" if workdir is not None else None
    if not os.path.isdir(upperdir):
        return f"upperdir: {upperdir} is not a directory"
    if workdir is None:
        return "upperdir= needs a workdir= (on the same filesystem), as overlayfs does"
    if not os.path.isdir(workdir):
        return f"workdir: {workdir} is not a directory"
    if os.stat(upperdir).st_dev != os.stat(workdir).st_dev:
        return f"workdir: {workdir} is not on the filesystem of upperdir {upperdir}"
    up = os.path.realpath(upperdir)
    for layer in lowerdirs:
        low = os.path.realpath(layer)
        if up == low or up.startswith(low + "/") or low.startswith(up + "/"):
            return f"upperdir: {upperdir} overlaps lowerdir {layer}"
    return None


def _cmd_fuse_form(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="sandboxfs",
        description="Mount layers as mount.fuse3 calls us: sandboxfs SOURCE MOUNTPOINT -o OPTS")
    p.add_argument("source")
    p.add_argument("mountpoint")
    p.add_argument("-o", dest="options", action="append", default=[])
    p.add_argument("--foreground", "-f", action="store_true")
    p.add_argument("--log")
    args = p.parse_args(argv)
    try:
        opts = parse_mount_options(args.options)
    except OptionError as exc:
        return _die(2, str(exc))
    if not opts.lowerdirs:
        return _die(2, "-o lowerdir=DIR[:DIR...] is required")
    for layer in opts.lowerdirs:
        if not os.path.isdir(layer):
            return _die(2, f"lowerdir: {layer} is not a directory")
    problem = _check_upperdir(opts.upperdir, opts.workdir, opts.lowerdirs)
    if problem is not None:
        return _die(2, problem)
    return mounts.mount(
        upperdir=os.path.abspath(opts.upperdir) if opts.upperdir else None,
        mountpoint=args.mountpoint,
        lowers=[os.path.abspath(d) for d in opts.lowerdirs],
        fsname=opts.fsname or args.source,
        upper_size=opts.upper_size,
        kernel_flags=opts.kernel_flags,
        foreground=args.foreground,
        log_path=args.log,
        idmap=opts.idmapping(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "mount":
        return _cmd_mount(rest)
    if command in ("umount", "unmount"):
        return _cmd_umount(rest)
    if command == "stats":
        return _cmd_stats(rest)
    if command == "run":
        return _cmd_run(rest)
    if command == "checkpoint":
        return cmd_checkpoint(rest)
    if command == "restore":
        return cmd_restore(rest)
    if command == "plan":
        return cmd_plan(rest)
    if command == "annotate":
        return cmd_annotate(rest)
    if command == "pod":
        return cmd_pod(rest)
    if command in DEV_COMMANDS:
        return DEV_COMMANDS[command](rest)
    return _cmd_fuse_form(argv)


if __name__ == "__main__":
    sys.exit(main())
