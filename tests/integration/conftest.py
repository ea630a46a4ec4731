from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test session records its daemons in a private state directory."""
    path = tmp_path_factory.mktemp("run")
    old = os.environ.get("SANDBOXFS_RUN_DIR")
    os.environ["SANDBOXFS_RUN_DIR"] = str(path)
    yield
    if old is None:
        del os.environ["SANDBOXFS_RUN_DIR"]
    else:
        os.environ["SANDBOXFS_RUN_DIR"] = old
