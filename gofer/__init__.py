"""gofer: the only sandboxfs process that touches host paths; serves trees over 9P2000.L."""
