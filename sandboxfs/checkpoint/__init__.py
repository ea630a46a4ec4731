"""Checkpoint and restore of a sandbox's in-memory filesystems.

The pure core (no FUSE, no daemon): an image holds a JSON header (the
caller's: the mount table and a free-form `meta`) and one section per memory
filesystem tree, keyed by the caller (e.g. "0" for mount 0's upper). The
format is in docs/checkpoint.md, byte by byte.

API:

- `await write_image(dest, header, trees, progress=None) -> (image_bytes, files)`:
  `dest` a path (written atomically: temp file beside it, fsync, rename,
  fsync of the directory; on any error the previous image is untouched and
  the temp file removed) or a descriptor the caller owns; `trees` a list of
  `(key, root_inode)`; `progress(file_bytes_done, files_done)` called after
  every entry and every chunk (at most `CHUNK` = 1 MiB is read at once).
- `read_image(path) -> Image` (= `Image.open`): verifies magic, version,
  every record's CRC32, the record order, that every section is a well
  formed tree, and the trailer's count and SHA-256; `ImageError` otherwise.
  Nothing is restored by it.
- `Image.header`, `Image.sections` (keys in order), `Image.info[key]`
  (`files`, `bytes`), then `await image.restore_tree(key, into, progress=None)
  -> (file_bytes, files)` fills the empty directory `into`.

Modules: `format` (framing, records, checksums), `tree` (NODE records:
describe, check, rebuild), `writer`, `reader`, `service` (the daemon's and
CLI's use: pause, mount table matching, fingerprint), `bench` (throughput).
"""

from sandboxfs.checkpoint.format import CHUNK, VERSION, ImageError
from sandboxfs.checkpoint.reader import Image, read_image
from sandboxfs.checkpoint.writer import write_image

__all__ = ["CHUNK", "VERSION", "Image", "ImageError", "read_image", "write_image"]
