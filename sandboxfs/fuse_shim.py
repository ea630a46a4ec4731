"""Directory listings the kernel may keep, which pyfuse3 3.5 cannot ask for.

The kernel keeps a directory's listing in its page cache when the opendir
reply says FOPEN_CACHE_DIR (and FOPEN_KEEP_CACHE, or the next open drops
it); a walk of a tree already walked then reaches the daemon for OPENDIR
only, not for every READDIR. pyfuse3's `opendir` returns a bare file handle
and sets neither flag. `native/fuse_shim.c`, built by `make setup`, is a
small library that stands in for libfuse's `fuse_reply_open`: a handle with
CACHE_DIR_BIT set goes out with both flags, every other reply unchanged.

It must be loaded with RTLD_GLOBAL before pyfuse3's extension module is, so
that the dynamic linker binds pyfuse3's call to it: `sandboxfs/__init__.py`
calls `load()` first thing. Without the library (not built, or pyfuse3
imported earlier) nothing changes but speed: the bit is then just part of
the handle's number, and every READDIR reaches the daemon as before.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

CACHE_DIR_BIT = 1 << 62
"""Set in a directory handle's number: the kernel may keep its listing."""

LIBRARY = Path(__file__).parent / "native" / "libsandboxfs_fuse_shim.so"

_loaded = False


def load() -> bool:
    """Load the library if it is built and pyfuse3 is not imported yet;
    True when directory handles with CACHE_DIR_BIT will be cached."""
    global _loaded
    if _loaded:
        return True
    if "pyfuse3" in sys.modules or not LIBRARY.exists():
        return False
    try:
        ctypes.CDLL(str(LIBRARY), mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    except OSError:
        return False
    _loaded = True
    return True


def loaded() -> bool:
    return _loaded
