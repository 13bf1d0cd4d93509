"""One list of fork hooks for all of memexport: locks and threads are reset in one place.

A lock another thread held at ``fork()`` stays held forever in the child, and threads do not
survive a fork. Every module that owns a lock, a thread or per-process state registers a hook
here instead of calling ``os.register_at_fork`` itself; hooks run in registration order, and
one that raises is skipped (counted nowhere, since the registry's own lock may be the broken
one) so the others still run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["after_fork_in_child", "after_fork_in_parent", "before_fork"]

Hook = Callable[[], object]

_before: list[Hook] = []
_parent: list[Hook] = []
_child: list[Hook] = []
_lock = threading.Lock()


def _run(hooks: list[Hook]) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception:  # never break the fork of the host app
            pass


def before_fork(hook: Hook) -> Hook:
    """Run ``hook`` in the parent just before ``fork()`` (usable as a decorator)."""
    with _lock:
        _before.append(hook)
    return hook


def after_fork_in_parent(hook: Hook) -> Hook:
    """Run ``hook`` in the parent just after ``fork()`` (usable as a decorator)."""
    with _lock:
        _parent.append(hook)
    return hook


def after_fork_in_child(hook: Hook) -> Hook:
    """Run ``hook`` in the child just after ``fork()``: re-create locks, restart threads."""
    with _lock:
        _child.append(hook)
    return hook


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _run(_child)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: _run(_before),
                        after_in_parent=lambda: _run(_parent),
                        after_in_child=_in_child)
