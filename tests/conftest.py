"""Shared pytest configuration: every test runs for real (root, /dev/fuse)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        raise pytest.UsageError("the sandboxfs suite needs root and /dev/fuse; nothing is skipped")
