"""Caches: items, bytes, capacity, hits, misses, puts and evictions, in one line per cache.

``memexport.cache(obj, name=...)`` recognises, without configuration:

- ``functools.lru_cache`` / ``functools.cache`` wrappers: the very same wrapper is returned
  and read at scrape time from ``cache_info()`` (zero cost per call). Evictions of a bounded
  cache are derived as ``misses - currsize``: every miss stores its result and an entry only
  leaves to make room (a call that raises is a miss that stores nothing, so this is an upper
  bound); ``cache_clear()`` resets the wrapper's numbers, which the registry carries on from.
- cachetools caches (``memexport.integrations.cachetools``);
- ``dict``, ``OrderedDict`` and any ``MutableMapping``: a proxy counting ``[]``/``get`` hits
  and misses (a miss is the ``KeyError``, re-raised unchanged, or ``get`` returning its
  default; ``in`` is not a request), puts, explicit removals, and for a mapping with its own
  ``__setitem__`` (a bounded dict subclass) the entries that left during a put (capacity);
- get/put-style classes such as the guide's ``MemoryBoundedLRUCache``: a ``get`` hits unless
  it returns ``None`` (``miss=``), and entries that left during a ``put`` are capacity
  evictions, from the length before and after, so the class needs no change;
- anything else through explicit arguments (``items``, ``bytes``, ``max_items``,
  ``max_bytes``, ``lookups``, ``stores``).

Applied to a class (``@memexport.cache(name=...)``) it instruments every instance: the
class's own methods are replaced once, so instances stay instances of the real class.

Proxies are ``wrapt`` object proxies: ``isinstance`` holds, every attribute and operator
reaches the cache, results and exceptions are the cache's. ``type()`` is the proxy's;
pickling and ``copy`` give the wrapped cache (uninstrumented). The hot methods are built per
proxy as closures over its counters, so a hit costs a call and one ``Counter.inc``.

Bytes (``sizer=``): the cache's own accounting where it has one (cachetools with a
``getsizeof``), else a deep size sampled by the collector thread (``memexport.instrument.sizing``);
``"entry"`` or a callable ``(key, value) -> int`` sizes each entry once at insert (mappings
only); ``None`` exports no bytes; ``bytes=`` reads the cache's own figure.
"""

from __future__ import annotations

import functools
import gc
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from operator import attrgetter
from typing import Any

from memexport.core.counters import Counter
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY, Component, Group, Registry, validate_name
from memexport.instrument.proxy import Proxy
from memexport.instrument.readers import reader_from
from memexport.instrument.sizing import (
    SampledSize,
    Sizer,
    entry_size,
    shallow_size,
    sizer_job,
)

__all__ = ["KIND", "REASONS", "CacheProxy", "cache"]

KIND = Kind(
    "cache",
    "cache",
    (
        MetricDef("memexport_cache_items", "gauge", "Entries held by the cache."),
        MetricDef("memexport_cache_bytes", "gauge",
                  "Bytes held by the cache's entries (the cache's own accounting, sizes taken "
                  "at insert, or a deep size sampled by the collector).", "bytes"),
        MetricDef("memexport_cache_max_items", "gauge",
                  "Capacity of the cache in entries; absent when unbounded."),
        MetricDef("memexport_cache_max_bytes", "gauge",
                  "Capacity of the cache in bytes; absent when unbounded.", "bytes"),
        MetricDef("memexport_cache_requests_total", "counter",
                  "Lookups, by result (hit or miss).", labels=("result",)),
        MetricDef("memexport_cache_puts_total", "counter", "Entries stored."),
        MetricDef("memexport_cache_evictions_total", "counter",
                  "Entries that left the cache, by reason: capacity (the policy made room), "
                  "expired (TTL), explicit (deleted, popped or cleared by the app).",
                  labels=("reason",)),
        MetricDef("memexport_cache_evicted_bytes_total", "counter",
                  "Bytes of the entries that left the cache.", "bytes"),
    ),
    bytes_metric="memexport_cache_bytes",
)
REGISTRY.add_kind(KIND)

#: The values of the ``reason`` label.
CAPACITY, EXPIRED, EXPLICIT = "capacity", "expired", "explicit"
REASONS = (CAPACITY, EXPIRED, EXPLICIT)

_ITEMS = "memexport_cache_items"
_BYTES = "memexport_cache_bytes"
_MAX_ITEMS = "memexport_cache_max_items"
_MAX_BYTES = "memexport_cache_max_bytes"
_REQUESTS = "memexport_cache_requests_total"
_PUTS = "memexport_cache_puts_total"
_EVICTIONS = "memexport_cache_evictions_total"
_EVICTED_BYTES = "memexport_cache_evicted_bytes_total"

#: Attribute names read as a capacity in entries / bytes / MiB when nothing else says.
CAPACITY_ATTRS = ("maxsize", "max_items", "max_size", "max_entries", "capacity", "maxlen")
BYTES_LIMIT_ATTRS = ("max_bytes", "max_memory_bytes", "max_size_bytes")
MIB_LIMIT_ATTRS = ("max_memory_mb", "max_mb", "max_memory_mib")

_MISSING = object()
_SIZER_CHOICES = ("auto", "sampled", "entry", "own")

Reader = Callable[[Any], "float | int | None"]


