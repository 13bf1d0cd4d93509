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
import weakref
from collections.abc import Callable

__all__ = ["RLock", "after_fork_in_child", "after_fork_in_parent", "before_fork"]

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


class RLock:
    """A re-entrant lock that a forked child gets fresh (a held one would stay held there).

    Re-entrant because memexport's cold paths may be re-entered by a signal handler that
    instruments in the same thread: they are written to tolerate it, and never deadlock.
    """

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        _locks.add(self)

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()


_locks: weakref.WeakSet[RLock] = weakref.WeakSet()


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for lock in list(_locks):
        lock._lock = threading.RLock()
    _run(_child)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: _run(_before),
                        after_in_parent=lambda: _run(_parent),
                        after_in_child=_in_child)
