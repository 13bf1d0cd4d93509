"""Reading a ``functools.lru_cache`` wrapper's counts as it dies.

An lru_cache wrapper keeps its hits and misses itself and memexport reads them at scrape
(``cache_info()``), so the calls made since the last scrape would be lost when the wrapper
is garbage-collected. CPython calls a weak reference's callback before it frees the object
(``lru_cache_dealloc`` clears weak references, then the fields; the cyclic GC handles weak
references before it clears anything), so the component's callback can still read the
dying wrapper's ``hits``, ``misses`` and ``cache`` fields from its memory.

Their offsets in the C struct are not public: they are found at import on a wrapper with
known, distinct counts (the words of its object that hold them), and checked on a second
wrapper, bounded and unbounded. Where that fails (another interpreter, a pure-Python
``functools``, a changed layout), ``death_reader`` returns None and a dying wrapper keeps
the counts of the last scrape, as before.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Callable
from typing import Any

__all__ = ["OFFSETS", "WRAPPER", "death_reader"]

_WORD = ctypes.sizeof(ctypes.c_ssize_t)


def _words(obj: Any) -> list[int]:
    """The machine words of ``obj``'s own struct (its type's basic size)."""
    base = id(obj)
    return [ctypes.c_ssize_t.from_address(base + off).value
            for off in range(0, type(obj).__basicsize__, _WORD)]


def _table(f: Any) -> dict[Any, Any] | None:
    try:
        own = object.__getattribute__(f, "__dict__")
    except AttributeError:
        own = None
    return next((r for r in gc.get_referents(f) if type(r) is dict and r is not own), None)


def _unique(words: list[int], value: int) -> int | None:
    found = [i * _WORD for i, w in enumerate(words) if w == value]
    return found[0] if len(found) == 1 else None


def _exercise(maxsize: int | None, misses: int, hits: int) -> Any:
    f = functools.lru_cache(maxsize=maxsize)(lambda x: x)
    for i in range(misses):
        f(i)
    for _ in range(hits):
        f(0)
    return f


#: The C wrapper type (``functools._lru_cache_wrapper`` from ``_functools``); a pure-Python
#: ``functools`` makes plain functions instead, whose memory is not read.
WRAPPER: type = type(functools.lru_cache(maxsize=1)(lambda: None))


def _calibrate() -> tuple[int, int, int, int] | None:
    """(type, hits, misses, cache) offsets in the C wrapper, or None if not found for sure."""
    kind = WRAPPER
    if kind.__name__ != "_lru_cache_wrapper":  # the pure-Python functools: plain functions
        return None
    f = _exercise(2053, 1237, 3001)
    if f.cache_info()[:2] != (3001, 1237):
        return None
    words = _words(f)
    table = _table(f)
    ty, hi, mi = _unique(words, id(kind)), _unique(words, 3001), _unique(words, 1237)
    ca = _unique(words, id(table)) if table is not None else None
    if ty is None or hi is None or mi is None or ca is None:
        return None
    for maxsize, misses, hits in ((None, 19, 433), (7, 113, 61)):  # check on two more
        g = _exercise(maxsize, misses, hits)
        info = g.cache_info()
        w = _words(g)
        table = _table(g)
        if (w[ty // _WORD] != id(kind) or w[hi // _WORD] != info.hits
                or w[mi // _WORD] != info.misses or table is None
                or w[ca // _WORD] != id(table) or len(table) != info.currsize):
            return None
    return ty, hi, mi, ca


#: (type, hits, misses, cache) byte offsets in a ``functools._lru_cache_wrapper``, or None.
OFFSETS = _calibrate()


def _read(addr: int, bounded: bool) -> list[float] | None:
    """The wrapper's pulled counters at ``addr``, in the lru profile's order."""
    assert OFFSETS is not None
    ty, hi, mi, ca = OFFSETS
    if ctypes.c_void_p.from_address(addr + ty).value != id(WRAPPER):
        return None  # not (or no longer) an lru_cache wrapper: keep the last reading
    hits = float(ctypes.c_ssize_t.from_address(addr + hi).value)
    misses = float(ctypes.c_ssize_t.from_address(addr + mi).value)
    out = [hits, misses, misses]  # requests{hit}, requests{miss}, puts (every miss stores)
    if bounded:
        try:
            table: Any = ctypes.py_object.from_address(addr + ca).value
            currsize = len(table)
        except ValueError:  # NULL: already cleared
            return out
        out.append(max(0.0, misses - currsize))  # evictions{capacity}, as the scrape reads
    return out


def death_reader(bounded: bool, cls: type | None = None
                 ) -> Callable[[Any], list[float] | None] | None:
    """A reader of a dying wrapper's counts, called with its component from the weak
    reference's callback (``comp.key`` is the wrapper's address); None where CPython's
    layout could not be confirmed or ``cls`` is not the C wrapper type."""
    if OFFSETS is None or (cls is not None and cls is not WRAPPER):
        return None

    def at_death(comp: Any) -> list[float] | None:
        return _read(comp.key, bounded)

    return at_death
