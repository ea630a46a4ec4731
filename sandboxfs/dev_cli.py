"""Dev sandboxes: run a command over a directory, then see, keep or drop what it did.

    sandboxfs shell [DIR] [--name NAME] [--rw PATH]... [--net none] [-- CMD ...]
    sandboxfs diff NAME [PATH] [--json | --stat]
    sandboxfs commit NAME [PATH ...] [--force]
    sandboxfs export NAME OUT.tar [--gzip]
    sandboxfs drop NAME
    sandboxfs ls

Exit status: 0; 1 when the operation failed (or `commit` found conflicts);
2 for bad input. `shell` exits with the command's own status.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

from sandboxfs import mounts
from sandboxfs.checkpoint_cli import CheckpointError, take_checkpoint
from sandboxfs.control import ControlError
from sandboxfs.devsession import apply as applying
from sandboxfs.devsession import manifest as manifests
from sandboxfs.devsession import shell
from sandboxfs.devsession.changes import Changes, classify, upper_entries
from sandboxfs.devsession.export import export_layer
from sandboxfs.devsession.state import Session, SessionError, all_sessions, default_name
from sandboxfs.progress import terminal_counter


def _say(message: str) -> None:
    print(f"sandboxfs: {message}", file=sys.stderr)


def _progress(what: str) -> Callable[[int, int], None] | None:
    """`progress(files, nbytes)` as commit and export call it, shown on a terminal."""
    show = terminal_counter(what)
    if show is None:
        return None
    return lambda files, nbytes: show(nbytes, files)


def _mounted(session: Session) -> bool:
    return mounts.serving(str(session.mountpoint))


def _ensure_mounted(session: Session, fresh: bool) -> int:
    """The session's daemon, started if needed: with the upper kept at the last
    exit of `shell` when there is one (a daemon that died, a reboot)."""
    if _mounted(session):
        return 0
    if mounts.is_mounted(str(session.mountpoint)):  # its daemon died: clear the stale mount
        mounts.umount(str(session.mountpoint))
    session.mountpoint.mkdir(parents=True, exist_ok=True)
    if fresh or not session.manifest_path.exists():
        manifests.save(session.manifest_path, manifests.record(session.directory))
        session.upper_image.unlink(missing_ok=True)
    session.save()
    image = session.upper_image if session.upper_image.exists() else None
    if image is not None:
        _say(f"session {session.name!r}: restoring its upper from {image}")
    return mounts.mount(mountpoint=str(session.mountpoint), lowers=[session.directory],
                        fsname=f"sandboxfs-session:{session.name}", upper_size=None,
                        kernel_flags=[], foreground=False, log_path=None,
                        restore_image=str(image) if image is not None else None,
                        # diff, commit and export read the upper alone: a moved
                        # directory must be copied there whole (mv does, on EXDEV).
                        redirect_dir=False)


def _keep_upper(session: Session) -> None:
    """Checkpoint the session's upper into its state directory (kept across restarts)."""
    try:
        take_checkpoint(str(session.mountpoint), str(session.upper_image))
    except CheckpointError as exc:
        _say(f"session {session.name!r}: its upper could not be saved: {exc}")


def _shell(argv: Sequence[str]) -> int:
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        command = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser(prog="sandboxfs shell")
    p.add_argument("directory", nargs="?", default=".")
    p.add_argument("--name")
    p.add_argument("--rw", action="append", default=[], metavar="PATH")
    p.add_argument("--net", choices=["none", "host"], default="host")
    args = p.parse_args(argv)
    directory = os.path.realpath(args.directory)
    if not os.path.isdir(directory):
        _say(f"{args.directory}: not a directory")
        return 2
    try:
        name = args.name or default_name(directory)
        try:
            session = Session.load(name)
            fresh = False
            if session.directory != directory:
                _say(f"session {name!r} is of {session.directory}, not {directory}")
                return 2
        except SessionError:
            session = Session.new(name, directory)
            fresh = True
    except SessionError as exc:
        _say(str(exc))
        return 2
    status = _ensure_mounted(session, fresh)
    if status != 0:
        return status
    command = command or [os.environ.get("SHELL", "/bin/sh")]
    status = shell.run(session, command, rw_paths=args.rw, net_none=args.net == "none")
    _keep_upper(session)
    return status


def _load_changes(name: str) -> tuple[Session, Changes]:
    session = Session.load(name)
    if not _mounted(session):
        raise SessionError(f"session {name!r} is not running (its changes are gone)")
    manifest = manifests.load(session.manifest_path)
    return session, classify(upper_entries(session), manifest,
                             lambda path: manifests.current(str(session.mountpoint), path))


