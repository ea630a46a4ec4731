"""Round-trip latency of Tgetattr: our client against our gofer and against diod.

    python -m gofer.bench_latency [DIR] [-n N]

Not a test: it prints microseconds per sequential Tgetattr (median of 5 runs
of N calls) for our gofer over a socketpair, our gofer over loopback TCP, and
diod over loopback TCP (if installed), all in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import trio

from gofer.client import open_client


async def _measure(sock: socket.socket, aname: bytes, n: int) -> float:
    async with open_client(sock) as c:
        root, _ = await c.attach(aname)
        for _ in range(200):
            await c.getattr(root)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                await c.getattr(root)
            runs.append((time.perf_counter() - t0) / n * 1e6)
        return statistics.median(runs)


def _wait_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?")
    ap.add_argument("-n", type=int, default=3000)
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ours, theirs = socket.socketpair()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gofer", "serve", "--root", root, "--fd",
             str(theirs.fileno())], pass_fds=[theirs.fileno()]))
        theirs.close()
        print(f"gofer, unix socketpair: {trio.run(_measure, ours, b'', args.n):7.1f} us")
        p = subprocess.Popen([sys.executable, "-m", "gofer", "serve", "--root", root,
                              "--listen", "tcp:127.0.0.1:0"], stdout=subprocess.PIPE)
        procs.append(p)
        assert p.stdout is not None
        port = int(p.stdout.readline().decode().strip().rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        print(f"gofer, loopback TCP:    {trio.run(_measure, sock, b'', args.n):7.1f} us")
        if shutil.which("diod"):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                dport = s.getsockname()[1]
            procs.append(subprocess.Popen(
                ["diod", "-f", "-n", "-N", "-l", f"127.0.0.1:{dport}", "-e", root],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait_port(dport)
            sock = socket.create_connection(("127.0.0.1", dport))
            print(f"diod, loopback TCP:     "
                  f"{trio.run(_measure, sock, root.encode(), args.n):7.1f} us")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


if __name__ == "__main__":
    main()
