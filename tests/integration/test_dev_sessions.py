"""Dev sandboxes through the command line: shell, diff, commit, export, drop, ls."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mounting import daemon_pid, is_mounted, sandboxfs, tree_digest, wait_gone


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hello')\n")
    (root / "README").write_text("readme\n")
    (root / "build").mkdir()
    (root / "build" / "old.o").write_text("object\n")
    (root / "docs").mkdir()
    (root / "docs" / "a.md").write_text("a\n")
    (root / "docs" / "b.md").write_text("b\n")
    yield root
    for session in ("proj", "second"):
        sandboxfs("drop", session, check=False)
    assert not any(str(tmp_path) in line for line in Path("/proc/mounts").read_text().splitlines())


def shell(project: Path, script: str, *extra: str, name: str = "proj") -> int:
    proc = sandboxfs("shell", str(project), "--name", name, *extra, "--", "sh", "-c", script,
                     check=False)
    return proc.returncode


SCRIPT = """set -e
cd {p}
echo "print('changed')" >> src/main.py
echo new > NEW.txt
rm -r build
rm -r docs && mkdir docs && echo c > docs/c.md
"""

MOVE = """set -e
cd {p}
mv src code
"""


def test_shell_keeps_the_host_untouched_and_diff_shows_changes(project: Path) -> None:
    before = tree_digest(project)
    assert shell(project, SCRIPT.format(p=project)) == 0
    assert tree_digest(project) == before
    changes = json.loads(sandboxfs("diff", "proj", "--json").stdout)
    assert changes["added"] == ["NEW.txt", "docs/c.md"]
    assert changes["modified"] == ["docs", "src/main.py"]
    assert sorted(changes["deleted"]) == ["build", "docs/a.md", "docs/b.md"]
    text = sandboxfs("diff", "proj").stdout.splitlines()
    assert "A NEW.txt" in text and "M src/main.py" in text and "D build" in text
    patch = sandboxfs("diff", "proj", "src/main.py").stdout
    assert "+print('changed')" in patch and "--- a/src/main.py" in patch
    stat_lines = sandboxfs("diff", "proj", "--stat").stdout
    assert "M src/main.py  15 -> 32 bytes" in stat_lines


def test_exit_status_and_the_rest_of_the_host_is_read_only(project: Path, tmp_path: Path) -> None:
    assert shell(project, "exit 7") == 7
    assert shell(project, "touch /etc/sandboxfs-test-must-fail") != 0
    assert not Path("/etc/sandboxfs-test-must-fail").exists()
    outside = tmp_path / "outside"
    outside.mkdir()
    assert shell(project, f"touch {outside}/x") != 0
    assert shell(project, f"touch {outside}/x", "--rw", str(outside)) == 0
    assert (outside / "x").exists()


def test_net_none_leaves_only_loopback(project: Path) -> None:
    out = project.parent / "netdev"
    assert shell(project, f"cat /proc/net/dev > {out}", "--net", "none", "--rw",
                 str(project.parent)) == 0
    interfaces = [line.split(":")[0].strip() for line in out.read_text().splitlines()[2:]]
    assert interfaces == ["lo"]


def test_session_persists_between_shells(project: Path) -> None:
    assert shell(project, f"echo one > {project}/kept.txt") == 0
    assert shell(project, f"test \"$(cat {project}/kept.txt)\" = one") == 0
    listing = sandboxfs("ls").stdout
    assert listing.startswith("proj\t" + str(project) + "\trunning")


def test_commit_refuses_host_conflicts_then_applies(project: Path) -> None:
    assert shell(project, SCRIPT.format(p=project)) == 0
    (project / "src" / "main.py").write_text("edited on the host\n")
    before = tree_digest(project)
    proc = sandboxfs("commit", "proj", check=False)
    assert proc.returncode == 1 and "C src/main.py" in proc.stdout
    assert tree_digest(project) == before  # nothing half-applied
    sandboxfs("commit", "proj", "NEW.txt", "build")
    assert (project / "NEW.txt").read_text() == "new\n"
    assert not (project / "build").exists()
    assert (project / "src" / "main.py").read_text() == "edited on the host\n"
    remaining = json.loads(sandboxfs("diff", "proj", "--json").stdout)
    assert "NEW.txt" not in remaining["added"] and "build" not in remaining["deleted"]
    sandboxfs("commit", "proj", "--force")
    assert (project / "src" / "main.py").read_text() == "print('hello')\nprint('changed')\n"
    assert sorted(os.listdir(project / "docs")) == ["c.md"]
    assert json.loads(sandboxfs("diff", "proj", "--json").stdout) == {
        "added": [], "modified": [], "deleted": []}


def test_a_moved_directory_commits_whole(project: Path) -> None:
    assert shell(project, MOVE.format(p=project)) == 0
    diff = json.loads(sandboxfs("diff", "proj", "--json").stdout)
    assert "code/main.py" in diff["added"] and "src" in diff["deleted"]
    sandboxfs("commit", "proj")
    assert (project / "code" / "main.py").read_text() == "print('hello')\n"
    assert not (project / "src").exists()


@pytest.mark.parametrize("gzip", [False, True])
def test_export_is_an_oci_layer(project: Path, tmp_path: Path, gzip: bool) -> None:
    assert shell(project, SCRIPT.format(p=project)) == 0
    out = tmp_path / ("layer.tar.gz" if gzip else "layer.tar")
    sandboxfs("export", "proj", str(out), *(["--gzip"] if gzip else []))
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert tar.extractfile("NEW.txt").read() == b"new\n"  # type: ignore[union-attr]
    assert ".wh.build" in names
    assert "docs/.wh..wh..opq" in names and "docs/c.md" in names
    assert "src/main.py" in names and "README" not in names


def test_drop_unmounts_and_forgets(project: Path, tmp_path: Path) -> None:
    assert shell(project, "true") == 0
    mnt = tmp_path / "state" / "sandboxfs" / "sessions" / "proj" / "mnt"
    assert is_mounted(mnt)
    sandboxfs("drop", "proj")
    assert not is_mounted(mnt)
    assert not (tmp_path / "state" / "sandboxfs" / "sessions" / "proj").exists()
    assert sandboxfs("diff", "proj", check=False).returncode == 1


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def checkout(project: Path) -> Path:
    env_args = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, *env_args, "commit", "-qm", "initial")
    return project


def test_git_checkout_untouched_and_diff_is_exact(checkout: Path) -> None:
    before = tree_digest(checkout)
    script = f"""set -e
