"""`gofer serve`: the command line of the gofer process.

    gofer serve --root DIR [--ro] [--whiteouts] [--fd N] [--root DIR ...]
                [--listen unix:PATH | --listen tcp:127.0.0.1:PORT ...]
                [--allow-devices] [--die-with-parent]

`--ro` and `--fd` apply to the `--root` before them. Each `--fd` (a connected
stream socket inherited from the parent, e.g. one end of a socketpair) serves
its own root. Each `--listen` serves every root; the attach name picks one
(its path; "" or "/" when there is only one). TCP is loopback only: the gofer
has no authentication.

Order of start-up matters: roots are opened and listeners bound *before*
landlock confines the process to the roots, since neither would be possible
after. Exit status: 0 on SIGTERM/SIGINT, or when every --fd connection was
closed by the peer and there is no listener (so a dead sandboxfs daemon never
leaves a gofer behind); 2 on a bad command line.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import resource
import signal
import socket
import stat
import sys
from dataclasses import dataclass

import trio

from gofer.host import Export, restrict_to_exports
from gofer.private_mounts import leave_host_mounts
from gofer.server import serve_listener, serve_transport
from gofer.transport import ListenAddress, Transport, describe

log = logging.getLogger("gofer")
PR_SET_PDEATHSIG = 1


@dataclass
class _RootArg:
    path: str
    readonly: bool = False
    whiteouts: bool = False
    fd: int | None = None


class _RootAction(argparse.Action):
    """--root starts a group; --ro, --whiteouts and --fd modify the latest group."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        roots: list[_RootArg] = namespace.roots
        if option_string == "--root":
            roots.append(_RootArg(str(values)))
            return
        if not roots:
            parser.error(f"{option_string} must follow a --root")
        if option_string == "--ro":
            roots[-1].readonly = True
        elif option_string == "--whiteouts":
            roots[-1].whiteouts = True
        else:
            if roots[-1].fd is not None:
                parser.error("one --fd per --root")
            try:
                roots[-1].fd = int(str(values))
            except ValueError:
                parser.error(f"--fd {values}: not a number")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gofer", description="Serve host trees over 9P2000.L.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve one or more roots")
    s.set_defaults(roots=[])
    s.add_argument("--root", action=_RootAction, metavar="DIR", help="a tree to serve")
    s.add_argument("--ro", action=_RootAction, nargs=0, help="the previous root is read-only")
    s.add_argument("--whiteouts", action=_RootAction, nargs=0,
                   help="the previous root is an overlay upper: it may hold 0/0 character "
                        "devices (overlayfs whiteouts), and no other device node")
    s.add_argument("--fd", action=_RootAction, metavar="N",
                   help="serve the previous root on inherited socket fd N")
    s.add_argument("--listen", action="append", default=[], metavar="ADDR",
                   help="unix:PATH or tcp:127.0.0.1:PORT (serves every root)")
    s.add_argument("--allow-devices", action="store_true",
                   help="open device nodes, fifos and sockets for I/O, create device nodes")
    s.add_argument("--die-with-parent", action="store_true",
                   help="get SIGKILL when the parent process dies")
    s.add_argument("--no-landlock", action="store_true", help=argparse.SUPPRESS)
    s.add_argument("-v", "--verbose", action="store_true", help="log every connection event")
    return p


def _fail(msg: str) -> int:
    print(f"gofer: {msg}", file=sys.stderr)
    return 2


def _raise_fd_limit() -> None:
    """Every fid holds an O_PATH descriptor: allow as many as the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(argv: list[str] | None = None) -> int:
    """Parse, set up, confine and serve; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="gofer[%(process)d] %(levelname)s %(message)s")
    roots: list[_RootArg] = args.roots
    if not roots:
        return _fail("nothing to serve: give --root DIR")
    _raise_fd_limit()
    try:
        addrs = [ListenAddress.parse(a) for a in args.listen]
    except ValueError as exc:
        return _fail(str(exc))
    if not addrs and any(r.fd is None for r in roots):
        return _fail("a --root without --fd needs a --listen address")
    fd_socks: list[tuple[socket.socket, Export]] = []
    exports: list[Export] = []
    leave_host_mounts()  # before any export is opened (private_mounts.py)
    try:
        for r in roots:
            try:
                ex = Export(r.path, readonly=r.readonly, allow_devices=args.allow_devices,
                            allow_whiteouts=r.whiteouts)
            except OSError as exc:
                return _fail(f"--root {r.path}: {exc.strerror}")
            exports.append(ex)
            if r.fd is not None:
                try:
                    if not stat.S_ISSOCK(os.fstat(r.fd).st_mode):
                        return _fail(f"--fd {r.fd}: not a socket")
                except OSError:
                    return _fail(f"--fd {r.fd}: not an open file descriptor")
                fd_socks.append((socket.socket(fileno=r.fd), ex))
        listeners = []
        for a in addrs:
            try:
                listeners.append(a.bind())
            except OSError as exc:
                return _fail(f"--listen: {exc}")
        if args.die_with_parent:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if not args.no_landlock:
            restrict_to_exports(exports)
        trio.run(_serve, fd_socks, listeners, exports)
    finally:
        for ex in exports:
            ex.close()
    return 0


async def _serve(fd_socks: list[tuple[socket.socket, Export]],
                 listeners: list[socket.socket], exports: list[Export]) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(_stop_on_signal, nursery.cancel_scope)
        for lsock in listeners:  # "ready" only once signals stop us cleanly
            print(f"listening on {describe(lsock)}", flush=True)
        for lsock in listeners:
            lsock.setblocking(False)
            nursery.start_soon(serve_listener, lsock, exports)
        if fd_socks:
            async with trio.open_nursery() as conns:
                for sock, ex in fd_socks:
                    conns.start_soon(serve_transport, Transport.from_stdlib(sock), [ex])
            if not listeners:  # every parent connection is gone: nothing left to do
                nursery.cancel_scope.cancel()


async def _stop_on_signal(scope: trio.CancelScope,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("stopping on signal %d", signum)
            scope.cancel()
            return


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run(argv))
