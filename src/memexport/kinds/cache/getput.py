"""Get/put caches (the guide's ``MemoryBoundedLRUCache``): lookups and stores by name.

A lookup hits unless it returns the miss value (``None`` by default) or raises ``KeyError``;
the entries that left during a store are capacity evictions, from the length before and
after, so the class needs no change. The entries are the object's only mapping attribute,
found through the names its methods use.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from memexport.core.checks import shown
from memexport.core.model import Kind
from memexport.core.registry import Profile, SizeSpec
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape
from memexport.instrument.mapping import MISSING
from memexport.instrument.proxy import proxy_base
from memexport.instrument.readers import instance_attr, len_of
from memexport.instrument.templates import compile_functions
from memexport.kinds.cache.shapes import capacity_attrs, capacity_readers, items_of
from memexport.kinds.cache.table import BYTES, ITEMS, CacheOptions

__all__ = ["GetPutShape", "store_of"]

_UNKNOWN: Any = object()
#: The store attribute of each get/put class seen (None: it has none, or several).
_STORES: dict[type, str | None] = {}


def _attr_names(cls: type) -> tuple[str, ...]:
    """Instance attribute names a class's methods use (their code's ``co_names``)."""
    seen: dict[str, None] = {}
    klasses = [k for k in cls.__mro__ if k is not object]
    in_classes = {n for k in klasses for n in vars(k)}
    for klass in klasses:
        for value in vars(klass).values():
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None:
                for n in code.co_names:
                    if n not in in_classes and not n.startswith("__"):
                        seen[n] = None
    return tuple(seen)


def store_of(obj: Any) -> str | None:
    """The attribute holding a get/put cache's entries: its only mapping attribute.

    Found through the names its methods use, never ``vars(obj)`` (see readers); once per
    class.
    """
    cls = type(obj)
    store = _STORES.get(cls, _UNKNOWN)
    if store is _UNKNOWN:
        found = [a for a in _attr_names(cls) if isinstance(instance_attr(obj, a), Mapping)]
        store = _STORES[cls] = found[0] if len(found) == 1 else None
    return store  # type: ignore[no-any-return]


def getput_methods(target: Any, what: str, opts: CacheOptions) -> tuple[tuple[str, ...],
                                                                        tuple[str, ...]]:
    """The lookup and store methods: the given ones, else ``get`` with ``put``/``set``."""
    lookups, stores = opts.lookups, opts.stores
    if not lookups and not stores and callable(getattr(target, "get", None)):
        stores = tuple(a for a in ("put", "set") if callable(getattr(target, a, None)))
        if stores:
            lookups = ("get",)
    for attr in (*lookups, *stores):
        if not callable(getattr(target, attr, None)):
            raise ValueError(f"{shown(what)} has no method {shown(attr)}")
    return lookups, stores


def _arity(fn: Any) -> int | None:
    """Plain positional parameters after ``self``, when that is all ``fn`` takes."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params):
        return len(params)
    return None


_LOOKUP = '''
def {attr}(self, {params}):
    try:
        value = _fn({w}, {args})
    except KeyError:
        _miss()
        raise
    if value is _miss_value:
        _miss()
    else:
        _hit()
    return value
'''
# The store attribute known (a proxy's variant, a class's first instance): all C calls.
_STORE_TABLE = '''
def {attr}(self, {params}):
    w = {w}
    try:
        m = _table(w)
        n = len(m) + (a0 not in m)
    except Exception:
        n = -1
    result = _fn(w, {args})
    _put()
    if n > 0:
        try:
            gone = n - len(_table(w))
        except Exception:
            gone = 0
        if gone == 1:
            _capacity()
            _unsized()
        elif gone > 1:
            _handles.evicted(_capacity, gone)
    return result
'''
_STORE = '''
def {attr}(self, {params}):
    w = {w}
    try:
        key = {key}
        n = _length(w) + (key is _MISSING or not _key_in(w, key))
    except Exception:
        n = -1
    result = _fn(w, {args})
    _put()
    if n >= 0:
        try:
            gone = n - _length(w)
        except Exception:
            gone = 0
        if gone > 0:
            _handles.evicted(_capacity, gone)
    return result
'''


