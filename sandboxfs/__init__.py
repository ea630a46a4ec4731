"""sandboxfs: a FUSE sandbox filesystem over a confined gofer."""
