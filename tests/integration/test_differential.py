"""The same operation script on sandboxfs and on kernel overlayfs, trees compared.

Kernel overlayfs (lower dir + tmpfs upper, `index=on` so lower hardlinks stay
one file after copy-up, as sandboxfs keeps them, and `redirect_dir=on` so
directories with lower parts move, as in sandboxfs) is the reference. Each step
records its outcome (ok or the errno), and afterwards the merged trees are
compared by name, type, mode, owner, size, link count, bytes and link target.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.mounting import mounted_layers, tree_digest
from tests.integration.test_overlay_mount import make_lower

Step = tuple[str, Callable[[Path], object]]


def _append(path: Path, data: str) -> None:
    with open(path, "a") as f:
        f.write(data)


STEPS: list[Step] = [
    ("append lower file", lambda m: _append(m / "file.txt", "appended\n")),
    ("truncate lower file", lambda m: os.truncate(m / "dir" / "a.txt", 1)),
    ("chmod lower file", lambda m: os.chmod(m / "exec.sh", 0o711)),
    ("chown lower file", lambda m: os.chown(m / "secret", 42, 43)),
    ("write through hardlink", lambda m: (m / "hl2").write_text("via hl2\n")),
    ("unlink lower file", lambda m: os.unlink(m / "link")),
    ("unlink lower fifo", lambda m: os.unlink(m / "fifo")),
    ("rmdir non-empty lower dir", lambda m: os.rmdir(m / "dir")),
    ("unlink nested lower", lambda m: os.unlink(m / "dir" / "sub" / "b.txt")),
    ("rmdir emptied lower dir", lambda m: os.rmdir(m / "dir" / "sub")),
    ("mkdir over removed dir", lambda m: os.mkdir(m / "dir" / "sub")),
    ("create in opaque dir", lambda m: (m / "dir" / "sub" / "c.txt").write_text("c\n")),
    ("rename lower file", lambda m: os.rename(m / "big.bin", m / "dir" / "big.moved")),
    ("rename over lower file", lambda m: os.rename(m / "exec.sh", m / "abs_link")),
    ("rename lower dir", lambda m: os.rename(m / "dir", m / "dir.renamed")),
    ("mkdir new", lambda m: os.mkdir(m / "new", 0o750)),
    ("create new file", lambda m: (m / "new" / "f").write_text("f" * 5000)),
    ("hardlink new file", lambda m: os.link(m / "new" / "f", m / "new" / "g")),
    ("hardlink lower file", lambda m: os.link(m / "file.txt", m / "new" / "file-link")),
    ("symlink new", lambda m: os.symlink("../file.txt", m / "new" / "sl")),
    ("mkfifo new", lambda m: os.mkfifo(m / "new" / "pipe", 0o640)),
    ("rename new dir", lambda m: os.rename(m / "new", m / "new2")),
    ("rmdir lower empty dir", lambda m: os.rmdir(m / "emptydir")),
    ("recreate removed file", lambda m: (m / "link").write_text("now a file\n")),
    ("unlink hardlink half", lambda m: os.unlink(m / "hl1")),
    ("rename exchange-free noreplace", lambda m: os.rename(m / "secret", m / "secret2")),
    ("mkdir existing", lambda m: os.mkdir(m / "new2")),
    ("rmdir file", lambda m: os.rmdir(m / "file.txt")),
    ("unlink dir", lambda m: os.unlink(m / "new2")),
]


def run_steps(root: Path) -> list[tuple[str, str]]:
    outcomes = []
    for name, step in STEPS:
        try:
            step(root)
            outcomes.append((name, "ok"))
        except OSError as exc:
            outcomes.append((name, errno.errorcode.get(exc.errno or 0, str(exc.errno))))
    return outcomes


@contextmanager
def kernel_overlay(tmp: Path, lower: Path) -> Iterator[Path]:
    upper_fs = tmp / "kupper"
    mnt = tmp / "kmnt"
    upper_fs.mkdir()
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(upper_fs)], check=True)
    try:
        (upper_fs / "u").mkdir()
        (upper_fs / "w").mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper_fs}/u,workdir={upper_fs}/w,index=on,"
                        "redirect_dir=on",
                        str(mnt)], check=True)
        try:
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["umount", str(upper_fs)], check=True)


def test_same_script_same_tree_as_kernel_overlayfs(tmp_path: Path) -> None:
    lower_k = make_lower(tmp_path / "lower_k")
    lower_s = make_lower(tmp_path / "lower_s")
    # The two lowers must hold the same bytes for the trees to be comparable.
    (lower_s / "big.bin").write_bytes((lower_k / "big.bin").read_bytes())
    with kernel_overlay(tmp_path, lower_k) as kmnt:
        kernel_outcomes = run_steps(kmnt)
        kernel_tree = tree_digest(kmnt)
    with mounted_layers(tmp_path / "smnt", lower_s) as smnt:
        ours_outcomes = run_steps(smnt)
        ours_tree = tree_digest(smnt)
    assert ours_outcomes == kernel_outcomes
    assert sorted(ours_tree) == sorted(kernel_tree)
    for path in kernel_tree:
        assert ours_tree[path] == kernel_tree[path], path
