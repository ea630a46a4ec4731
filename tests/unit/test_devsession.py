"""The pure parts of dev sessions: classifying the upper, planning a commit."""

from __future__ import annotations

import stat
from pathlib import Path

from sandboxfs.devsession import manifest
from sandboxfs.devsession.apply import plan_commit
from sandboxfs.devsession.changes import UpperEntry, classify
from sandboxfs.devsession.state import default_name

REG, DIR = stat.S_IFREG, stat.S_IFDIR
MANIFEST = {
    "src": (DIR, 0o755, 4096, 1, 10),
    "src/a": (REG, 0o644, 3, 1, 11),
    "old": (DIR, 0o755, 4096, 1, 12),
    "old/x": (REG, 0o644, 1, 1, 13),
    "d": (DIR, 0o755, 4096, 1, 14),
    "d/1": (REG, 0o644, 1, 1, 15),
}


def test_classify_added_modified_deleted_and_opaque() -> None:
    entries = [UpperEntry("d", "opaque-dir", 0), UpperEntry("d/2", "file", 1),
               UpperEntry("new", "file", 3), UpperEntry("old", "whiteout", 0),
               UpperEntry("src", "dir", 0), UpperEntry("src/a", "file", 5),
               UpperEntry("src/b", "symlink", 0), UpperEntry("gone-anyway", "whiteout", 0)]
    changes = classify(entries, MANIFEST)
    assert changes.added == ["d/2", "new", "src/b"]
    assert changes.modified == ["d", "src/a"]
    assert changes.deleted == ["d/1", "old"]


def test_a_committed_file_is_no_longer_a_change() -> None:
    entries = [UpperEntry("src/a", "file", 3)]
    same = classify(entries, MANIFEST, lambda path: (REG, 0o644, 3, 1, 99))
    assert same.modified == []
    other = classify(entries, MANIFEST, lambda path: (REG, 0o644, 3, 2, 99))
    assert other.modified == ["src/a"]


def test_plan_commit_finds_conflicts_and_orders_work(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("abc")
    recorded = manifest.record(str(tmp_path))
    entries = [UpperEntry("src", "dir", 0), UpperEntry("src/a", "file", 5),
               UpperEntry("src/new", "file", 1), UpperEntry("top", "dir", 0),
               UpperEntry("top/f", "file", 1)]
    changes = classify(entries, recorded)
    plan = plan_commit(changes, recorded, str(tmp_path))
    assert plan.conflicts == []
    assert plan.writes == ["top", "src/a", "src/new", "top/f"]
    (tmp_path / "src" / "a").write_text("host edit")
    assert plan_commit(changes, recorded, str(tmp_path)).conflicts == ["src/a"]
    (tmp_path / "src" / "new").write_text("appeared on the host")
    assert plan_commit(changes, recorded, str(tmp_path), ["src/new"]).conflicts == ["src/new"]
    assert plan_commit(changes, recorded, str(tmp_path), ["top"]).conflicts == []


def test_default_session_names_are_clean() -> None:
    assert default_name("/home/me/my project") == "my-project"
    assert default_name("/srv/.hidden") == "hidden"
    assert default_name("/") == "root"
