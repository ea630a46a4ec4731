"""Layers the host can unmount while the gofer serves them.

A descriptor the gofer holds (an export's root, a fid, an fd it donated to
its client) pins the mount it was opened through: the host's `umount LOWER`
fails with EBUSY until the gofer has exited. That is a few milliseconds
after the FUSE mount it serves is unmounted (`umount` does not wait for the
daemon), long enough for a script that unmounts its layers right after
(`umount MNT; umount LOWER`, as overlayfs users and the unionmount testsuite
do) to meet EBUSY.

Kernel overlayfs avoids this by holding private clones of its layers'
mounts (`clone_private_mount`). The gofer does the same in one step: before
it opens an export it moves into a mount namespace of its own, a copy of
the host's with propagation turned off, so its descriptors pin the copies.
The host can then unmount a layer at any time; the layer's filesystem stays
alive for the gofer until it exits, as it would for overlayfs. Mounts the
host makes later under an export are not seen, as overlayfs does not see
mounts on its layers either.

Needs CAP_SYS_ADMIN; without it the gofer serves from the host's namespace
as before.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def leave_host_mounts() -> bool:
    """Move into a private copy of the mount namespace; False if not allowed."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        log.info("serving from the host's mount namespace: unshare: errno %d",
                 ctypes.get_errno())
        return False
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        log.warning("own mount namespace, but its mounts stay shared: errno %d",
                    ctypes.get_errno())
        return False
    return True