class Counts:
    """The hot-path handles of one instrumented cache: bound ``inc``/``add``, no lock.

    Every eviction reason's series exists from the start (0), so ``rate()`` sees the first
    eviction, and nothing is created on the hot path while a scrape reads the component.
    """

    __slots__ = ("capacity", "evicted_bytes", "expired", "explicit", "hit", "miss", "put",
                 "sampled", "track_unsized", "unsized", "unsized_count")

    def __init__(self, comp: Component | Group, *, bytes_known: bool) -> None:
        self.hit = comp.counter(_REQUESTS, "hit").inc
        self.miss = comp.counter(_REQUESTS, "miss").inc
        self.put = comp.counter(_PUTS).inc
        self.capacity = comp.counter(_EVICTIONS, CAPACITY).inc
        self.expired = comp.counter(_EVICTIONS, EXPIRED).inc
        self.explicit = comp.counter(_EVICTIONS, EXPLICIT).inc
        self.evicted_bytes: Callable[[float], None] | None = (
            comp.adder(_EVICTED_BYTES).add if bytes_known else None)
        self.sampled: SampledSize | None = None
        #: Evictions whose bytes are unknown, for the estimator (not exported itself);
        #: only kept by decorated classes, whose instances may differ (sized or not).
        self.unsized_count = Counter()
        self.unsized = self.unsized_count.inc
        self.track_unsized = False

    def evicted(self, inc: Callable[[], int], n: int, nbytes: float | None = None) -> None:
        """Count ``n`` entries gone for one reason, and their bytes when known exactly.

        Unknown bytes (sampled sizer) are estimated off the hot path: each refresh of the
        sample adds the evictions since the last one times the mean entry size.
        """
        for _ in range(n):
            inc()
        if nbytes is None and self.track_unsized:
            unsized = self.unsized
            for _ in range(n):
                unsized()
        if nbytes is not None and nbytes > 0:
            add = self.evicted_bytes
            if add is not None:
                add(nbytes)


_estimate_lock = threading.Lock()
_estimate_last: dict[tuple[int, ...], list[int]] = {}


def _estimator(counts: Counts, counters: list[Counter] | None = None
               ) -> Callable[[SampledSize], None]:
    """Turn evictions into evicted bytes at each sample refresh: delta x mean entry size.

    ``counters`` are the evictions to convert (all of a proxy's, whose bytes are never known
    exactly when sampled); by default the class-wide count of evictions of unknown size.
    """
    sources = counters if counters is not None else [counts.unsized_count]
    add = counts.evicted_bytes
    # Eviction counters belong to the group, which every cache of one name shares: the
    # position reached is shared too, so each eviction is converted once, not once a member.
    with _estimate_lock:
        last = _estimate_last.setdefault(tuple(id(c) for c in sources), [0])

    def estimate(sampled: SampledSize) -> None:
        total = sum(c.value() for c in sources)
        with _estimate_lock:
            delta = total - last[0]
            last[0] = max(last[0], total)
        if delta > 0 and sampled.mean > 0 and add is not None:
            add(delta * sampled.mean)

    return estimate


# -- readers -------------------------------------------------------------------------------


def _unwrapped(reader: Reader) -> Reader:
    """A reader of the proxied cache, called with the proxy (what the registry holds)."""
    return lambda proxy: reader(proxy.__wrapped__)


def _attr_reader(obj: Any, names: Iterable[str], scale: float = 1.0) -> Reader | None:
    """A reader of the first numeric attribute of ``obj`` among ``names`` (None if none)."""
    for attr in names:
        try:
            value = getattr(obj, attr)
        except Exception:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            getter = attrgetter(attr)
            if scale == 1.0:
                return getter
            return lambda o, g=getter, s=scale: g(o) * s
    return None


_attr_names_cache: weakref.WeakKeyDictionary[type, tuple[str, ...]] = (
    weakref.WeakKeyDictionary())


def _attr_names(cls: type) -> tuple[str, ...]:
    """Instance attribute names a class's methods use (their code's ``co_names``)."""
    names = _attr_names_cache.get(cls)
    if names is None:
        seen: dict[str, None] = {}
        klasses = [k for k in cls.__mro__ if k is not object]
        in_classes = {n for k in klasses for n in vars(k)}
        for klass in klasses:
            for value in vars(klass).values():
                fn = getattr(value, "__func__", value)
                code = getattr(fn, "__code__", None)
                if code is not None:
                    for n in code.co_names:
                        if n not in in_classes and not n.startswith("__"):
                            seen[n] = None
        names = _attr_names_cache[cls] = tuple(seen)
    return names


def _store_of(obj: Any) -> str | None:
    """The attribute holding a get/put cache's entries: its only mapping attribute.

    Found through the names its methods use, never ``vars(obj)``: on Python 3.11+ that
    materialises the instance dict and slows every later attribute access of the object.
    """
    found = []
    for attr in _attr_names(type(obj)):
        try:
            value = getattr(obj, attr)
        except Exception:
            continue
        if isinstance(value, Mapping):
            found.append(attr)
    return found[0] if len(found) == 1 else None


def _mapping_entries(m: Any) -> Iterable[Any]:
    return dict.items(m) if isinstance(m, dict) else m.items()


def _mapping_overhead(m: Any) -> int:
    return shallow_size(m)


# -- registration --------------------------------------------------------------------------


class _Spec:
    """How to read one cache: the readers of the unwrapped cache, and the sizer."""

    __slots__ = ("bytes", "entries", "key_in", "length", "max_bytes", "max_items", "overhead",
                 "pairs", "store_attr")

    def __init__(self) -> None:
        self.length: Reader = len
        self.bytes: Reader | None = None
        self.max_items: Reader | None = None
        self.max_bytes: Reader | None = None
        self.entries: Callable[[Any], Iterable[Any]] | None = None
        self.overhead: Callable[[Any], int] = shallow_size
        self.pairs = True
        self.key_in: Callable[[Any, Any], bool] | None = None
        self.store_attr: str | None = None


def _register(target: Any, name: str, registry: Registry, spec: _Spec, *, sizer: str,
              unwrap: bool, counts: bool = True,
              on_sampled: Callable[[SampledSize], None] | None = None,
              ) -> tuple[Component, Counts | None]:
    """Register ``target`` (a proxy, or a real instance) and wire the gauges of ``spec``.

    Under the registry's lock, so that no scrape sees the component half wired (a scrape
    iterates a component's readers and counters outside the lock).
    """
    with registry.wiring:
        return _register_locked(target, name, registry, spec, sizer=sizer, unwrap=unwrap,
                                counts=counts, on_sampled=on_sampled)


