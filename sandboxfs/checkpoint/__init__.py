"""Checkpoint and restore of a sandbox's in-memory filesystems.

- `format`: the image's framing, records and checksums (docs/checkpoint.md).
- `writer`: `write_image(fd, header, [(key, root), ...])`, streamed.
- `reader`: `Image.open(path)` verifies everything; `restore_tree(key, into)`.
"""

from sandboxfs.checkpoint.format import ImageError
from sandboxfs.checkpoint.reader import Image
from sandboxfs.checkpoint.writer import write_image

__all__ = ["Image", "ImageError", "write_image"]
