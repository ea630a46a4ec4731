"""The mount plan: config.json compiled into the mounts of the container tree.

Layering, lowest first: `options` (the mount-option vocabulary, pure),
`model` (frozen MountInfo and Plan, their JSON form), `compile` (the rules:
built-in mounts, spec mounts, hints, ordering). `sandboxfs.hints` sits
between `options` and `compile`. Public names are re-exported here.
"""

from sandboxfs.plan.compile import clean_destination, compile_plan, rootfs_tmp_is_free
from sandboxfs.plan.model import MountInfo, Plan, gofer_device
from sandboxfs.plan.options import (
    CACHE_OPTION,
    CACHE_POLICIES,
    DEFAULT_REVALIDATE_SECONDS,
    REVALIDATE_OPTION,
    SUPPORTED_TYPES,
    OptionError,
    ParsedOptions,
    parse_options,
)

__all__ = [
    "CACHE_OPTION",
    "CACHE_POLICIES",
    "DEFAULT_REVALIDATE_SECONDS",
    "REVALIDATE_OPTION",
    "SUPPORTED_TYPES",
    "MountInfo",
    "OptionError",
    "ParsedOptions",
    "Plan",
    "clean_destination",
    "compile_plan",
    "gofer_device",
    "parse_options",
    "rootfs_tmp_is_free",
]