def _register_locked(target: Any, name: str, registry: Registry, spec: _Spec, *, sizer: str,
                     unwrap: bool, counts: bool,
                     on_sampled: Callable[[SampledSize], None] | None,
                     ) -> tuple[Component, Counts | None]:
    comp = registry.register(target, KIND, name)
    wrap = _unwrapped if unwrap else (lambda r: r)
    comp.gauge(_ITEMS, wrap(spec.length))
    if spec.max_items is not None:
        comp.gauge(_MAX_ITEMS, wrap(spec.max_items))
    if spec.max_bytes is not None:
        comp.gauge(_MAX_BYTES, wrap(spec.max_bytes))
    sampled: SampledSize | None = None
    own = wrap(spec.bytes) if spec.bytes is not None else None
    if sizer == "sampled" and spec.entries is not None:
        entries, length, overhead = spec.entries, spec.length, spec.overhead
        source = f"cache {name!r} deep size"
        if unwrap:
            sampled = SampledSize(lambda p: entries(p.__wrapped__),
                                  lambda p: length(p.__wrapped__),
                                  lambda p: overhead(p.__wrapped__), pairs=spec.pairs,
                                  collector="cache", source=source)
        else:
            sampled = SampledSize(entries, length, overhead, pairs=spec.pairs,
                                  collector="cache", source=source)
        sizer_job(registry).track(target, sampled)
        if own is None:
            comp.gauge(_BYTES, sampled.read)
        else:  # the cache's own figure when it has one (per instance), else the sample
            read = sampled.read

            def own_or_sampled(o: Any) -> float | None:
                value = own(o)
                return read(o) if value is None else value

            comp.gauge(_BYTES, own_or_sampled)
        if on_sampled is not None:
            on_sampled(sampled)
    elif own is not None:
        comp.gauge(_BYTES, own)
    if not counts:
        return comp, None
    bytes_known = spec.bytes is not None or sampled is not None or sizer == "entry"
    c = Counts(comp, bytes_known=bytes_known)
    c.sampled = sampled
    if sampled is not None:
        sampled.on_refresh = _estimator(
            c, [comp.counter(_EVICTIONS, reason) for reason in REASONS])
    return comp, c


# -- proxies -------------------------------------------------------------------------------


def _release(cells: list[Any]) -> None:
    """Drop the proxy's references to the wrapped cache held in its methods' closures."""
    for cell in cells:
        cell.cell_contents = None


class CacheProxy(Proxy):
    """Base of memexport's cache proxies: the wrapped cache in every respect but ``type()``.

    Subclasses are made per proxy (``_make_proxy``) with the hot methods as closures over
    the counters. Cold methods (removals) read ``self._self_counts``.
    """

    # Plain attribute lookup: wrapt's __getattr__ still forwards what the proxy lacks, but
    # the proxy's own attributes skip the slower hook.
    __getattribute__ = object.__getattribute__


def _make_proxy(base: type[CacheProxy], wrapped: Any, dunders: dict[str, Any],
                release: Iterable[Any] = ()) -> CacheProxy:
    """A proxy of ``wrapped`` whose own class holds the special methods ``dunders``.

    Special methods must live on the type; closures spare them attribute lookups. ``release``
    lists closure values referencing the wrapped cache (its bound methods): the cells
    holding them are emptied when the proxy dies, since the per-proxy class (a reference
    cycle) may outlive it until the next garbage collection. That is safe because special
    methods only run on a live proxy.
    """
    ns: dict[str, Any] = {"__slots__": (), "__module__": __name__, **dunders}
    cls = type(base.__name__, (base,), ns)
    proxy = cls(wrapped)
    targets = {id(r) for r in release if r is not None}
    if targets:
        cells: list[Any] = []
        seen: set[int] = set()
        todo = list(dunders.values())
        while todo:  # the methods and the functions they close over
            fn = todo.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            for cell in getattr(fn, "__closure__", None) or ():
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                if id(value) in targets:
                    cells.append(cell)
                elif type(value) is type(_noop):
                    todo.append(value)
        weakref.finalize(proxy, _release, cells)
    return proxy


def _set_methods(proxy: CacheProxy, methods: dict[str, Callable[..., Any]]) -> None:
    """Give the proxy plain functions as its own attributes (found before the wrapped's).

    Unlike the special methods, these may be taken away (``get = cache.get``) and outlive
    the proxy, so they hold the wrapped cache like a bound method would: no cycle, nothing
    released.
    """
    for attr, fn in methods.items():
        fn.__name__ = attr
        proxy.__self_setattr__(attr, fn)


def _counted_get(mget: Callable[..., Any], hit: Callable[[], int],
                 miss: Callable[[], int]) -> Callable[..., Any]:
    """``get`` of a mapping cache: a hit unless the key is absent (then the default)."""
    def get(key: Any, default: Any = None) -> Any:
        value = mget(key, _MISSING)
        if value is _MISSING:
            miss()
            return default
        hit()
        return value
    return get


class MappingProxy(CacheProxy):
    """Proxy of a ``dict``/``MutableMapping`` cache: hits, misses, puts, explicit removals."""

    def __delitem__(self, key: Any) -> None:
        w = self.__wrapped__
        value = w[key] if self._self_sizes is not None and key in w else _MISSING
        del w[key]
        self._self_removed(((key, value),))

    def pop(self, key: Any, *default: Any) -> Any:
        w = self.__wrapped__
        value = w.pop(key, _MISSING)
        if value is _MISSING:
            if default:
                return default[0]
            raise KeyError(key)
        self._self_removed(((key, value),))
        return value

    def popitem(self, *args: Any, **kwargs: Any) -> Any:
        key, value = self.__wrapped__.popitem(*args, **kwargs)
        self._self_removed(((key, value),))
        return key, value

    def clear(self) -> None:
        w = self.__wrapped__
        gone = list(w.items()) if self._self_sizes is not None else [None] * len(w)
        w.clear()
        self._self_removed(gone)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        w = self.__wrapped__
        value = w.get(key, _MISSING)
        if value is not _MISSING:
            self._self_counts.hit()
            return value
        self._self_counts.miss()
        self[key] = default
        return default

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        if isinstance(other, Mapping):
            for key in other:
                self[key] = other[key]
        elif hasattr(other, "keys"):
            for key in other.keys():
                self[key] = other[key]
        else:
            for key, value in other:
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __ior__(self, other: Any) -> MappingProxy:
        self.update(other)
        return self

    def _self_removed(self, entries: Iterable[Any]) -> None:
        counts = self._self_counts
        sizes = self._self_sizes
        n = 0
        nbytes = 0.0
        for entry in entries:
            n += 1
            if sizes is not None and entry is not None:
                key = entry[0]
                try:
                    nbytes += sizes.pop(key, 0)
                except TypeError:  # unhashable key: it was never stored either
                    pass
        if n:
            if sizes is not None:
                self._self_total[0] -= nbytes
                counts.evicted(counts.explicit, n, nbytes)
            else:
                counts.evicted(counts.explicit, n)