cd {checkout}
echo "print('edited')" > src/main.py
echo fresh > src/fresh.py
rm README
mv docs/a.md docs/renamed.md
git status --porcelain > /dev/null  # refreshes .git/index: a change of its own
"""
    assert shell(checkout, script) == 0
    assert tree_digest(checkout) == before
    assert _git(checkout, "status", "--porcelain") == ""
    changes = json.loads(sandboxfs("diff", "proj", "--json").stdout)
    assert changes == {"added": ["docs/renamed.md", "src/fresh.py"],
                       "modified": [".git/index", "src/main.py"],
                       "deleted": ["README", "docs/a.md"]}
    sandboxfs("commit", "proj", "src/fresh.py", "README")
    assert sorted(_git(checkout, "status", "--porcelain").splitlines()) == [
        " D README", "?? src/fresh.py"]
    assert (checkout / "src" / "main.py").read_text() == "print('hello')\n"


def _apply_layer(layer: Path, onto: Path) -> None:
    """Extract an OCI layer as a runtime does: whiteouts delete, opaque markers empty."""
    with tarfile.open(layer) as tar:
        for member in tar.getmembers():
            path = onto / member.name
            base = os.path.basename(member.name)
            if base == ".wh..wh..opq":
                for child in path.parent.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            elif base.startswith(".wh."):
                gone = path.parent / base[4:]
                if gone.is_dir() and not gone.is_symlink():
                    shutil.rmtree(gone)
                elif gone.exists() or gone.is_symlink():
                    gone.unlink()
        for member in tar.getmembers():
            if not os.path.basename(member.name).startswith(".wh."):
                tar.extract(member, onto, filter="tar")


def test_export_reproduces_the_merged_view(project: Path, tmp_path: Path) -> None:
    assert shell(project, SCRIPT.format(p=project)) == 0
    layer = tmp_path / "layer.tar"
    sandboxfs("export", "proj", str(layer))
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    _apply_layer(layer, copy)
    merged = tmp_path / "state" / "sandboxfs" / "sessions" / "proj" / "mnt"
    assert tree_digest(copy) == tree_digest(merged)


def test_session_survives_its_daemon_being_killed(project: Path, tmp_path: Path) -> None:
    assert shell(project, f"echo kept > {project}/survivor.txt && rm {project}/README") == 0
    mnt = tmp_path / "state" / "sandboxfs" / "sessions" / "proj" / "mnt"
    pid = daemon_pid(mnt)
    os.kill(pid, signal.SIGKILL)
    wait_gone([pid])
    assert shell(project, f"test \"$(cat {project}/survivor.txt)\" = kept && "
                          f"test ! -e {project}/README") == 0
    changes = json.loads(sandboxfs("diff", "proj", "--json").stdout)
    assert changes["added"] == ["survivor.txt"] and changes["deleted"] == ["README"]
