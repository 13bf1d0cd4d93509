"""Deep object sizes, cheap enough to be taken where they belong: per entry, or sampled.

``sys.getsizeof`` (what the guide's classes use) counts only an object's own header, so a
dict of chat messages looks a few hundred bytes big whatever the messages hold. ``deep_size``
walks the object graph instead, the way ``objsize.get_deep_size`` does: every object reached
through ``gc.get_referents`` is counted once, and shared objects — types, modules,
functions, code, frames — are skipped. Unlike objsize, the ``str`` keys of dicts are counted
(CPython's dict traversal does not report them, so objsize leaves them out).

Deep sizes cost microseconds per entry, so they stay off the application's hot path:

- ``entry_size(key, value)`` is the per-entry sizer, for a size taken once at insert;
- a component whose profile has a ``SizeSpec`` keeps an estimate of its collection's deep
  size in its own slots, refreshed by ``refresh`` on the collector thread (``SizerJob``, the
  registry's ``sizer`` tick job) in bounded time per tick: collections up to ``SAMPLE``
  entries are walked whole, larger ones through a rotating window of entries whose mean size
  is scaled by the length. The job walks the registry's own members, so nothing is kept per
  collection outside its component, and a collection freed between ticks leaves nothing.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from memexport.core.component import Component, resolve_profile

if TYPE_CHECKING:  # pragma: no cover
    from memexport.core.registry import Registry

__all__ = [
    "DEFAULT_LIMIT_OBJECTS",
    "SAMPLE",
    "Sizer",
    "SizerJob",
    "deep_size",
    "deep_size_many",
    "entry_size",
    "refresh",
    "shallow_size",
]

#: A per-entry sizer: ``sizer(key, value) -> bytes``, called once when an entry is stored.
Sizer = Callable[[Any, Any], int]

#: Objects one entry's walk may visit before it stops (a lower bound is returned then).
DEFAULT_LIMIT_OBJECTS = 100_000
#: Entries one refresh walks (all of them in collections this small).
SAMPLE = 256
#: Windows the mean entry size of a large collection is averaged over.
WINDOWS = 8
#: Components sized within this many seconds count as covered (``memexport_sizer_...``).
COVERAGE_WINDOW = 60.0

#: Shared objects, never attributed to an entry (objsize's default filter, plus code objects).
_SHARED = (
    type,
    types.ModuleType,
    types.FrameType,
    types.BuiltinFunctionType,
    types.FunctionType,
    types.MethodType,
    types.CodeType,
)
#: Objects without referents worth walking: sized with sys.getsizeof alone.
_ATOMS = frozenset({str, bytes, int, float, bool, complex, type(None), bytearray, range})
_CONTAINERS = frozenset({list, tuple, set, frozenset, deque})

_FLOATS = {float}
_FLOAT_SIZE = sys.getsizeof(0.0)
#: ``entry_size`` leaves out objects referenced from more places than this (shared).
SHARED_REFS = 16

_getsizeof = sys.getsizeof
_get_referents = gc.get_referents


def deep_size_many(objs: Iterable[Any], seen: set[int] | None = None, *,
                   limit_objects: int | None = None, shared_refs: int | None = None) -> int:
    """The deep size of several objects together, counting each reachable object once.

    ``seen`` (ids already counted) may be shared between calls, so objects referenced from
    several of them are counted once overall, as ``objsize.get_deep_size(*objs)`` does.
    With ``shared_refs``, objects below the roots that more than that many references
    point at (interned dict keys such as ``"role"``, immortal objects) are taken as shared
    by many holders and not counted: a per-entry size then leaves them out, as a walk over
    the whole collection counts them once.
    """
    if seen is None:
        seen = set()
    add = seen.add
    total = 0
    budget = -1 if limit_objects is None else limit_objects
    roots = list(objs)
    stack: list[Any] = roots[:]
    # Above this, an object is shared (the +3: getrefcount's argument, `obj`, one holder).
    max_refs = sys.maxsize if shared_refs is None else shared_refs + 3
    root_ids = {id(r) for r in roots} if shared_refs is not None else ()
    getrefcount = sys.getrefcount
    pop = stack.pop
    push = stack.extend
    while stack:
        obj = pop()
        i = id(obj)
        if i in seen:
            continue
        if getrefcount(obj) > max_refs and i not in root_ids:
            continue
        t = type(obj)
        if t in _ATOMS:
            add(i)
            total += _getsizeof(obj)
        else:
            if isinstance(obj, _SHARED):
                continue
            add(i)
            try:
                total += _getsizeof(obj)
            except Exception:  # a broken __sizeof__ of some extension type
                pass
            if t is dict:
                push(obj.keys())
                push(obj.values())
            elif t in _CONTAINERS:
                if t is not deque and obj and set(map(type, obj)) == _FLOATS:
                    # Embeddings and other float vectors: no walk per element.
                    total += _FLOAT_SIZE * len(obj)
                else:
                    push(obj)
            else:
                # The GC's view covers instance attributes too (the __dict__, or on 3.11+ the
                # inline values). Never touch obj.__dict__: on 3.11+ that materialises a
                # dict and slows every later attribute access of the app's object.
                push(_get_referents(obj))
        if budget >= 0:
            budget -= 1
            if budget == 0:
                break
    return total


def deep_size(obj: Any, *, limit_objects: int | None = None) -> int:
    """Bytes held by ``obj`` and everything it references, each object counted once.

    Close to ``objsize.get_deep_size(obj)``. ``limit_objects`` caps the objects visited
    (the result is then a lower bound), so one huge value cannot stall the caller.
    """
    return deep_size_many((obj,), limit_objects=limit_objects)


def entry_size(key: Any, value: Any) -> int:
    """The default per-entry sizer: deep size of a key and its value.

    Objects shared by many holders (more than ``SHARED_REFS`` references: interned keys
    like ``"role"``, small ints, ``None``) are left out, so that summing ``entry_size``
    over a collection comes close to the deep size of the whole collection.
    """
    return deep_size_many((key, value), limit_objects=DEFAULT_LIMIT_OBJECTS,
                          shared_refs=SHARED_REFS)


def shallow_size(obj: Any) -> int:
    """``sys.getsizeof`` that never raises (0 for objects whose ``__sizeof__`` fails)."""
    try:
        return _getsizeof(obj)
    except Exception:
        return 0


#: One refresh at a time: the collector thread and a scrape's first read never walk the
#: same collections at once (a scrape that finds it busy uses the estimate it has).
_walking = threading.Lock()


def _walk(it: Iterable[Any], pairs: bool, seen: set[int],
          deadline: float | None) -> tuple[int, int]:
    size = 0
    count = 0
    limit = DEFAULT_LIMIT_OBJECTS
    clock = time.perf_counter
    for entry in it:
        if pairs:
            size += deep_size_many(entry, seen, limit_objects=limit)
        else:
            size += deep_size_many((entry,), seen, limit_objects=limit)
        count += 1
        if deadline is not None and clock() >= deadline:
            break
    return size, count


def refresh(comp: Component, obj: Any, deadline: float | None = None) -> float | None:
    """Re-estimate the deep size of ``obj`` (``comp``'s object) now, by ``deadline``.

    A collection of at most ``SAMPLE`` entries walked whole is measured exactly (shared
    objects once); otherwise the mean size of the entries walked in the last windows is
    scaled by the length. A collection another thread writes to while it is walked is walked
    again from a copy of the window; the last value stays if that fails too. At least one entry is
    walked per call, so a large collection's estimate always moves forward.
    """
    spec = comp.profile.size
    if spec is None or not _walking.acquire(blocking=False):
        return comp.size
    try:
        n = spec.length(obj)
        seen: set[int] = set()
        start = comp.size_cursor if comp.size_cursor < n else 0
        stop = n if n <= SAMPLE else start + SAMPLE
        if n <= SAMPLE:
            start = 0
        try:
            size, count = _walk(itertools.islice(spec.entries(obj), start, stop), spec.pairs,
                                seen, deadline)
        except RuntimeError:  # "changed size during iteration": another thread writes
            try:  # walk a copy of the window (taken in one C call for builtins) instead
                seen.clear()
                window = list(itertools.islice(spec.entries(obj), start, stop))
                size, count = _walk(window, spec.pairs, seen, deadline)
            except RuntimeError:  # its values change too: try again next tick
                return comp.size
        if start == 0 and count >= n:  # the whole collection: exact
            comp.size_cursor = 0
            estimate = float(size)
            comp.size_mean = size / count if count else comp.size_mean
        else:
            comp.size_cursor = start + count if count else 0
            if count:
                mean = size / count
                old = comp.size_mean
                # An average over about WINDOWS full windows, weighted by entries walked,
                # without keeping them.
                weight = count / (count + (WINDOWS - 1) * SAMPLE)
                comp.size_mean = mean if old == 0.0 else old + (mean - old) * weight
            estimate = n * comp.size_mean
        estimate += spec.overhead(obj)
        comp.size = estimate
        comp.size_at = time.monotonic()
        comp.size_len = n
    finally:
        _walking.release()
    handles = comp.group.handles
    if handles is not None and comp.size_mean > 0:
        handles.sized(comp.size_mean)
    return estimate


#: Components sized first in each tick, by how much their length moved since last sized.
GROWN_FIRST = 4


def _grown(members: list[Component], k: int) -> list[Component]:
    """The ``k`` members whose length changed most (relative) since their last sizing."""
    moved: list[tuple[float, int, Component]] = []
    for i, comp in enumerate(members):
        obj = comp()
        spec = comp.profile.size
        if obj is None or spec is None or comp.size_len < 0:
            continue
        try:
            n = spec.length(obj)
        except Exception:  # the object's own len() failed: the round robin still sizes it
            continue
        if n != comp.size_len:
            moved.append((abs(n - comp.size_len) / (comp.size_len + 1), i, comp))
    return [c for _, _, c in heapq.nlargest(k, moved)]


class SizerJob:
    """The registry tick job refreshing the sampled sizes of every component in turn.

    Each tick walks the registry's members with a ``SizeSpec`` round-robin until the
    deadline passes, so many large collections share the collector's time budget instead of
    overrunning it. ``coverage()`` is the share sized in the last ``COVERAGE_WINDOW``.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._next = 0
        self._sized = 0
        self._total = 0

    def _members(self) -> list[Component]:
        out = []
        errors = self._registry.errors
        for group in self._registry.groups():
            for comp in list(group.members.values()):
                if comp.profile.resolve is not None:  # a decorated class's new instance
                    obj = comp()
                    if obj is not None:
                        resolve_profile(comp, obj, errors)
                    del obj
                if comp.profile.size is not None:
                    out.append(comp)
        return out

    def _refresh(self, comp: Component, deadline: float) -> None:
        obj = comp()
        if obj is None:
            return
        try:
            refresh(comp, obj, deadline)
        except BaseException as exc:
            # Without its traceback: the frames would hold the collection.
            self._registry.errors.record(comp.group.kind.name, comp.source(
                (comp.group.kind.bytes_metric or "", ())), exc.with_traceback(None))

    def __call__(self, deadline: float) -> None:
        members = self._members()
        n = len(members)
        recent = time.monotonic() - COVERAGE_WINDOW
        if n:
            # Growth first: the few whose length moved most since they were sized (a leaking
            # cache among thousands of sessions is sized every tick, not once per round).
            first = _grown(members, GROWN_FIRST)
            sized_first = {id(c) for c in first}  # by identity: weakrefs compare referents
            for j, comp in enumerate(first):
                if j and time.perf_counter() >= deadline:
                    break
                self._refresh(comp, deadline)
            start = self._next % n
            done = 0
            for comp in itertools.chain(members[start:], members[:start]):
                if (done or first) and time.perf_counter() >= deadline:
                    break
                done += 1
                if id(comp) not in sized_first:
                    self._refresh(comp, deadline)
            self._next = start + done
        self._total = n
        self._sized = sum(1 for c in members if c.size_at >= recent)

    def coverage(self) -> float | None:
        """Share of sampled components sized in the last window (None when there are none)."""
        return self._sized / self._total if self._total else None