def _noop() -> None:
    return None


def _mapping_proxy(m: Any, name: str, registry: Registry, spec: _Spec, sizer: str,
                   entry_sizer: Sizer | None) -> CacheProxy:
    """Proxy a ``dict``/``MutableMapping`` cache. The special methods close over the mapping
    itself (``m[key]`` is the interpreter's fastest lookup; released when the proxy dies)."""
    mget = m.get
    has_missing = hasattr(type(m), "__missing__")
    sizes: dict[Any, int] | None = {} if entry_sizer is not None else None
    total = [0.0]
    # Bound to the counters once the proxy is registered (the closures see the new values).
    hit = miss = put = _noop

    if has_missing:  # defaultdict & co: __missing__ answers instead of raising
        def __getitem__(self: Any, key: Any) -> Any:
            if key in m:
                hit()
            else:
                miss()
            return m[key]
    else:
        def __getitem__(self: Any, key: Any) -> Any:
            try:
                value = m[key]
            except KeyError:
                miss()
                raise
            hit()
            return value

    own_setitem = type(m).__setitem__ not in (dict.__setitem__, OrderedDict.__setitem__)
    if sizes is None and own_setitem:
        # A mapping with its own __setitem__ may evict (a bounded dict subclass): entries
        # that left during the put are capacity evictions, as for get/put caches.
        def __setitem__(self: Any, key: Any, value: Any) -> None:
            n = len(m) + (key not in m)
            m[key] = value
            put()
            if len(m) < n:
                counts = self._self_counts
                counts.evicted(counts.capacity, n - len(m))
    elif sizes is None:
        def __setitem__(self: Any, key: Any, value: Any) -> None:
            m[key] = value
            put()
    else:
        esize: Sizer = entry_sizer  # type: ignore[assignment]

        def __setitem__(self: Any, key: Any, value: Any) -> None:
            m[key] = value
            put()
            try:
                size = esize(key, value)
            except Exception as exc:
                registry.errors.record("cache", f"cache {name!r} sizer", exc)
                return
            old = sizes.get(key, 0)
            sizes[key] = size
            total[0] += size - old

        spec.bytes = lambda _m: total[0]

    proxy = _make_proxy(MappingProxy, m, {"__getitem__": __getitem__, "__setitem__": __setitem__},
                        release=(m,))
    proxy._self_sizes = sizes
    proxy._self_total = total
    _comp, counts = _register(proxy, name, registry, spec, sizer=sizer, unwrap=True)
    assert counts is not None
    proxy._self_counts = counts
    hit, miss, put = counts.hit, counts.miss, counts.put
    _set_methods(proxy, {"get": _counted_get(mget, hit, miss)})
    return proxy


class MethodsProxy(CacheProxy):
    """Proxy of a get/put-style cache (the guide's ``MemoryBoundedLRUCache``)."""