def _diff(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs diff")
    p.add_argument("name")
    p.add_argument("path", nargs="?")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true")
    group.add_argument("--stat", action="store_true")
    args = p.parse_args(list(argv))
    try:
        session, changes = _load_changes(args.name)
    except (SessionError, ControlError) as exc:
        _say(str(exc))
        return 1
    if args.path is not None:
        return _file_diff(session, args.path.strip("/"))
    if args.json:
        print(json.dumps(changes.to_json(), indent=2))
        return 0
    for mark, paths in (("A", changes.added), ("M", changes.modified), ("D", changes.deleted)):
        for path in paths:
            if args.stat:
                print(f"{mark} {path}  {_sizes(session, path, mark)}")
            else:
                print(f"{mark} {path}")
    return 0


def _sizes(session: Session, path: str, mark: str) -> str:
    def size(root: str) -> str:
        try:
            return str(os.lstat(os.path.join(root, path)).st_size)
        except FileNotFoundError:
            return "-"
    before = size(session.directory) if mark != "A" else "-"
    after = size(str(session.mountpoint)) if mark != "D" else "-"
    return f"{before} -> {after} bytes"


def _file_diff(session: Session, path: str) -> int:
    def lines(root: str) -> list[str]:
        try:
            with open(os.path.join(root, path), encoding="utf-8") as f:
                return f.readlines()
        except FileNotFoundError:
            return []
        except UnicodeDecodeError:
            raise SessionError(f"{path}: not a text file") from None
    try:
        before, after = lines(session.directory), lines(str(session.mountpoint))
    except SessionError as exc:
        _say(str(exc))
        return 1
    sys.stdout.writelines(difflib.unified_diff(before, after, f"a/{path}", f"b/{path}"))
    return 0


def _commit(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs commit")
    p.add_argument("name")
    p.add_argument("paths", nargs="*")
    p.add_argument("--force", action="store_true",
                   help="apply even paths the host changed since the session began")
    args = p.parse_args(list(argv))
    try:
        session, changes = _load_changes(args.name)
    except (SessionError, ControlError) as exc:
        _say(str(exc))
        return 1
    manifest = manifests.load(session.manifest_path)
    plan = applying.plan_commit(changes, manifest, session.directory, args.paths)
    if plan.conflicts and not args.force:
        _say("changed on the host since the session began (nothing applied; --force to "
             "overwrite):")
        for path in plan.conflicts:
            print(f"C {path}")
        return 1
    done = applying.apply(plan, str(session.mountpoint), session.directory,
                          _progress("commit"))
    # What was applied is now the host's: the manifest follows.
    for path in plan.deletions + plan.writes:
        for rel in [r for r in manifest if r == path or r.startswith(path + "/")]:
            del manifest[rel]
        entry = manifests.current(session.directory, path)
        if entry is not None:
            manifest[path] = entry
    manifests.save(session.manifest_path, manifest)
    print(f"committed {done} paths to {session.directory}", file=sys.stderr)
    return 0


def _export(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs export")
    p.add_argument("name")
    p.add_argument("out")
    p.add_argument("--gzip", action="store_true")
    args = p.parse_args(list(argv))
    try:
        session, changes = _load_changes(args.name)
        count = export_layer(changes.entries, str(session.mountpoint), args.out,
                             gzip=args.gzip, progress=_progress("export"))
    except (SessionError, ControlError, OSError) as exc:
        _say(str(exc))
        return 1
    print(f"exported {count} entries to {args.out}", file=sys.stderr)
    return 0


def _drop(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="sandboxfs drop")
    p.add_argument("name")
    args = p.parse_args(list(argv))
    try:
        session = Session.load(args.name)
    except SessionError as exc:
        _say(str(exc))
        return 1
    if _mounted(session) and mounts.umount(str(session.mountpoint)) != 0:
        return 1
    session.remove_record()
    return 0


def _ls(argv: Sequence[str]) -> int:
    argparse.ArgumentParser(prog="sandboxfs ls").parse_args(list(argv))
    now = time.time()
    for session in all_sessions():
        size = "-"
        if _mounted(session):
            try:
                size = str(sum(e.size for e in upper_entries(session)))
            except ControlError:
                pass
        state = "running" if _mounted(session) else "stopped"
        age = int(now - session.began)
        print(f"{session.name}\t{session.directory}\t{state}\t{size} bytes\t{age}s")
    return 0


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "shell": _shell, "diff": _diff, "commit": _commit, "export": _export,
    "drop": _drop, "ls": _ls,
}
