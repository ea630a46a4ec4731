"""`python -m gofer`: the same as the `gofer` console script."""

from gofer.cli import main

main()
