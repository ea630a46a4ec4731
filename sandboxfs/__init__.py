"""sandboxfs: a FUSE sandbox filesystem over a confined 9P2000.L gofer."""

from sandboxfs import fuse_shim

# Before anything imports pyfuse3: the listing cache's library has to be
# bound in its place (see fuse_shim.py).
fuse_shim.load()