def counted_getput(cls: type, handles: Any, opts: CacheOptions, lookups: tuple[str, ...],
                   stores: tuple[str, ...], length: Callable[[Any], int], w: str,
                   store: str | None = None) -> dict[str, Any]:
    """Counting versions of ``cls``'s lookup and store methods; ``w`` reaches the cache
    (``self.__wrapped__`` on a proxy, ``self`` on a decorated class); ``store`` names its
    entries mapping when known (and the entries are counted from it)."""
    if hasattr(cls, "__contains__"):
        def key_in(o: Any, key: Any) -> bool:
            return key in o
    else:
        def key_in(o: Any, key: Any) -> bool:
            store = store_of(o)
            try:
                return store is not None and key in getattr(o, store)
            except TypeError:
                return False
    out: dict[str, Any] = {}
    for template, attrs in ((_LOOKUP, lookups), (_STORE, stores)):
        for attr in attrs:
            fn = getattr(cls, attr)
            n = _arity(fn)
            params = ", ".join(f"a{i}" for i in range(n)) if n else "*args, **kwargs"
            key = "a0" if n else "args[0] if args else kwargs.get('key', _MISSING)"
            if template is _STORE and store is not None and n == 2 and opts.items is None:
                template = _STORE_TABLE
            names = {"_fn": fn, "_hit": handles.hit, "_miss": handles.miss, "_put": handles.put,
                     "_capacity": handles.capacity, "_unsized": handles.unsized,
                     "_handles": handles, "_miss_value": opts.miss, "_MISSING": MISSING,
                     "_length": length, "_key_in": key_in,
                     "_table": attrgetter(store) if store else None}
            out.update(compile_functions(template, names, filename="<memexport get/put cache>",
                                         attr=attr, params=params, args=params, w=w, key=key))
    return out


class GetPutShape(Shape):
    """Get/put caches (the guide's ``MemoryBoundedLRUCache``), or explicit methods: a proxy."""

    style = "proxy"
    label = "a get/put cache"

    def matches(self, obj: Any, opts: CacheOptions) -> bool:
        if opts.methods_given:
            return True
        return callable(getattr(obj, "get", None)) and any(
            callable(getattr(obj, a, None)) for a in ("put", "set"))

    def matches_class(self, cls: type, opts: CacheOptions) -> bool:
        return self.matches(cls, opts)

    def check(self, obj: Any, opts: CacheOptions) -> None:
        what = obj.__qualname__ if isinstance(obj, type) else type(obj).__qualname__
        getput_methods(obj, what, opts)
        if opts.sizer == "entry":
            raise ValueError("sizer='entry' needs a mapping cache (entries leave a get/put "
                             "cache inside its own code): use sizer='sampled' or bytes=")
        if not isinstance(obj, type):
            try:
                self.length(obj, opts)(obj)
            except Exception:
                raise TypeError(f"cannot count the entries of a {shown(what)}: pass items= "
                                f"(an attribute name or a callable)") from None

    def variant(self, obj: Any, opts: CacheOptions) -> Any:
        return (type(obj), store_of(obj), capacity_attrs(obj))

    def length(self, obj: Any, opts: CacheOptions) -> Callable[[Any], int]:
        if opts.items is not None:
            return opts.items
        if hasattr(type(obj), "__len__"):
            return len
        store = store_of(obj)
        if store is None:
            raise TypeError("no entries store found")
        return len_of(attrgetter(store))

    def base(self, obj: Any) -> type:
        return proxy_base("cache", ("_self_sizes", "_self_total"))

    def methods(self, handles: Any, obj: Any, opts: CacheOptions) -> dict[str, Any]:
        cls = type(obj)
        lookups, stores = getput_methods(obj, cls.__qualname__, opts)
        return counted_getput(cls, handles, opts, lookups, stores, self.length(obj, opts),
                              "self.__wrapped__", store_of(obj))

    def profile(self, obj: Any, opts: CacheOptions, kind: Kind) -> Profile:
        readers: dict[Any, Any] = {ITEMS: self.length(obj, opts),
                                   **capacity_readers(obj, opts)}
        store = store_of(obj)
        size = None
        if opts.bytes is not None:
            readers[BYTES] = opts.bytes
        elif opts.sizer != "none" and store is not None:
            get = attrgetter(store)
            size = SizeSpec(lambda o: items_of(get(o)), lambda o: len(get(o)),
                            lambda o: shallow_size(get(o)), True)
        return Profile(kind, readers, size=size)

    def class_methods(self, cls: type, handles: Any, opts: CacheOptions) -> dict[str, Any]:
        lookups, stores = getput_methods(cls, cls.__qualname__, opts)
        length = opts.items or (len if hasattr(cls, "__len__") else _store_length(cls))
        return counted_getput(cls, handles, opts, lookups, stores, length, "self")


def _store_length(cls: type) -> Callable[[Any], int]:
    """The length of a decorated get/put class's store, found at the first instance."""
    def length(o: Any) -> int:
        store = store_of(o)
        if store is None:
            raise TypeError("no entries store found: pass items=")
        return len(getattr(o, store))
    return length
