"""cachetools caches (``Cache``, ``LRUCache``, ``LFUCache``, ``FIFOCache``, ``RRCache``,
``TTLCache``, ``TLRUCache`` and subclasses), for ``memexport.cache``.

Active only when the application imported cachetools (looked up in ``sys.modules``).

- items: the entries stored (read from the cache's table: reading never expires anything,
  so a TTL cache's expired entries count until cachetools purges them on its next write);
- bytes: with a ``getsizeof``, the cache's own ``currsize`` (and ``maxsize`` is the byte
  capacity); without, a deep size sampled by the collector (and ``maxsize`` is the capacity
  in entries);
- hits and misses on ``[]`` and ``get`` (a miss is cachetools' ``__missing__``: the
  ``KeyError``, or, when a subclass defines ``__missing__``, a key not present);
- evictions: ``capacity`` for the entries ``popitem`` removed to make room (seen from the
  length before and after a put through the proxy; every ``popitem`` call on a decorated
  class), ``expired`` for those ``expire`` removed (a TTL proxy calls ``expire`` itself,
  under the cache's frozen timer, before the operations that would purge silently),
  ``explicit`` for ``del``, ``pop`` and ``clear``; evicted bytes from ``getsizeof`` (exact)
  or the sampled mean entry size (estimate).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

from memexport.core.registry import Registry
from memexport.instrument.sizing import Sizer, shallow_size
from memexport.kinds.cache import (
    _MISSING,
    EXPIRED,
    EXPLICIT,
    KIND,
    CacheProxy,
    Counts,
    Reader,
    _counted_get,
    _counted_getitem,
    _make_proxy,
    _noop,
    _patch,
    _register,
    _register_instances,
    _set_methods,
    _set_sampled,
    _Spec,
)

__all__ = ["CachetoolsProxy", "instrument", "instrument_class", "is_cache", "is_cache_class"]

_DATA = "_Cache__data"
_SIZE = "_Cache__size"
_CURR = "_Cache__currsize"


def _module() -> Any:
    return sys.modules.get("cachetools")


def is_cache(obj: Any) -> bool:
    """Whether ``obj`` is a cachetools cache (False when cachetools was never imported)."""
    ct = _module()
    return ct is not None and isinstance(obj, ct.Cache)


def is_cache_class(cls: type) -> bool:
    ct = _module()
    return ct is not None and isinstance(cls, type) and issubclass(cls, ct.Cache)


def _timed(c: Any) -> bool:
    return callable(getattr(type(c), "expire", None)) and hasattr(type(c), "timer")


def _sized(c: Any) -> bool:
    return getattr(c, _SIZE, None) is not None


#: Internal tables of the cachetools classes (read by name: ``vars()`` of a 3.11+ object
#: materialises its dict and slows the cache's own attribute accesses by a third).
_TABLES = ("_Cache__data", "_Cache__size", "_LRUCache__order", "_FIFOCache__order",
           "_LFUCache__links", "_RRCache__index", "_RRCache__keys", "_TTLCache__links",
           "_TLRUCache__items", "_TLRUCache__order")
_LINKED = ("_TTLCache__links", "_TLRUCache__items")


def _internal(c: Any) -> bool:
    return isinstance(getattr(c, _DATA, None), dict)


def _items(c: Any) -> int:
    return len(getattr(c, _DATA))


def _currsize(c: Any) -> int:
    return getattr(c, _CURR)


def _maxsize(c: Any) -> float | None:
    m = c.maxsize
    return m if math.isfinite(m) else None


def _entries(c: Any) -> Iterable[Any]:
    return getattr(c, _DATA).items()


def _overhead(c: Any) -> int:
    """The cache object and its internal tables (order dicts, size dict, links, keys list)."""
    total = shallow_size(c)
    for attr in _TABLES:
        table = getattr(c, attr, None)
        if table is not None:
            total += shallow_size(table)
    for attr in _LINKED:  # one small link object per key
        table = getattr(c, attr, None)
        if table:
            total += shallow_size(next(iter(table.values()))) * len(table)
    return total


def _spec(c: Any, sizer: str, items: Reader | None, bytes_: Reader | None,
          max_items: Reader | None, max_bytes: Reader | None) -> _Spec:
    spec = _Spec()
    internal = _internal(c) if not isinstance(c, type) else True
    spec.length = items or (_items if internal else len)
    sized = _sized(c) if not isinstance(c, type) else False
    if bytes_ is not None:
        spec.bytes = bytes_
    elif sized and sizer in ("auto", "own"):
        spec.bytes = _currsize if internal else (lambda o: o.currsize)
    elif sizer == "own":
        raise ValueError(f"sizer='own': this {type(c).__qualname__} has no getsizeof, so it "
                         f"keeps no byte count; pass getsizeof= to it or use sizer='sampled'")
    if sizer in ("auto", "sampled") and spec.bytes is None and internal:
        spec.entries = _entries
        spec.overhead = _overhead
    spec.max_items = max_items
    spec.max_bytes = max_bytes
    if max_items is None and max_bytes is None:
        if sized and spec.bytes is not None and bytes_ is None:
            spec.max_bytes = _maxsize
        elif not sized:
            spec.max_items = _maxsize
    return spec


class CachetoolsProxy(CacheProxy):
    """Proxy of a cachetools cache; removals and expiry counted here, lookups per proxy."""

    def _self_value_bytes(self, value: Any) -> float | None:
        w = self.__wrapped__
        if self._self_sized:
            try:
                return float(w.getsizeof(value))
            except Exception:
                return None
        return None

    def _self_expired(self, pairs: Any) -> None:
        if not pairs:
            return
        c = self._self_counts
        nbytes: float | None = None
        if self._self_sized:
            getsizeof = self.__wrapped__.getsizeof
            nbytes = float(sum(getsizeof(v) for _k, v in pairs))
        c.evicted(c.expired, len(pairs), nbytes)

    def _self_purge(self) -> None:
        """Expire now (counted), so that the cachetools call that follows purges nothing."""
        if self._self_timed:
            self._self_expired(self.__wrapped__.expire())

    def _self_removed(self, n: int, nbytes: float | None, reason: str = EXPLICIT) -> None:
        if n > 0:
            c = self._self_counts
            c.evicted(c.expired if reason == EXPIRED else c.explicit, n, nbytes)

    def expire(self, time: Any = None) -> Any:
        pairs = self.__wrapped__.expire(time)
        self._self_expired(pairs)
        return pairs

    def popitem(self) -> Any:
        w = self.__wrapped__
        if self._self_timed:
            with w.timer as now:
                self._self_expired(w.expire(now))
                key, value = w.popitem()
        else:
            key, value = w.popitem()
        c = self._self_counts
        c.evicted(c.capacity, 1, self._self_value_bytes(value))
        return key, value

    def __delitem__(self, key: Any) -> None:
        w = self.__wrapped__
        before = len(self._self_table())
        value = self._self_table().get(key, _MISSING)
        try:
            del w[key]
        except KeyError:
            # A TTL cache deletes an expired entry, then raises: it left as expired.
            if len(self._self_table()) < before:
                self._self_removed(1, self._self_size_of(value), EXPIRED)
            raise
        self._self_removed(1, self._self_size_of(value))

    def pop(self, key: Any, *default: Any) -> Any:
        w = self.__wrapped__
        before = len(self._self_table())
        value = w.pop(key, _MISSING)
        if value is _MISSING:
            gone = before - len(self._self_table())
            self._self_removed(gone, None, EXPIRED)
            if default:
                return default[0]
            raise KeyError(key)
        self._self_removed(1, self._self_value_bytes(value))
        return value

    def clear(self) -> None:
        w = self.__wrapped__
        n = len(self._self_table())
        nbytes = float(getattr(w, _CURR)) if self._self_sized and self._self_internal else None
        w.clear()
        self._self_removed(n, nbytes)

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
        if hasattr(other, "keys"):
            for key in other.keys():
                self[key] = other[key]
        else:
            for key, value in other:
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __ior__(self, other: Any) -> CachetoolsProxy:
        self.update(other)
        return self

    def __len__(self) -> int:
        self._self_purge()
        return len(self.__wrapped__)

    def __repr__(self) -> str:
        self._self_purge()
        return repr(self.__wrapped__)

    @property
    def currsize(self) -> Any:
        self._self_purge()
        return self.__wrapped__.currsize

    def _self_table(self) -> Any:
        w = self.__wrapped__
        return getattr(w, _DATA) if self._self_internal else w

    def _self_size_of(self, value: Any) -> float | None:
        return None if value is _MISSING else self._self_value_bytes(value)


def instrument(c: Any, *, name: str, registry: Registry, sizer: str, entry_sizer: Sizer | None,
               items: Reader | None, bytes_: Reader | None, max_items: Reader | None,
               max_bytes: Reader | None) -> CacheProxy:
    """Return a counting proxy of the cachetools cache ``c``, registered as ``name``."""
    if sizer == "entry":
        raise ValueError("sizer='entry' cannot follow the entries a cachetools cache evicts "
                         "by itself: give the cache "
                         "getsizeof=memexport.instrument.sizing.deep_size "
                         "(its own accounting) or use sizer='sampled'")
    internal = _internal(c)
    spec = _spec(c, sizer, items, bytes_, max_items, max_bytes)
    timed = _timed(c)
    sized = _sized(c) and internal
    hit = miss = put = capacity = _noop
    counts_box: list[Counts] = []
    getitem = c.__getitem__
    cget = c.get
    setitem = c.__setitem__
    data = getattr(c, _DATA) if internal else None
    size = getattr(c, _SIZE, None) if sized else None
    custom_missing = getattr(type(c), "__missing__", None) is not getattr(
        _module().Cache, "__missing__", None)
    contains = c.__contains__

    if custom_missing:  # the subclass answers misses itself: look before asking
        def __getitem__(self: Any, key: Any) -> Any:
            if contains(key):
                hit()
            else:
                miss()
            return getitem(key)
    else:
        def __getitem__(self: Any, key: Any) -> Any:
            try:
                value = getitem(key)
            except KeyError:
                miss()
                raise
            hit()
            return value

    def evict(gone: int, nbytes: float | None) -> None:
        counts = counts_box[0]
        counts.evicted(counts.capacity, gone, nbytes)

    # The put paths, flat (a call less each): the entries that left during the put are
    # the ones cachetools' popitem evicted to make room.
    inner: Callable[[Any, Any, Any], None]
    if data is None:  # unknown internals: count puts only
        def inner(self: Any, key: Any, value: Any) -> None:
            setitem(key, value)
            put()
    elif size is None:
        maxsize = c.maxsize  # fixed for the cache's life

        def inner(self: Any, key: Any, value: Any) -> None:
            # Unsized: a put evicts only when full and the key is new, and then exactly one
            # entry (cachetools pops while currsize + 1 > maxsize, currsize == len).
            if len(data) >= maxsize and key not in data:
                setitem(key, value)
                put()
                capacity()
            else:
                setitem(key, value)
                put()
    else:
        def inner(self: Any, key: Any, value: Any) -> None:
            n = len(data)
            old = size.get(key)
            if old is None:
                n += 1
                old = 0
            before = getattr(c, _CURR)
            setitem(key, value)
            put()
            gone = n - len(data)
            if gone > 0:
                evict(gone, float(before - old + size.get(key, 0) - getattr(c, _CURR)))

    if timed:
        timer = c.timer
        expire = c.expire

        def __setitem__(self: Any, key: Any, value: Any) -> None:
            with timer as now:
                pairs = expire(now)
                if pairs:
                    self._self_expired(pairs)
                inner(self, key, value)
        release: tuple[Any, ...] = (c, getitem, setitem, contains, data, size, expire)
    else:
        __setitem__ = inner
        release = (c, getitem, setitem, contains, data, size)

    methods = {"__getitem__": __getitem__, "__setitem__": __setitem__}
    proxy = _make_proxy(CachetoolsProxy, c, methods, release=release)
    proxy._self_timed = timed
    proxy._self_sized = _sized(c)
    proxy._self_internal = internal
    _comp, counts = _register(proxy, name, registry, spec,
                              sizer="sampled" if spec.entries is not None else "none",
                              unwrap=True)
    assert counts is not None
    proxy._self_counts = counts
    proxy._self_name = name
    counts_box.append(counts)
    hit, miss, put = counts.hit, counts.miss, counts.put
    capacity = counts.capacity
    _set_methods(proxy, {"get": _counted_get(cget, hit, miss)})
    return proxy


def instrument_class(cls: type, *, name: str, registry: Registry, sizer: str,
                     items: Reader | None, bytes_: Reader | None, max_items: Reader | None,
                     max_bytes: Reader | None) -> type:
    """Count on the methods of the cachetools subclass ``cls``: every instance, exactly
    (``popitem`` and ``expire`` are what cachetools itself calls to evict)."""
    ct = _module()
    counts = Counts(registry.group(KIND, name), bytes_known=True)
    sampling = sizer in ("auto", "sampled")
    timed = hasattr(cls, "expire") and hasattr(cls, "timer")
    hit, miss, put = counts.hit, counts.miss, counts.put
    orig_getitem = cls.__getitem__
    orig_get = cls.get
    orig_setitem = cls.__setitem__
    orig_popitem = cls.popitem
    orig_pop = cls.pop
    orig_clear = cls.clear
    orig_setdefault = cls.setdefault
    custom_missing = cls.__missing__ is not ct.Cache.__missing__

    def value_bytes(self: Any, values: Iterable[Any]) -> float | None:
        if getattr(self, _SIZE, None) is not None:
            try:
                return float(sum(self.getsizeof(v) for v in values))
            except Exception:
                return None
        return None  # estimated from the sampled mean entry size

    __getitem__ = _counted_getitem(orig_getitem, cls.__contains__, custom_missing, hit, miss)

    def get(self: Any, key: Any, default: Any = None) -> Any:
        value = orig_get(self, key, _MISSING)  # a hit went through __getitem__ above
        if value is _MISSING:
            miss()
            return default
        return value

    def setdefault(self: Any, key: Any, default: Any = None) -> Any:
        if key not in self:
            miss()
        return orig_setdefault(self, key, default)  # hit / put counted by the primitives

    def __setitem__(self: Any, key: Any, value: Any) -> None:
        orig_setitem(self, key, value)
        put()

    def popitem(self: Any) -> Any:
        key, value = orig_popitem(self)
        counts.evicted(counts.capacity, 1, value_bytes(self, (value,)))
        return key, value

    def pop(self: Any, key: Any, *default: Any) -> Any:
        value = orig_pop(self, key, _MISSING)
        if value is _MISSING:
            if default:
                return default[0]
            raise KeyError(key)
        counts.evicted(counts.explicit, 1, value_bytes(self, (value,)))
        return value

    def clear(self: Any) -> None:
        data = getattr(self, _DATA, None)
        n = len(data) if data is not None else 0
        nbytes = float(getattr(self, _CURR)) if getattr(self, _SIZE, None) is not None else None
        orig_clear(self)
        counts.evicted(counts.explicit, n, nbytes)

    patched: dict[str, Callable[..., Any]] = {
        "__getitem__": __getitem__, "get": get, "setdefault": setdefault,
        "__setitem__": __setitem__, "popitem": popitem, "pop": pop, "clear": clear}
    if timed:
        orig_expire = cls.expire

        def expire(self: Any, time: Any = None) -> Any:
            pairs = orig_expire(self, time)
            if pairs:
                counts.evicted(counts.expired, len(pairs),
                               value_bytes(self, (v for _k, v in pairs)))
            return pairs

        patched["expire"] = expire
    _patch(cls, patched)

    def spec_for(klass: type) -> _Spec:
        spec = _Spec()
        spec.length = items or _items
        spec.max_items, spec.max_bytes = max_items, max_bytes
        if bytes_ is not None:
            spec.bytes = bytes_
            return spec

        # Sized or not is per instance: read both ways, absent when it does not apply.
        def own_bytes(o: Any) -> float | None:
            return getattr(o, _CURR) if getattr(o, _SIZE, None) is not None else None

        def cap_bytes(o: Any) -> float | None:
            return _maxsize(o) if getattr(o, _SIZE, None) is not None else None

        def cap_items(o: Any) -> float | None:
            return _maxsize(o) if getattr(o, _SIZE, None) is None else None

        if max_items is None and max_bytes is None:
            spec.max_items, spec.max_bytes = cap_items, cap_bytes
        if sizer in ("auto", "own"):
            spec.bytes = own_bytes
        if sampling:
            spec.entries = _entries
            spec.overhead = _overhead
        return spec

    # Sized instances report their own bytes, unsized ones are sampled; evicted bytes of
    # unsized ones are estimated from the newest instance's mean entry size.
    _register_instances(cls, name, registry, "sampled" if sampling else "none", spec_for,
                        _set_sampled(counts))
    return cls
