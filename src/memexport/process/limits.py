"""The effective memory limit of this process, and the cgroup directories it is read from.

Looked up in order: cgroup v2 ``memory.max``, cgroup v1 ``memory.limit_in_bytes`` (the lowest
over the process's cgroup and its ancestors), ``RLIMIT_AS``, else physical memory. The cgroup
paths come from ``/proc/self/cgroup``; ``cgroup_root`` and ``proc_root`` point elsewhere for
tests, which feed fixture trees.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import psutil

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_CGROUP_ROOT",
    "DEFAULT_PROC_ROOT",
    "LIMIT_SOURCES",
    "CgroupDirs",
    "cgroup_dirs",
    "detect_memory_limit",
]

#: Values of the ``source`` label of ``memexport_process_memory_limit_bytes``, in lookup order.
LIMIT_SOURCES = ("cgroup_v2", "cgroup_v1", "rlimit_as", "physical")

DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PROC_ROOT = "/proc"
_V1_UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as ~2**63 rounded down to a page
#: Where a hybrid (v1 + v2) host mounts the v2 hierarchy, under the cgroup root.
_UNIFIED = "unified"


class CgroupDirs(NamedTuple):
    """The process's own cgroup directories, each with its ancestors (lowest first)."""

    v2: list[str]
    v1_memory: list[str]


def _cgroup_paths(proc_root: str) -> tuple[str | None, str | None]:
    """The process's cgroup v2 path and cgroup v1 memory-controller path, from /proc."""
    try:
        with open(os.path.join(proc_root, "self", "cgroup")) as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None, None  # not Linux, or /proc not mounted
    v2 = v1 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _levels(mount: str, cgroup_path: str) -> list[str]:
    """The cgroup's directory under ``mount`` and its ancestors up to the mount itself.

    Without a cgroup namespace a container sees the host's path in /proc/self/cgroup but has
    its own cgroup mounted at the root: when the path is not there, only the root is read.
    """
    parts = [p for p in cgroup_path.split("/") if p and p != "."]
    if ".." in parts or not os.path.isdir(os.path.join(mount, *parts)):
        parts = []
    return [os.path.join(mount, *parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_dirs(cgroup_root: str = DEFAULT_CGROUP_ROOT,
                proc_root: str = DEFAULT_PROC_ROOT) -> CgroupDirs:
    """The cgroup v2 and v1-memory directories of this process (empty lists where none).

    On a hybrid host the v2 hierarchy is mounted at ``<root>/unified``; it is used when the
    root itself is not a v2 mount (has no ``cgroup.controllers``).
    """
    v2_path, v1_path = _cgroup_paths(proc_root)
    v2: list[str] = []
    if v2_path is not None:
        mount = cgroup_root
        unified = os.path.join(cgroup_root, _UNIFIED)
        if (not os.path.exists(os.path.join(cgroup_root, "cgroup.controllers"))
                and os.path.exists(os.path.join(unified, "cgroup.controllers"))):
            mount = unified
        v2 = _levels(mount, v2_path)
    v1: list[str] = []
    if v1_path is not None:
        mount = os.path.join(cgroup_root, "memory")
        if os.path.isdir(mount):
            v1 = _levels(mount, v1_path)
    return CgroupDirs(v2, v1)


def _lowest(dirs: list[str], filename: str, parse: Callable[[str], int | None]) -> int | None:
    """The lowest limit set in ``filename`` over ``dirs`` (a parent's limit binds its children)."""
    best: int | None = None
    for d in dirs:
        try:
            with open(os.path.join(d, filename)) as f:
                text = f.read()
        except (FileNotFoundError, NotADirectoryError):
            continue
        value = parse(text.strip())
        if value is not None and (best is None or value < best):
            best = value
    return best


def _parse_v2(text: str) -> int | None:
    if text == "max":
        return None
    return int(text)


def _parse_v1(text: str) -> int | None:
    value = int(text)
    return None if value >= _V1_UNLIMITED or value < 0 else value


def detect_memory_limit(
    cgroup_root: str = DEFAULT_CGROUP_ROOT,
    proc_root: str = DEFAULT_PROC_ROOT,
    total_memory: int | None = None,
) -> tuple[int, str]:
    """The effective memory limit of this process and where it comes from.

    Looks up, in order: cgroup v2 ``memory.max``, cgroup v1 ``memory.limit_in_bytes`` (the
    lowest over the cgroup and its ancestors), ``RLIMIT_AS``, else physical memory
    (``total_memory`` if given, else ``psutil.virtual_memory().total``). Missing files fall
    through; an unreadable or garbled one raises, so the caller can leave the limit absent
    rather than report a wrong one.
    """
    v2_path, v1_path = _cgroup_paths(proc_root)
    if v2_path is not None:
        limit = _lowest(_levels(cgroup_root, v2_path), "memory.max", _parse_v2)
        if limit is not None:
            return limit, "cgroup_v2"
    if v1_path is not None:
        mount = os.path.join(cgroup_root, "memory")
        limit = _lowest(_levels(mount, v1_path), "memory.limit_in_bytes", _parse_v1)
        if limit is not None:
            return limit, "cgroup_v1"
    if resource is not None:
        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            return int(soft), "rlimit_as"
    if total_memory is None:
        total_memory = int(psutil.virtual_memory().total)
    return total_memory, "physical"
