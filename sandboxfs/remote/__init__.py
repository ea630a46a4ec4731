"""Gofer-backed filesystems: inodes whose bytes and metadata live on the host,
reached only through a 9P client (`gofer.client.Client`).
"""

from sandboxfs.remote.filesystem import CachePolicy, RemoteFs, RemoteInode

__all__ = ["CachePolicy", "RemoteFs", "RemoteInode"]
