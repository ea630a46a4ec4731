"""The benchmark suite: native, kernel overlayfs, fuse-overlayfs and sandboxfs on one tree.

Run it as root with `python -m bench` (or `make bench` / `make bench-quick`); see
docs/bench.md. The modules each do one job: `tree` builds the cached test tree,
`targets` mounts and unmounts the four filesystems, `workloads` holds the timed
functions, `runner` interleaves runs and isolates every timed step in a child,
`busy` notices other processes using the CPU, `stats` and `report` summarize,
`charts` draws, `sysinfo` records the machine.
"""