def _arity(fn: Callable[..., Any]) -> int | None:
    """The number of plain positional parameters of a bound method, when that is all it
    takes (so a fast wrapper can call it without ``*args``), else None."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params):
        return len(params)
    return None


def _counted_lookup(fn: Callable[..., Any], hit: Callable[[], int], miss: Callable[[], int],
                    miss_value: Any) -> Callable[..., Any]:
    """A lookup method: a hit unless it returns ``miss_value`` or raises ``KeyError``."""
    if _arity(fn) == 1:
        def lookup1(key: Any) -> Any:
            try:
                value = fn(key)
            except KeyError:
                miss()
                raise
            if value is miss_value:
                miss()
            else:
                hit()
            return value
        return lookup1

    def lookup(*args: Any, **kwargs: Any) -> Any:
        try:
            value = fn(*args, **kwargs)
        except KeyError:
            miss()
            raise
        if value is miss_value:
            miss()
        else:
            hit()
        return value
    return lookup


def _counted_store(w: Any, fn: Callable[..., Any], counts: Counts, length: Reader,
                   key_in: Callable[[Any, Any], bool] | None,
                   store_attr: str | None) -> Callable[..., Any]:
    """A store method: a put, and capacity evictions for the entries that left meanwhile
    (the length before, plus one for a new key, minus the length after)."""
    put = counts.put
    capacity = counts.capacity

    if store_attr is not None and _arity(fn) == 2 and length is not len:
        table = attrgetter(store_attr)

        def store2(key: Any, value: Any) -> Any:
            try:
                m = table(w)
                n = len(m) + (key not in m)
            except Exception:
                n = -1
            result = fn(key, value)
            put()
            if n > 0:
                try:
                    gone = n - len(table(w))
                except Exception:
                    gone = 0
                if gone == 1:
                    capacity()
                elif gone > 1:
                    for _ in range(gone):
                        capacity()
            return result
        return store2

    def store(*args: Any, **kwargs: Any) -> Any:
        try:
            n = length(w)
            key = args[0] if args else kwargs.get("key", _MISSING)
            new = key is _MISSING or key_in is None or not key_in(w, key)
        except Exception:
            n = -1
            new = True
        result = fn(*args, **kwargs)
        put()
        if n >= 0:
            try:
                gone = n + new - length(w)  # type: ignore[operator]
            except Exception:
                gone = 0
            if gone > 0:
                counts.evicted(capacity, gone)
        return result
    return store


def _getput_proxy(obj: Any, name: str, registry: Registry, spec: _Spec, sizer: str,
                  lookups: tuple[str, ...], stores: tuple[str, ...], miss_value: Any,
                  key_in: Callable[[Any, Any], bool] | None) -> CacheProxy:
    """Proxy a cache used through named lookup and store methods."""
    proxy = MethodsProxy(obj)
    _comp, counts = _register(proxy, name, registry, spec, sizer=sizer, unwrap=True)
    assert counts is not None
    proxy._self_counts = counts
    methods: dict[str, Callable[..., Any]] = {}
    for attr in lookups:
        methods[attr] = _counted_lookup(getattr(obj, attr), counts.hit, counts.miss, miss_value)
    for attr in stores:
        methods[attr] = _counted_store(obj, getattr(obj, attr), counts, spec.length, key_in,
                                       spec.store_attr)
    _set_methods(proxy, methods)
    return proxy


# -- functools.lru_cache -------------------------------------------------------------------


def _is_lru(obj: Any) -> bool:
    return (callable(obj) and callable(getattr(obj, "cache_info", None))
            and callable(getattr(obj, "cache_clear", None)) and hasattr(obj, "__wrapped__"))


def _lru_hits(f: Any) -> int:
    return f.cache_info().hits


def _lru_misses(f: Any) -> int:
    return f.cache_info().misses


def _lru_currsize(f: Any) -> int:
    return f.cache_info().currsize


def _lru_maxsize(f: Any) -> int | None:
    return f.cache_info().maxsize


def _lru_evictions(f: Any) -> int:
    info = f.cache_info()
    # Each miss stores one entry; only evictions make currsize lag behind (see module doc).
    return max(0, info.misses - info.currsize)


def _lru_parts(f: Any) -> tuple[list[Any], dict[Any, Any] | None]:
    """The wrapper's key/result objects and its cache dict, through the GC's view of it."""
    refs = gc.get_referents(f)
    try:
        own = object.__getattribute__(f, "__dict__")
    except AttributeError:
        own = None
    table = next((r for r in refs if type(r) is dict and r is not own), None)
    payload = [r for r in refs if type(r) is not type and r is not table and r is not own]
    return payload, table


def _lru_entries(f: Any) -> Iterable[Any]:
    info = f.cache_info()
    payload, table = _lru_parts(f)
    if info.maxsize is None:  # unbounded: the dict maps keys to results
        return table.items() if table is not None else ()
    # Bounded: the C traversal reports each link's key then its result, oldest first.
    n = 2 * info.currsize
    pairs = payload[:n]
    return zip(pairs[0::2], pairs[1::2], strict=False)


def _lru_overhead(f: Any) -> int:
    info = f.cache_info()
    _payload, table = _lru_parts(f)
    link = 0
    if info.maxsize is not None and table:
        link = shallow_size(next(iter(table.values()), None)) * len(table)
    return shallow_size(f) + shallow_size(table) + link


_instrumented: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_instrumented_lock = threading.Lock()


def _claim(obj: Any, name: str) -> bool:
    """Mark ``obj`` (an lru_cache wrapper or a class) instrumented; False if it already is."""
    with _instrumented_lock:
        known = _instrumented.get(obj)
        if known is not None:
            if known != name:
                raise ValueError(f"{obj!r} is already instrumented as cache {known!r}, "
                                 f"not {name!r}")
            return False
        _instrumented[obj] = name
        return True


def _instrument_lru(f: Any, name: str, registry: Registry, sizer: str,
                    bytes_: Reader | None) -> Any:
    if not _claim(f, name):
        return f
    with registry.wiring:  # wired before any scrape sees it
        _wire_lru(f, name, registry, sizer, bytes_)
    return f


def _wire_lru(f: Any, name: str, registry: Registry, sizer: str,
              bytes_: Reader | None) -> None:
    comp = registry.register(f, KIND, name)
    comp.gauge(_ITEMS, _lru_currsize)
    comp.pulled_counter(_REQUESTS, _lru_hits, "hit")
    comp.pulled_counter(_REQUESTS, _lru_misses, "miss")
    comp.pulled_counter(_PUTS, _lru_misses)  # every miss stores its result
    if f.cache_info().maxsize is not None:
        comp.gauge(_MAX_ITEMS, _lru_maxsize)
        comp.pulled_counter(_EVICTIONS, _lru_evictions, CAPACITY)
    if bytes_ is not None:
        comp.gauge(_BYTES, bytes_)
    elif sizer in ("auto", "sampled"):
        sampled = SampledSize(_lru_entries, _lru_currsize, _lru_overhead, pairs=True,
                              collector="cache", source=f"cache {name!r} deep size")
        comp.gauge(_BYTES, sampled.read)
        sizer_job(registry).track(f, sampled)


# -- classes -------------------------------------------------------------------------------

_DICT_EXTRAS = ("get", "setdefault", "pop", "popitem", "clear", "update")


def _counted_getitem(orig_getitem: Callable[[Any, Any], Any],
                     contains: Callable[[Any, Any], bool], has_missing: bool,
                     hit: Callable[[], int], miss: Callable[[], int]) -> Callable[..., Any]:
    """A class-level ``__getitem__`` counting hits and misses. A class with ``__missing__``
    (defaultdict-like, cachetools) does not raise on a miss: ask ``contains`` first."""
    if has_missing:
        def __getitem__(self: Any, key: Any) -> Any:
            if contains(self, key):
                hit()
            else:
                miss()
            return orig_getitem(self, key)
    else:
        def __getitem__(self: Any, key: Any) -> Any:
            try:
                value = orig_getitem(self, key)
            except KeyError:
                miss()
                raise
            hit()
            return value
    return __getitem__


def _instrument_mapping_class(cls: type, name: str, registry: Registry, sizer: str,
                              spec_for: Callable[[Any], _Spec]) -> type:
    """Count on the class's own methods, so every instance is counted (and stays ``cls``)."""
    counts = Counts(registry.group(KIND, name), bytes_known=sizer == "sampled")
    hit, miss, put = counts.hit, counts.miss, counts.put
    orig_getitem = cls.__getitem__
    orig_setitem = cls.__setitem__
    orig_delitem = cls.__delitem__
    has_missing = hasattr(cls, "__missing__")
    is_dict = issubclass(cls, dict)
    contains = dict.__contains__ if is_dict else cls.__contains__

    __getitem__ = _counted_getitem(orig_getitem, contains, has_missing, hit, miss)

    def __setitem__(self: Any, key: Any, value: Any) -> None:
        orig_setitem(self, key, value)
        put()

    def __delitem__(self: Any, key: Any) -> None:
        orig_delitem(self, key)
        counts.evicted(counts.explicit, 1)

    patched: dict[str, Callable[..., Any]] = {
        "__getitem__": __getitem__, "__setitem__": __setitem__, "__delitem__": __delitem__}
    if is_dict:
        # dict's own methods never call the primitives above: count them too.
        def get(self: Any, key: Any, default: Any = None) -> Any:
            value = dict.get(self, key, _MISSING)
            if value is _MISSING:
                miss()
                return default
            hit()
            return value

        def setdefault(self: Any, key: Any, default: Any = None) -> Any:
            value = dict.get(self, key, _MISSING)
            if value is not _MISSING:
                hit()
                return value
            miss()
            put()
            return dict.setdefault(self, key, default)

        def pop(self: Any, key: Any, *default: Any) -> Any:
            value = dict.pop(self, key, _MISSING)
            if value is _MISSING:
                if default:
                    return default[0]
                raise KeyError(key)
            counts.evicted(counts.explicit, 1)
            return value

        def popitem(self: Any) -> Any:
            item = dict.popitem(self)
            counts.evicted(counts.explicit, 1)
            return item

        def clear(self: Any) -> None:
            n = dict.__len__(self)
            dict.clear(self)
            counts.evicted(counts.explicit, n)

        def update(self: Any, other: Any = (), /, **kwargs: Any) -> None:
            before = dict.__len__(self)
            n = 0
            if isinstance(other, Mapping):
                n = len(other)
            elif hasattr(other, "keys"):
                other = {k: other[k] for k in other.keys()}
                n = len(other)
            else:
                other = list(other)
                n = len(other)
            dict.update(self, other, **kwargs)
            for _ in range(n + len(kwargs)):
                put()
            del before

        for attr, fn in (("get", get), ("setdefault", setdefault), ("pop", pop),
                         ("popitem", popitem), ("clear", clear), ("update", update)):
            if getattr(cls, attr) is getattr(dict, attr):
                patched[attr] = fn
    _patch(cls, patched)
    _register_instances(cls, name, registry, sizer, spec_for, _set_sampled(counts))
    return cls


