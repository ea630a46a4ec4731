"""`export`: a session's upper as an OCI image layer (a tar).

Files, links and directories are added with their metadata (hard links
stay links); a deletion is an empty `.wh.NAME` file beside where NAME was;
a directory that replaces the one below is followed by `.wh..wh..opq`.
OCI tooling (`docker import`, podman, umoci) reads these markers.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable

from sandboxfs.devsession.changes import UpperEntry

OPAQUE_MARKER = ".wh..wh..opq"


def export_layer(entries: list[UpperEntry], session_root: str, out_path: str, *,
                 gzip: bool = False, progress: Callable[[int, int], None] | None = None) -> int:
    """Write the layer atomically (temp file, rename); returns the entries written."""
    tmp = out_path + ".tmp"
    count = nbytes = 0
    try:
        tar = (tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) if gzip
               else tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT))
        with tar:
            for entry in entries:
                if entry.kind == "whiteout":
                    parent, name = os.path.split(entry.path)
                    _marker(tar, os.path.join(parent, ".wh." + name))
                else:
                    info = tar.gettarinfo(os.path.join(session_root, entry.path),
                                          arcname=entry.path)
                    if info.isreg():
                        with open(os.path.join(session_root, entry.path), "rb") as f:
                            tar.addfile(info, f)
                        nbytes += info.size
                    else:
                        tar.addfile(info)
                    if entry.kind == "opaque-dir":
                        _marker(tar, os.path.join(entry.path, OPAQUE_MARKER))
                count += 1
                if progress is not None:
                    progress(count, nbytes)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return count


def _marker(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(b""))
