"""cachetools caches (``Cache``, ``LRUCache``, ``LFUCache``, ``FIFOCache``, ``RRCache``,
``TTLCache``, ``TLRUCache`` and subclasses): an adapter of the cache kind.

Asked only once the application imported cachetools (``instrument.adapters``).

- items: the entries stored (read from the cache's table: reading never expires anything,
  so a TTL cache's expired entries count until cachetools purges them on its next write);
- bytes: with a ``getsizeof``, the cache's own ``currsize`` (and ``maxsize`` is the byte
  capacity); without, a deep size sampled by the collector (``maxsize`` in entries);
- hits and misses on ``[]`` and ``get`` (a miss is cachetools' ``__missing__``: the
  ``KeyError``, or, when a subclass defines ``__missing__``, a key not present);
- evictions: ``capacity`` for the entries ``popitem`` removed to make room (every
  ``popitem`` call of a cache moved into the name's subclass or of a decorated class; seen
  from the length before and after a put through a proxy), ``expired`` for those ``expire``
  removed (a TTL proxy calls ``expire`` itself, under the cache's frozen timer, before the
  operations that would purge silently),
  ``explicit`` for ``del``, ``pop`` and ``clear``; evicted bytes from ``getsizeof`` (exact)
  or the sampled mean entry size (estimate).

An instance is tracked in place (``Shape.moved_methods``: the decorated-class methods on the
name's subclass of its class); one of a class that cannot move gets a proxy.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, MutableMapping
from contextlib import nullcontext
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Profile, SizeSpec
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape
from memexport.instrument.mapping import MISSING, PROXY, SELF, mapping_methods, originals_of
from memexport.instrument.proxy import proxy_base
from memexport.instrument.templates import compile_functions
from memexport.kinds.cache.table import BYTES, ITEMS, MAX_BYTES, MAX_ITEMS, CacheOptions

__all__ = ["CachetoolsShape", "shapes"]

_DATA, _SIZE, _CURR = "_Cache__data", "_Cache__size", "_Cache__currsize"
#: Internal tables of the cachetools classes (read by name, never through ``vars()``).
_TABLES = ("_Cache__data", "_Cache__size", "_LRUCache__order", "_FIFOCache__order",
           "_LFUCache__links", "_RRCache__index", "_RRCache__keys", "_TTLCache__links",
           "_TLRUCache__items", "_TLRUCache__order")
_LINKED = ("_TTLCache__links", "_TLRUCache__items")


def _ct() -> Any:
    return sys.modules["cachetools"]


def _timed(cls: type) -> bool:
    return callable(getattr(cls, "expire", None)) and hasattr(cls, "timer")


def _sized(c: Any) -> bool:
    return getattr(c, _SIZE, None) is not None


def _internal(c: Any) -> bool:
    return isinstance(getattr(c, _DATA, None), dict)


def _items(c: Any) -> int:
    return len(getattr(c, _DATA))


def _maxsize(c: Any) -> float | None:
    m = c.maxsize
    return m if math.isfinite(m) else None


def _entries(c: Any) -> Iterable[Any]:
    return getattr(c, _DATA).items()  # type: ignore[no-any-return]


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


def _own_bytes(c: Any) -> float | None:
    return getattr(c, _CURR) if getattr(c, _SIZE, None) is not None else None


def _cap_bytes(c: Any) -> float | None:
    return _maxsize(c) if getattr(c, _SIZE, None) is not None else None


def _cap_items(c: Any) -> float | None:
    return _maxsize(c) if getattr(c, _SIZE, None) is None else None


def _custom_missing(cls: type) -> bool:
    return getattr(cls, "__missing__", None) is not getattr(_ct().Cache, "__missing__", None)


# -- the proxy's put and removals ------------------------------------------------------------

_PUT = '''
def __setitem__(self, key, value):
    w = self.__wrapped__
    {expire}
    {put}
'''
_EXPIRE = '''with w.timer as now:
        _expire(w, now)
        {put}
        return'''
# Unknown internals: count puts only.
_PUT_PLAIN = "w.__setitem__(key, value); _put()"
# Unsized: a put evicts only when full and the key is new, and then exactly one entry
# (cachetools pops while currsize + 1 > maxsize, and currsize == len).
_PUT_UNSIZED = '''data = w._Cache__data
    if len(data) >= w._Cache__maxsize and key not in data:
        _setitem(w, key, value)
        _put()
        _capacity()
        _unsized()
    else:
        _setitem(w, key, value)
        _put()'''
_PUT_SIZED = '''data = w._Cache__data
    size = w._Cache__size
    n = len(data)
    old = size.get(key)
    if old is None:
        n += 1
        old = 0
    before = w._Cache__currsize
    _setitem(w, key, value)
    _put()
    gone = n - len(data)
    if gone > 0:
        freed = before - old + size.get(key, 0) - w._Cache__currsize
        _handles.evicted(_capacity, gone, float(freed))'''

# Bytes that left are the cache's own accounting (currsize before minus after): never a
# getsizeof call of memexport's on a value leaving (cachetools makes none there either).
_REMOVALS = '''
def _currsize(w):
    return w._Cache__currsize if w._Cache__size is not None else None

def _freed(before, w):
    return None if before is None else float(before - w._Cache__currsize)

def _expire(w, *time):
    before = _currsize(w)
    pairs = w.expire(*time)
    if pairs:
        _handles.evicted(_expired, len(pairs), _freed(before, w))
    return pairs

def _purge(self):
    w = self.__wrapped__
    if _timed:
        _expire(w)
    return w

def expire(self, time=None):
    return _expire(self.__wrapped__, time)

def popitem(self):
    w = self.__wrapped__
    if _timed:
        with w.timer as now:
            _expire(w, now)
            before = _currsize(w)
            key, value = w.popitem()
    else:
        before = _currsize(w)
        key, value = w.popitem()
    _handles.evicted(_capacity, 1, _freed(before, w))
    return key, value

def __delitem__(self, key):
    w = self.__wrapped__
    table = w._Cache__data
    n = len(table)
    before = _currsize(w)
    present = key in table
    try:
        del w[key]
    except KeyError:
        if len(table) < n:  # a TTL cache deletes an expired entry, then raises
            _handles.evicted(_expired, 1, _freed(before, w))
        raise
    _handles.evicted(_explicit, 1, _freed(before, w) if present else None)

def pop(self, key, *default):
    w = self.__wrapped__
    table = w._Cache__data
    n = len(table)
    before = _currsize(w)
    value = w.pop(key, _MISSING)
    if value is _MISSING:
        gone = n - len(table)
        if gone > 0:
            _handles.evicted(_expired, gone, _freed(before, w))
        if default:
            return default[0]
        raise KeyError(key)
    _handles.evicted(_explicit, 1, _freed(before, w))
    return value

def clear(self):
    w = self.__wrapped__
    n = len(w._Cache__data)
    nbytes = float(w._Cache__currsize) if w._Cache__size is not None else None
    w.clear()
    if n:
        _handles.evicted(_explicit, n, nbytes)

def setdefault(self, key, default=None):
    value = self.__wrapped__.get(key, _MISSING)
    if value is not _MISSING:
        _hit()
        return value
    _miss()
    self[key] = default
    return default

def update(self, other=(), /, **kwargs):
    if hasattr(other, "keys"):
        for key in other.keys():
            self[key] = other[key]
    else:
        for key, value in other:
            self[key] = value
    for key, value in kwargs.items():
        self[key] = value

def __ior__(self, other):
    self.update(other)
    return self

def __len__(self):
    return len(_purge(self))

def __repr__(self):
    return repr(_purge(self))
'''


def _proxy_methods(handles: Any, c: Any) -> dict[str, Any]:
    cls = type(c)
    timed = _timed(cls)
    internal = _internal(c)
    names: dict[str, Any] = {
        "_hit": handles.hit, "_miss": handles.miss, "_put": handles.put,
        "_capacity": handles.capacity, "_expired": handles.expired,
        "_explicit": handles.explicit, "_unsized": handles.unsized, "_handles": handles,
        "_MISSING": MISSING, "_timed": timed, "_setitem": cls.__setitem__,
    }
    body = _PUT_PLAIN if not internal else _PUT_SIZED if _sized(c) else _PUT_UNSIZED
    put_template = _PUT.format(expire=_EXPIRE.format(put=body.replace("\n", "\n    "))
                               if timed else "", put="" if timed else body)
    funcs = compile_functions(put_template + _REMOVALS, names,
                              filename="<memexport cachetools cache>")
    funcs["currsize"] = property(lambda self: funcs["_purge"](self).currsize)
    methods = {k: v for k, v in funcs.items() if not k.startswith("_") or k.startswith("__")}
    methods.update(mapping_methods(PROXY, handles, has_missing=_custom_missing(cls),
                                   originals=originals_of(cls), removals=False))
    methods["__setitem__"] = funcs["__setitem__"]
    return methods


# -- decorated classes: count on cachetools' own primitives --------------------------------

_CLASS = '''
def __setitem__(self, key, value):
    _orig_setitem(self, key, value)
    _put()

def popitem(self):
    before = _currsize(self)
    if _own_popitem:  # MutableMapping's reads self[key]: not a request of the app's
        try:
            key = next(iter(self))
        except StopIteration:
            raise KeyError(f"{type(self).__name__} is empty") from None
        value = _getitem(self, key)
        del self[key]
    else:
        key, value = _orig_popitem(self)
    _handles.evicted(_capacity, 1, _freed(before, self))
    return key, value

def pop(self, key, *default):
    before = _currsize(self)
    if _own_pop:  # cachetools' pop reads self[key]: not a request of the app's
        with (self.timer if _timed else _no_timer):
            if key in self:
                value = _getitem(self, key)
                del self[key]
            else:
                value = _MISSING
    else:
        value = _orig_pop(self, key, _MISSING)
    if value is _MISSING:
        if default:
            return default[0]
        raise KeyError(key)
    _handles.evicted(_explicit, 1, _freed(before, self))
    return value

def clear(self):
    data = getattr(self, "_Cache__data", None)
    n = len(data) if data is not None else 0
    sized = getattr(self, "_Cache__size", None) is not None
    nbytes = float(self._Cache__currsize) if sized else None
    _orig_clear(self)
    if n:
        _handles.evicted(_explicit, n, nbytes)

def get(self, key, default=None):
    value = _orig_get(self, key, _MISSING)  # a hit went through __getitem__
    if value is _MISSING:
        _miss()
        return default
    return value

def setdefault(self, key, default=None):
    if key not in self:
        _miss()
    return _orig_setdefault(self, key, default)  # hit / put counted by the primitives

def expire(self, time=None):
    before = _currsize(self)
    pairs = _orig_expire(self, time)
    if pairs:
        _handles.evicted(_expired, len(pairs), _freed(before, self))
    return pairs

def _currsize(self):
    if getattr(self, "_Cache__size", None) is None:
        return None
    return self._Cache__currsize

def _freed(before, self):
    return None if before is None else float(before - self._Cache__currsize)
'''


# The capacity eviction of a cache moved into a name's subclass, sized or not (cachetools'
# policies call popitem to make room; the count is the only cost there).
_POPITEM_UNSIZED = '''
def popitem(self):
    item = _orig_popitem(self)
    _capacity()
    _unsized()
    return item
'''
_POPITEM_SIZED = '''
def popitem(self):
    before = self._Cache__currsize
    item = _orig_popitem(self)
    _capacity()
    freed = before - self._Cache__currsize
    if freed > 0:
        _evicted_bytes(float(freed))
    return item
'''

# Cache.get, written out: ``key in self`` and ``self[key]`` would be two more frames, and a
# hit counted through the class's ``__getitem__``.
_GET_PLAIN = '''
def get(self, key, default=None):
    if key in self._Cache__data:
        value = _getitem(self, key)
        _hit()
        return value
    _miss()
    return default
'''


class CachetoolsShape(Shape):
    """A cachetools cache: its own primitives, on the name's subclass its instance moves into
    or on a decorated class (a proxy for an instance of a class that cannot move)."""

    style = "proxy"
    label = "a cachetools cache"
    by_type = False  # with a getsizeof or not is per instance

    def matches(self, obj: Any, opts: CacheOptions) -> bool:
        return not opts.methods_given and isinstance(obj, _ct().Cache)

    def matches_class(self, cls: type, opts: CacheOptions) -> bool:
        return not opts.methods_given and issubclass(cls, _ct().Cache)

    def check(self, obj: Any, opts: CacheOptions) -> None:
        if opts.sizer == "entry":
            raise ValueError("sizer='entry' cannot follow the entries a cachetools cache "
                             "evicts by itself: give the cache getsizeof=memexport.core."
                             "sizing.deep_size (its own accounting) or use sizer='sampled'")
        if opts.sizer == "own" and opts.bytes is None and not isinstance(obj, type) \
                and not _sized(obj):
            raise ValueError(f"sizer='own': this {type(obj).__qualname__} has no getsizeof, so "
                             f"it keeps no byte count; pass getsizeof= to it or use "
                             f"sizer='sampled'")

    def variant(self, obj: Any, opts: CacheOptions) -> Any:
        return (type(obj), _internal(obj), _sized(obj))

    def base(self, obj: Any) -> type:
        return proxy_base("cache", ("_self_sizes", "_self_total"))

    def methods(self, handles: Any, obj: Any, opts: CacheOptions) -> dict[str, Any]:
        return _proxy_methods(handles, obj)

    def moved_methods(self, obj: Any, handles: Any, opts: CacheOptions
                      ) -> dict[str, Any] | None:
        # A cache moved into the name's subclass counts on cachetools' own primitives, as a
        # decorated class does: no proxy, no ``__wrapped__`` read per hit. Sized or not is
        # known (the variant): a capacity eviction is counted inline.
        cls = type(obj)
        methods = self.class_methods(cls, handles, opts)
        if cls.popitem is not MutableMapping.popitem and _internal(obj) and not _timed(cls):
            names = {"_orig_popitem": cls.popitem, "_capacity": handles.capacity,
                     "_unsized": handles.unsized, "_evicted_bytes": handles.evicted_bytes}
            template = _POPITEM_SIZED if _sized(obj) else _POPITEM_UNSIZED
            methods.update(compile_functions(template, names,
                                             filename="<memexport cachetools cache>"))
        ct = _ct()
        if cls.get is ct.Cache.get and cls.__contains__ is ct.Cache.__contains__ \
                and _internal(obj):
            names = {"_getitem": cls.__getitem__, "_hit": handles.hit, "_miss": handles.miss}
            methods.update(compile_functions(_GET_PLAIN, names,
                                             filename="<memexport cachetools cache>"))
        return methods

    def profile(self, obj: Any, opts: CacheOptions, kind: Kind) -> Profile:
        internal = isinstance(obj, type) or _internal(obj)
        readers: dict[Any, Any] = {ITEMS: opts.items or (_items if internal else len)}
        if opts.max_items is not None:
            readers[MAX_ITEMS] = opts.max_items
        if opts.max_bytes is not None:
            readers[MAX_BYTES] = opts.max_bytes
        explicit_capacity = opts.max_items is not None or opts.max_bytes is not None
        size = None
        if opts.bytes is not None:
            readers[BYTES] = opts.bytes
        else:
            if opts.sizer in ("auto", "own"):  # sized or not is per instance
                readers[BYTES] = _own_bytes
            if opts.sizer in ("auto", "sampled") and internal:
                size = SizeSpec(_entries, _items, _overhead, True)
            if not explicit_capacity:
                readers[MAX_ITEMS] = _cap_items
                readers[MAX_BYTES] = _cap_bytes
        return Profile(kind, readers, size=size)

    def class_methods(self, cls: Any, handles: Any, opts: CacheOptions) -> dict[str, Any]:
        ct = _ct()
        names: dict[str, Any] = {
            "_hit": handles.hit, "_miss": handles.miss, "_put": handles.put,
            "_capacity": handles.capacity, "_expired": handles.expired,
            "_explicit": handles.explicit, "_handles": handles, "_MISSING": MISSING,
            "_orig_setitem": cls.__setitem__, "_orig_popitem": cls.popitem,
            "_orig_pop": cls.pop, "_orig_clear": cls.clear, "_orig_get": cls.get,
            "_orig_setdefault": cls.setdefault, "_orig_expire": getattr(cls, "expire", None),
            "_getitem": cls.__getitem__, "_timed": _timed(cls), "_no_timer": nullcontext(),
            "_own_pop": cls.pop in (ct.Cache.pop, getattr(ct, "_TimedCache", ct.Cache).pop),
            "_own_popitem": cls.popitem is MutableMapping.popitem,
        }
        funcs = compile_functions(_CLASS, names, filename="<memexport cachetools class>")
        methods = {k: v for k, v in funcs.items() if k not in ("_currsize", "_freed")}
        if not _timed(cls):
            del methods["expire"]
        originals = {"_getitem": cls.__getitem__, "_contains": cls.__contains__}
        methods["__getitem__"] = mapping_methods(
            SELF, handles, has_missing=cls.__missing__ is not ct.Cache.__missing__,
            originals=originals, removals=False)["__getitem__"]
        return methods


_SHAPES = (CachetoolsShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "cache" else ()
