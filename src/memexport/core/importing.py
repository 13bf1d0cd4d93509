"""Threads inside one of memexport's own imports (a public name's module, an adapter, wrapt).

A signal handler that instruments while its thread is in one of them is refused with
``AdapterLoading``: importing again there would hand out a half-imported module, or break
CPython's import locks (3.11 raises ``KeyError`` from the interrupted import's lock)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["AdapterLoading", "importing", "refuse_inside_import"]

_depth: dict[int, int] = {}  # thread ident -> nesting of memexport's imports in it


class AdapterLoading(RuntimeError):
    """memexport was asked to instrument, or for a module, while this thread was importing
    one of its parts (a signal handler during the first call): refused, never half-loaded."""


@contextmanager
def importing() -> Iterator[None]:
    """Mark this thread as inside one of memexport's imports for the block."""
    tid = threading.get_ident()
    _depth[tid] = _depth.get(tid, 0) + 1
    try:
        yield
    finally:
        left = _depth.get(tid, 1) - 1
        if left > 0:
            _depth[tid] = left
        else:
            _depth.pop(tid, None)


def refuse_inside_import(what: str) -> None:
    """Raise ``AdapterLoading`` when this thread is inside one of memexport's imports."""
    if threading.get_ident() in _depth:
        raise AdapterLoading(f"{what} was asked for while this thread imports part of "
                             "memexport (a signal handler during the first call?): use it "
                             "once before installing the handler")
