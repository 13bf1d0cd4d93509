"""Deep object sizes, cheap enough to be taken where they belong: per entry, or sampled.

``sys.getsizeof`` (what the guide's classes use) counts only an object's own header, so a
dict of chat messages looks a few hundred bytes big whatever the messages hold. ``deep_size``
walks the object graph instead, the way ``objsize.get_deep_size`` does: every object reached
through ``gc.get_referents`` is counted once, and shared objects — types, modules,
functions, code, frames — are skipped. Unlike objsize, the ``str`` keys of dicts are counted
(CPython's dict traversal does not report them, so objsize leaves them out).

Deep sizes cost microseconds per entry, so they stay off the application's hot path:

- ``entry_size(key, value)`` is the per-entry sizer, for a size taken once at insert;
- ``SampledSize`` keeps an estimate of a collection's deep size that the collector thread
  refreshes (``SizerJob``, a registry tick job) in bounded time per tick: collections up
  to ``sample`` entries are walked whole, larger ones through a rotating window of entries
  whose mean size is scaled by the length.
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
import time
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "DEFAULT_LIMIT_OBJECTS",
    "DEFAULT_SAMPLE",
    "SampledSize",
    "Sizer",
    "SizerJob",
    "deep_size",
    "deep_size_many",
    "entry_size",
    "sizer_job",
]

#: A per-entry sizer: ``sizer(key, value) -> bytes``, called once when an entry is stored.
Sizer = Callable[[Any, Any], int]

#: Objects one entry's walk may visit before it stops (a lower bound is returned then).
DEFAULT_LIMIT_OBJECTS = 100_000
#: Entries a ``SampledSize`` walks per refresh (all of them in collections this small).
DEFAULT_SAMPLE = 256

#: Time the first scrape-time read may spend when no collector tick has sized a collection.
FIRST_READ_SECONDS = 0.005

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


class SampledSize:
    """The deep size of a collection, estimated off the hot path and read at scrape time.

    ``entries(obj)`` iterates the collection's entries; with ``pairs`` each entry is a
    ``(key, value)`` tuple made on the fly (the tuple itself is not counted);
    ``length(obj)`` is their number; ``overhead(obj)`` the bytes of the container itself
    (hash tables, order lists). ``refresh`` is called by the collector thread; ``read`` is
    the scrape-time gauge reader. Holds no reference to the collection.
    """

    __slots__ = ("__weakref__", "_cursor", "_lock", "_windows", "collector", "entries",
                 "length", "mean", "on_refresh", "overhead", "pairs", "refreshes", "sample",
                 "source", "value")

    def __init__(self, entries: Callable[[Any], Iterable[Any]], length: Callable[[Any], int],
                 overhead: Callable[[Any], int] = shallow_size, *, pairs: bool = False,
                 sample: int = DEFAULT_SAMPLE, collector: str = "sizer",
                 source: str = "deep size") -> None:
        if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
            raise ValueError(f"sample must be a positive int, got {sample!r}")
        self.entries = entries
        self.length = length
        self.overhead = overhead
        self.pairs = pairs
        self.sample = sample
        self.collector = collector
        self.source = source
        self.value: float | None = None
        #: Mean bytes per entry at the last refresh (0.0 before the first, or when empty).
        self.mean = 0.0
        #: Called with this object after each refresh (e.g. to turn counts into bytes).
        self.on_refresh: Callable[[SampledSize], None] | None = None
        self.refreshes = 0
        self._cursor = 0
        # (bytes, entries) of the last few windows: the mean entry size of a large collection.
        self._windows: deque[tuple[int, int]] = deque(maxlen=8)
        self._lock = threading.Lock()

    def _walk(self, it: Iterable[Any], seen: set[int],
              deadline: float | None) -> tuple[int, int]:
        size = 0
        count = 0
        limit = DEFAULT_LIMIT_OBJECTS
        clock = time.perf_counter
        pairs = self.pairs
        for entry in it:
            if pairs:
                size += deep_size_many(entry, seen, limit_objects=limit)
            else:
                size += deep_size_many((entry,), seen, limit_objects=limit)
            count += 1
            if deadline is not None and clock() >= deadline:
                break
        return size, count

    def refresh(self, obj: Any, deadline: float | None = None) -> float | None:
        """Re-estimate from ``obj`` now, stopping at ``deadline`` (``time.perf_counter()``).

        A collection of at most ``sample`` entries walked whole is measured exactly (shared
        objects once); otherwise the mean size of the entries walked in the last windows is
        scaled by the length. Keeps the last value if the collection changed size while
        being walked (another thread writing to it): the next tick tries again.
        """
        if not self._lock.acquire(blocking=False):
            return self.value
        try:
            n = self.length(obj)
            seen: set[int] = set()
            start = self._cursor if self._cursor < n else 0
            try:
                if n <= self.sample:
                    size, count = self._walk(self.entries(obj), seen, deadline)
                else:
                    window = itertools.islice(self.entries(obj), start, start + self.sample)
                    size, count = self._walk(window, seen, deadline)
            except RuntimeError:  # "changed size during iteration": try again next tick
                return self.value
            if start == 0 and count >= n:  # the whole collection: exact
                self._windows.clear()
                self._cursor = 0
                estimate = float(size)
                if count:
                    self.mean = size / count
            else:
                self._cursor = start + count if count else 0
                if count:
                    self._windows.append((size, count))
                total_b = sum(b for b, _ in self._windows)
                total_n = sum(c for _, c in self._windows)
                if total_n:
                    self.mean = total_b / total_n
                estimate = n * self.mean
            estimate += self.overhead(obj)
            self.value = estimate
            self.refreshes += 1
            hook = self.on_refresh
            if hook is not None:
                hook(self)
            return estimate
        finally:
            self._lock.release()

    def read(self, obj: Any) -> float | None:
        """Scrape-time reader: the last estimate (taken now, once, if none was taken yet)."""
        value = self.value
        if value is None:
            value = self.refresh(obj, time.perf_counter() + FIRST_READ_SECONDS)
        return value

    def mean_entry_size(self) -> float:
        """Mean bytes per entry at the last refresh (0 before the first)."""
        return self.mean


class SizerJob:
    """The registry tick job refreshing every ``SampledSize`` of one registry in turn.

    Each tick walks the tracked collections round-robin until the deadline passes, so many
    large caches share the collector's time budget instead of overrunning it.
    """

    def __init__(self, record_error: Callable[[str, str, BaseException], None]) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[weakref.ref[Any], SampledSize]] = []
        self._next = 0
        self._record_error = record_error

    def track(self, obj: Any, sampled: SampledSize) -> None:
        """Refresh ``sampled`` from ``obj`` on each tick while ``obj`` lives (held weakly)."""
        ref = weakref.ref(obj)
        with self._lock:
            self._items.append((ref, sampled))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __call__(self, deadline: float) -> None:
        with self._lock:
            self._items = [(r, s) for r, s in self._items if r() is not None]
            items = list(self._items)
        if not items:
            return
        start = self._next % len(items)
        done = 0
        for ref, sampled in itertools.chain(items[start:], items[:start]):
            if done and time.perf_counter() >= deadline:
                break
            obj = ref()
            done += 1
            if obj is None:
                continue
            try:
                sampled.refresh(obj, deadline)
            except Exception as exc:
                # Without its traceback: the frames would hold the collection (the error
                # log's record can outlive this call).
                self._record_error(sampled.collector, sampled.source,
                                   exc.with_traceback(None))
            del obj
        self._next = start + done


_jobs: weakref.WeakKeyDictionary[Any, SizerJob] = weakref.WeakKeyDictionary()
_jobs_lock = threading.Lock()


def sizer_job(registry: Any) -> SizerJob:
    """The ``SizerJob`` of ``registry`` (a ``memexport.core.registry.Registry``), installed as its
    ``"sizer"`` tick job on first use."""
    with _jobs_lock:
        job = _jobs.get(registry)
        created = job is None
        if job is None:
            job = _jobs[registry] = SizerJob(registry.errors.record)
    if created:  # outside our lock: callers may hold the registry's lock (no lock cycle)
        registry.add_tick_job("sizer", job)
    return job
