"""Pods: one daemon, one FUSE mount, several containers (`MOUNTPOINT/ID`).

- `root`: `PodRoot`, the top directory listing the containers.
- `masters`: `PodMasters`, the pod-shared tmpfs masters of mount hints.
- `pod`: `Pod`, adding and removing containers at run time.
- `serve`: the pod daemon (FUSE mount and control socket).
"""

from sandboxfs.pod.pod import Container, Pod, PodError

__all__ = ["Container", "Pod", "PodError"]