def _set_sampled(counts: Counts) -> Callable[[SampledSize], None]:
    """Evicted bytes of a decorated class: estimated at the refreshes of its newest
    instance's sample (one estimator for the class, moved from instance to instance)."""
    counts.track_unsized = True
    estimate = _estimator(counts)

    def set_sampled(sampled: SampledSize) -> None:
        old = counts.sampled
        if old is not None:
            old.on_refresh = None
        counts.sampled = sampled
        sampled.on_refresh = estimate
    return set_sampled


def _patch(cls: type, methods: dict[str, Callable[..., Any]]) -> None:
    for attr, fn in methods.items():
        orig = getattr(cls, attr, None)
        fn.__name__ = attr
        fn.__qualname__ = f"{cls.__qualname__}.{attr}"
        fn.__doc__ = getattr(orig, "__doc__", None)
        fn.__wrapped__ = orig  # type: ignore[attr-defined]
        setattr(cls, attr, fn)


def _register_instances(cls: type, name: str, registry: Registry, sizer: str,
                        spec_for: Callable[[Any], _Spec],
                        on_sampled: Callable[[SampledSize], None] | None = None) -> None:
    """Register every new instance of ``cls`` (also those made by copy and unpickling)."""
    orig_new = cls.__new__
    plain = orig_new is object.__new__

    def __new__(klass: type, *args: Any, **kwargs: Any) -> Any:
        self = orig_new(klass) if plain else orig_new(klass, *args, **kwargs)
        try:
            _register(self, name, registry, spec_for(klass), sizer=sizer, unwrap=False,
                      counts=False, on_sampled=on_sampled)
        except Exception as exc:  # never fail the app's constructor
            registry.errors.record("cache", f"cache {name!r} instance", exc)
        return self

    __new__.__qualname__ = f"{cls.__qualname__}.__new__"
    cls.__new__ = staticmethod(__new__)  # type: ignore[assignment]


