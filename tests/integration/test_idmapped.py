"""Id-mapped mounts (`uidmapping=`/`gidmapping=`, `uidmap=`/`gidmap=`, squash):
owners shifted between the layers and the kernel, both ways, with a real
user namespace looking through the mount."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mounting import mounted_layers

MAP = "uidmapping=0:100000:65536,gidmap=0:100000:65536"
AS_CONTAINER_ROOT = ["setpriv", "--reuid=100000", "--regid=100000", "--clear-groups"]


@pytest.fixture
def public() -> Iterator[Path]:
    """Layers and a mount point other users may reach (pytest's tmp is 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="sandboxfs-idmap-"))
    parent.chmod(0o755)
    lower, upper, work = parent / "lower", parent / "upper", parent / "work"
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "rootfile").write_text("root's\n")
    (lower / "userfile").write_text("user 1's\n")
    os.chown(lower / "userfile", 1, 1)
    (lower / "alien").write_text("owned by an id the map leaves out\n")
    os.chown(lower / "alien", 70000, 70000)
    (lower / "etc").mkdir()
    (lower / "etc" / "shadow").write_text("secret\n")
    (lower / "etc" / "shadow").chmod(0o600)
    try:
        yield parent
    finally:
        shutil.rmtree(parent)


def owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def test_owners_shifted_both_ways(public: Path) -> None:
    upper = public / "upper"
    options = f"{MAP},upperdir={upper},workdir={public / 'work'}"
    with mounted_layers(public / "m", public / "lower", options=options) as m:
        assert owner(m / "rootfile") == (100000, 100000)
        assert owner(m / "userfile") == (100001, 100001)
        assert owner(m / "alien") == (65534, 65534)  # the overflow id, as the kernel shows
        assert owner(m) == (100000, 100000)
        # The container's root (host 100000) owns its files: it writes root's
        # files and reads root's 0600 file, with the kernel checking permissions.
        run = subprocess.run([*AS_CONTAINER_ROOT, "sh", "-c",
                              f"cat {m}/etc/shadow && echo more >> {m}/rootfile && "
                              f"mkdir {m}/made && echo new > {m}/made/new"],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "secret\n"
        assert owner(m / "made" / "new") == (100000, 100000)
        os.chown(m / "userfile", 100005, 100006)
        assert owner(m / "userfile") == (100005, 100006)
        # Host root is outside the map: nothing can be stored for it.
        with pytest.raises(OSError) as exc:
            os.chown(m / "rootfile", 0, 0)
        assert exc.value.errno == errno.EOVERFLOW
        with pytest.raises(OSError) as exc:
            (m / "by-host-root").write_text("x")
        assert exc.value.errno == errno.EOVERFLOW
    # On disk, the container's own ids: no chown of anything but what changed.
    assert owner(upper / "made" / "new") == (0, 0)
    assert owner(upper / "rootfile") == (0, 0)
    assert owner(upper / "userfile") == (5, 6)
    assert owner(public / "lower" / "userfile") == (1, 1)


#: Owners as a process in a new user namespace mapping 0..65535 to host
#: 100000.. sees them (the map written by its root parent, as a runtime does).
IN_USERNS = """
import ctypes, os, sys
r1, w1 = os.pipe()
r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
        os._exit(3)
    os.write(w1, b"u")
    os.read(r2, 1)
    for path in sys.argv[1:]:
        st = os.lstat(path)
        print(f"{st.st_uid}:{st.st_gid}")
    os._exit(0)
os.read(r1, 1)
for name, text in (("uid_map", "0 100000 65536"), ("setgroups", "deny"),
                   ("gid_map", "0 100000 65536")):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(text)
os.write(w2, b"m")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_user_namespace_sees_its_own_ids(public: Path) -> None:
    with mounted_layers(public / "m", public / "lower", options=MAP) as m:
        inside = subprocess.run(
            ["python3", "-c", IN_USERNS, str(m / "rootfile"), str(m / "userfile"),
             str(m / "alien"), str(public / "lower" / "rootfile")],
            capture_output=True, text=True)
        assert inside.returncode == 0, inside.stderr
        # Host root's own file, seen from the namespace, is unmapped: the contrast.
        assert inside.stdout.split() == ["0:0", "1:1", "65534:65534", "65534:65534"]


def test_squash_to_root(public: Path) -> None:
    with mounted_layers(public / "m", public / "lower", options="squash_to_root") as m:
        assert {owner(p) for p in m.rglob("*")} == {(0, 0)}
    with mounted_layers(public / "m", public / "lower",
                        options="squash_to_uid=42,squash_to_gid=43") as m:
        assert owner(m / "userfile") == (42, 43)
        (m / "created").write_text("by root")  # stored as the caller: no ranges
    assert os.stat(public / "lower" / "userfile").st_uid == 1