def _instrument_getput_class(cls: type, name: str, registry: Registry, sizer: str,
                             spec_for: Callable[[Any], _Spec], lookups: tuple[str, ...],
                             stores: tuple[str, ...], miss_value: Any) -> type:
    counts = Counts(registry.group(KIND, name), bytes_known=sizer == "sampled")
    hit, miss, put = counts.hit, counts.miss, counts.put
    patched: dict[str, Callable[..., Any]] = {}

    def make_lookup(orig: Callable[..., Any]) -> Callable[..., Any]:
        def lookup(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                value = orig(self, *args, **kwargs)
            except KeyError:
                miss()
                raise
            if value is miss_value:
                miss()
            else:
                hit()
            return value
        return lookup

    def make_store(orig: Callable[..., Any]) -> Callable[..., Any]:
        def store(self: Any, *args: Any, **kwargs: Any) -> Any:
            spec = spec_for(type(self))
            try:
                n = spec.length(self)
                key = args[0] if args else kwargs.get("key", _MISSING)
                key_in = spec.key_in
                new = key is _MISSING or key_in is None or not key_in(self, key)
            except Exception:
                n = -1
                new = True
            result = orig(self, *args, **kwargs)
            put()
            if n >= 0:
                try:
                    gone = n + new - spec.length(self)
                except Exception:
                    gone = 0
                if gone > 0:
                    counts.evicted(counts.capacity, gone)
            return result
        return store

    for attr in lookups:
        patched[attr] = make_lookup(getattr(cls, attr))
    for attr in stores:
        patched[attr] = make_store(getattr(cls, attr))
    _patch(cls, patched)
    _register_instances(cls, name, registry, sizer, spec_for, _set_sampled(counts))
    return cls


# -- specs ---------------------------------------------------------------------------------


def _getput_spec(obj_or_cls: Any, items: Reader | None, bytes_: Reader | None,
                 max_items: Reader | None, max_bytes: Reader | None) -> _Spec:
    """Readers for a get/put cache. Its entries mapping (the only mapping attribute) is
    found once: now for an instance, at the first read for a class."""
    spec = _Spec()
    found: list[str] = []
    if not isinstance(obj_or_cls, type):
        attr = _store_of(obj_or_cls)
        if attr is not None:
            found.append(attr)

    def store(o: Any) -> Any:
        if not found:
            attr = _store_of(o)
            if attr is None:
                raise TypeError(f"cannot find the entries of {type(o).__qualname__}: "
                                f"pass items=")
            found.append(attr)
        return getattr(o, found[0])

    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    if items is not None:
        spec.length = items
    elif hasattr(cls, "__len__"):
        spec.length = len
    else:
        spec.length = lambda o: len(store(o))
    spec.bytes = bytes_
    if bytes_ is None:
        spec.entries = lambda o: _mapping_entries(store(o))
    spec.overhead = lambda o: shallow_size(store(o))
    spec.max_items = max_items
    spec.max_bytes = max_bytes
    spec.key_in = _key_in_for(cls, store)
    if found and items is None and not hasattr(cls, "__len__"):
        spec.store_attr = found[0]
    return spec


def _key_in_for(cls: type, store: Callable[[Any], Any]) -> Callable[[Any, Any], bool]:
    """Whether a get/put cache holds a key: through its ``in``, else its entries mapping."""
    if hasattr(cls, "__contains__"):
        return lambda o, key: key in o

    def key_in(o: Any, key: Any) -> bool:
        try:
            return key in store(o)
        except TypeError:
            return False
    return key_in


def _capacity_readers(obj: Any, max_items: Reader | None,
                      max_bytes: Reader | None) -> tuple[Reader | None, Reader | None]:
    """Explicit capacity readers, else ones found by attribute name on the instance."""
    if max_items is None:
        max_items = _attr_reader(obj, CAPACITY_ATTRS)
    if max_bytes is None:
        max_bytes = _attr_reader(obj, BYTES_LIMIT_ATTRS) or _attr_reader(
            obj, MIB_LIMIT_ATTRS, float(2**20))
    return max_items, max_bytes


def _mapping_spec(m: Any, items: Reader | None, bytes_: Reader | None,
                  max_items: Reader | None, max_bytes: Reader | None) -> _Spec:
    spec = _Spec()
    spec.length = items or len
    spec.bytes = bytes_
    if bytes_ is None:
        spec.entries = _mapping_entries
    spec.overhead = _mapping_overhead
    spec.max_items, spec.max_bytes = max_items, max_bytes
    return spec


# -- the public entry point ----------------------------------------------------------------


def _sizer_mode(sizer: Any) -> tuple[str, Sizer | None]:
    if sizer is None:
        return "none", None
    if isinstance(sizer, str):
        if sizer not in _SIZER_CHOICES:
            raise ValueError(f"sizer={sizer!r}: use one of {_SIZER_CHOICES}, None, or a "
                             f"callable (key, value) -> bytes")
        return sizer, (entry_size if sizer == "entry" else None)
    if callable(sizer):
        return "entry", sizer
    raise ValueError(f"sizer={sizer!r}: use one of {_SIZER_CHOICES}, None, or a callable "
                     f"(key, value) -> bytes")


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    out = tuple(value)
    for n in out:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"{what}={value!r}: give method names")
    return out


def cache(obj: Any = None, /, *, name: str, sizer: Any = "auto", items: Any = None,
          bytes: Any = None, max_items: Any = None, max_bytes: Any = None,
          lookups: Any = None, stores: Any = None, miss: Any = None,
          registry: Registry = REGISTRY) -> Any:
    """Instrument a cache (or, applied to a class, every instance of it) under ``name``.

    Returns an object that behaves as ``obj``: the same ``lru_cache`` wrapper, a proxy of a
    mapping, cachetools or get/put cache, or the class itself (patched once). Without
    ``obj`` it returns a decorator. Explicit arguments override what is recognised:
    ``items``/``bytes``/``max_items``/``max_bytes`` (an attribute name, a number or a
    callable ``cache -> number``), ``lookups``/``stores`` (method names), ``miss`` (what a
    lookup returns on a miss, default None), ``sizer`` (``"auto"``, ``"sampled"``,
    ``"entry"``, ``"own"``, None, or a callable ``(key, value) -> bytes``).
    """
    validate_name("cache", name)
    mode, entry_sizer = _sizer_mode(sizer)
    items_r = reader_from(items, "items")
    bytes_r = reader_from(bytes, "bytes")
    max_items_r = reader_from(max_items, "max_items")
    max_bytes_r = reader_from(max_bytes, "max_bytes")
    lookup_names = _names(lookups, "lookups")
    store_names = _names(stores, "stores")
    if not isinstance(registry, Registry):
        raise ValueError(f"registry={registry!r} is not a memexport Registry")
    if obj is None:
        def decorate(target: Any) -> Any:
            return cache(target, name=name, sizer=sizer, items=items, bytes=bytes,
                         max_items=max_items, max_bytes=max_bytes, lookups=lookups,
                         stores=stores, miss=miss, registry=registry)
        return decorate

    from memexport.integrations import cachetools as ct

    if isinstance(obj, type):
        return _instrument_class(obj, name, registry, mode, items_r, bytes_r, max_items_r,
                                 max_bytes_r, lookup_names, store_names, miss)
    if issubclass(type(obj), CacheProxy):
        raise ValueError(f"this cache is already instrumented (as {obj._self_name!r})"
                         if hasattr(obj, "_self_name") else "this cache is already instrumented")
    if _is_lru(obj) and not lookup_names and not store_names:
        if mode == "entry":
            raise ValueError("sizer='entry' cannot see an lru_cache's inserts: use 'sampled'")
        return _instrument_lru(obj, name, registry, mode, bytes_r)
    if ct.is_cache(obj) and not lookup_names and not store_names:
        return ct.instrument(obj, name=name, registry=registry, sizer=mode,
                             entry_sizer=entry_sizer, items=items_r, bytes_=bytes_r,
                             max_items=max_items_r, max_bytes=max_bytes_r)
    if isinstance(obj, MutableMapping) and not lookup_names and not store_names:
        if mode == "own" and bytes_r is None:
            raise ValueError(f"sizer='own': a {type(obj).__qualname__} keeps no byte count; "
                             f"pass bytes= or use sizer='sampled'")
        spec = _mapping_spec(obj, items_r, bytes_r,
                             *_capacity_readers(obj, max_items_r, max_bytes_r))
        proxy = _mapping_proxy(obj, name, registry, spec,
                               "sampled" if mode == "auto" else mode, entry_sizer)
        proxy._self_name = name
        return proxy
    lookup_names, store_names = _getput_methods(
        obj, type(obj).__qualname__, "a", "an lru_cache, cachetools cache, mapping or get/put "
        "cache", lookup_names, store_names)
    if mode == "entry":
        raise ValueError("sizer='entry' needs a mapping cache (entries leave a get/put cache "
                         "inside its own code): use sizer='sampled' or bytes=")
    mi, mb = _capacity_readers(obj, max_items_r, max_bytes_r)
    spec = _getput_spec(obj, items_r, bytes_r, mi, mb)
    try:
        spec.length(obj)
    except Exception as exc:
        raise TypeError(f"cannot count the entries of {type(obj).__qualname__} ({exc}): "
                        f"pass items= (an attribute name or a callable)") from None
    proxy = _getput_proxy(obj, name, registry, spec, "none" if mode == "none" else "sampled",
                          lookup_names, store_names, miss, spec.key_in)
    proxy._self_name = name
    return proxy


def _getput_methods(target: Any, what: str, article: str, recognised: str,
                    lookups: tuple[str, ...], stores: tuple[str, ...]
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The lookup and store methods of a get/put cache (instance or class): the given ones,
    else ``get`` with ``put``/``set``; a ``TypeError`` saying what to pass when there are none."""
    if not lookups and not stores and callable(getattr(target, "get", None)):
        stores = tuple(a for a in ("put", "set") if callable(getattr(target, a, None)))
        if stores:
            lookups = ("get",)
    if not lookups and not stores:
        raise TypeError(
            f"memexport.cache does not recognise {article} {what}: it is not {recognised}. "
            f"Pass lookups=('get',...) and/or stores=('put',...) naming its methods, and "
            f"items= (an attribute name or a callable cache -> number of entries); optionally "
            f"bytes=, max_items=, max_bytes=")
    for attr in (*lookups, *stores):
        if not callable(getattr(target, attr, None)):
            raise ValueError(f"{what} has no method {attr!r}")
    return lookups, stores


def _instrument_class(cls: type, name: str, registry: Registry, mode: str,
                      items: Reader | None, bytes_: Reader | None, max_items: Reader | None,
                      max_bytes: Reader | None, lookups: tuple[str, ...],
                      stores: tuple[str, ...], miss_value: Any) -> type:
    from memexport.integrations import cachetools as ct

    if mode == "entry":
        raise ValueError("sizer='entry' is for proxied mappings; a class decorator samples "
                         "(sizer='sampled') or reads bytes=")
    if not cls.__weakrefoffset__:
        raise TypeError(f"memexport cannot track instances of {cls.__qualname__}: they do not "
                        f"support weak references (add '__weakref__' to its __slots__)")
    sampling = "none" if mode == "none" else "sampled"
    if ct.is_cache_class(cls) and not lookups and not stores:
        if not _claim(cls, name):
            return cls
        return ct.instrument_class(cls, name=name, registry=registry, sizer=mode,
                                   items=items, bytes_=bytes_, max_items=max_items,
                                   max_bytes=max_bytes)
    if issubclass(cls, MutableMapping) and not lookups and not stores:
        if not _claim(cls, name):
            return cls

        @functools.cache
        def mapping_spec(klass: type) -> _Spec:
            return _mapping_spec(None, items, bytes_, max_items, max_bytes)

        return _instrument_mapping_class(cls, name, registry, sampling, mapping_spec)
    lookups, stores = _getput_methods(
        cls, cls.__qualname__, "the class", "a cachetools cache, a mapping or a get/put cache",
        lookups, stores)
    if not _claim(cls, name):
        return cls
    specs: dict[type, _Spec] = {}

    def getput_spec(klass: type) -> _Spec:
        spec = specs.get(klass)
        if spec is None:
            spec = _getput_spec(klass, items, bytes_, max_items, max_bytes)
            spec.max_items = max_items or _lazy_attr(CAPACITY_ATTRS)
            spec.max_bytes = max_bytes or _lazy_bytes_limit()
            specs[klass] = spec
        return spec

    return _instrument_getput_class(cls, name, registry, sampling, getput_spec, lookups,
                                    stores, miss_value)


def _lazy_attr(names: tuple[str, ...], scale: float = 1.0) -> Reader:
    """A reader of the first numeric attribute among ``names`` (None when there is none)."""
    def read(o: Any) -> float | None:
        for attr in names:
            value = getattr(o, attr, None)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return value * scale
        return None
    return read


def _lazy_bytes_limit() -> Reader:
    in_bytes = _lazy_attr(BYTES_LIMIT_ATTRS)
    in_mib = _lazy_attr(MIB_LIMIT_ATTRS, float(2**20))
    return lambda o: in_bytes(o) or in_mib(o)

