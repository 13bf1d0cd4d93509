"""The shapes of cache memexport recognises: lru_cache, dicts, mappings, get/put caches."""

from __future__ import annotations

import gc
import math
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from memexport.core.checks import shown
from memexport.core.model import Kind
from memexport.core.registry import Index, Profile, SizeSpec
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape, on_target
from memexport.instrument.mapping import PROXY, SELF, as_size, mapping_methods, originals_of
from memexport.instrument.proxy import proxy_base
from memexport.instrument.readers import first_number, lazy_number
from memexport.instrument.tracked import tracked_base
from memexport.kinds.cache.table import (
    BYTES,
    BYTES_LIMIT_ATTRS,
    CAPACITY,
    CAPACITY_ATTRS,
    EVICTIONS,
    ITEMS,
    MAX_BYTES,
    MAX_ITEMS,
    MIB_LIMIT_ATTRS,
    PUTS,
    REQUESTS,
    CacheOptions,
)

__all__ = ["DictShape", "LruShape", "MappingShape", "capacity_attrs", "capacity_readers",
           "is_lru", "items_of", "none_is_miss", "sampling"]


def none_is_miss(index: Index) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A factory of wrappers for a library's lookup method that returns None on a miss
    (CrewAI's ``CacheHandler.read``, PraisonAI's ``_cache_get``): a hit or a miss is
    counted for the tracked objects of ``index``; the others pass straight through."""
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def lookup(self: Any, *args: Any, **kwargs: Any) -> Any:
            value = original(self, *args, **kwargs)
            comp = get(id(self))
            if comp is not None:
                h = comp.group.handles
                if value is None:
                    h.miss()
                else:
                    h.hit()
            return value
        lookup.__name__ = getattr(original, "__name__", "lookup")
        return lookup
    return factory


def _found(obj: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    """The first of ``names`` that ``obj`` holds as a positive number (or none)."""
    return next(((n,) for n in names if first_number(obj, (n,)) is not None), ())


def capacity_attrs(obj: Any) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The capacity attributes ``obj`` holds: in entries, in bytes, in MiB."""
    return (_found(obj, CAPACITY_ATTRS), _found(obj, BYTES_LIMIT_ATTRS),
            _found(obj, MIB_LIMIT_ATTRS))


def capacity_readers(obj: Any, opts: CacheOptions) -> dict[str, Any]:
    """Capacity readers: explicit ones, else of the attributes ``obj`` holds (read at each
    scrape: other instances of its class may lack them, and then read as absent)."""
    items, nbytes, mib = capacity_attrs(obj)
    out: dict[str, Any] = {}
    max_items = opts.max_items or (lazy_number(items) if items else None)
    max_bytes = opts.max_bytes or (lazy_number(nbytes) if nbytes else None) or (
        lazy_number(mib, float(2**20)) if mib else None)
    if max_items is not None:
        out[MAX_ITEMS] = max_items
    if max_bytes is not None:
        out[MAX_BYTES] = max_bytes
    return out


def items_of(m: Any) -> Iterable[Any]:
    return dict.items(m) if isinstance(m, dict) else m.items()


def _check_own(obj: Any, opts: CacheOptions) -> None:
    if opts.sizer == "own" and opts.bytes is None:
        raise ValueError(f"sizer='own': a {shown(type(obj).__qualname__)} keeps no byte count; "
                         f"pass bytes= or use sizer='sampled'")


def sampling(opts: CacheOptions) -> bool:
    return opts.bytes is None and opts.sizer in ("auto", "sampled")


# -- functools.lru_cache --------------------------------------------------------------------


def is_lru(obj: Any) -> bool:
    return (callable(obj) and callable(getattr(obj, "cache_info", None))
            and callable(getattr(obj, "cache_clear", None)) and hasattr(obj, "__wrapped__"))


def _lru_parts(f: Any) -> tuple[list[Any], dict[Any, Any] | None]:
    """The wrapper's key/result objects and its cache dict, through the GC's view of it."""
    refs = gc.get_referents(f)
    try:
        own = object.__getattribute__(f, "__dict__")
    except AttributeError:
        own = None
    table = next((r for r in refs if type(r) is dict and r is not own), None)
    return [r for r in refs if type(r) is not type and r is not table and r is not own], table


def _lru_entries(f: Any) -> Iterable[Any]:
    info = f.cache_info()
    payload, table = _lru_parts(f)
    if info.maxsize is None:  # unbounded: the dict maps keys to results
        return table.items() if table is not None else ()
    # Bounded: the C traversal reports each link's key then its result, oldest first.
    pairs = payload[:2 * info.currsize]
    return zip(pairs[0::2], pairs[1::2], strict=False)


def _lru_overhead(f: Any) -> int:
    info = f.cache_info()
    _payload, table = _lru_parts(f)
    link = 0
    if info.maxsize is not None and table:
        link = shallow_size(next(iter(table.values()), None)) * len(table)
    return shallow_size(f) + shallow_size(table) + link


def _lru_evictions(f: Any) -> int:
    info = f.cache_info()
    # Each miss stores one entry; only evictions make currsize lag behind (see module doc).
    return max(0, int(info.misses - info.currsize))


class LruShape(Shape):
    """``functools.lru_cache`` wrappers: read from ``cache_info()``, nothing wrapped."""

    style = "read"
    label = "an lru_cache wrapper"
    by_type = False  # bounded or not is per wrapper

    def matches(self, obj: Any, opts: CacheOptions) -> bool:
        return not opts.methods_given and is_lru(obj)

    def check(self, obj: Any, opts: CacheOptions) -> None:
        if opts.sizer == "entry":
            raise ValueError("sizer='entry' cannot see an lru_cache's inserts: use 'sampled'")

    def variant(self, obj: Any, opts: CacheOptions) -> Any:
        return (type(obj), obj.cache_info().maxsize is None)

    def profile(self, obj: Any, opts: CacheOptions, kind: Kind) -> Profile:
        bounded = obj.cache_info().maxsize is not None
        readers: dict[Any, Any] = {ITEMS: lambda f: f.cache_info().currsize}
        pulled: dict[Any, Any] = {
            (REQUESTS, ("hit",)): lambda f: f.cache_info().hits,
            (REQUESTS, ("miss",)): lambda f: f.cache_info().misses,
            PUTS: lambda f: f.cache_info().misses,  # every miss stores its result
        }
        if bounded:
            readers[MAX_ITEMS] = lambda f: f.cache_info().maxsize
            pulled[(EVICTIONS, (CAPACITY,))] = _lru_evictions
        size = None
        if opts.bytes is not None:
            readers[BYTES] = opts.bytes
        elif sampling(opts):
            size = SizeSpec(_lru_entries, lambda f: f.cache_info().currsize, _lru_overhead, True)
        # Imported here: it loads ctypes and calibrates on two wrappers, which only an
        # lru_cache needs (not the first dict cache of an app's start).
        from memexport.instrument.lru import death_reader
        return Profile(kind, readers, pulled, size, death=death_reader(bounded, type(obj)))


# -- dict, OrderedDict, defaultdict: tracked builtins ---------------------------------------

_BUILTINS = (dict, OrderedDict, defaultdict)


def _entry_total(obj: Any) -> float:
    return obj._me_total  # type: ignore[no-any-return]


def _proxy_total(proxy: Any) -> float:
    return proxy._self_total  # type: ignore[no-any-return]


class DictShape(Shape):
    """``dict``, ``OrderedDict``, ``defaultdict``: a tracked subclass holding the items."""

    style = "tracked"
    label = "a dict"

    def matches(self, obj: Any, opts: CacheOptions) -> bool:
        return not opts.methods_given and type(obj) in _BUILTINS

    def check(self, obj: Any, opts: CacheOptions) -> None:
        _check_own(obj, opts)

    def variant(self, obj: Any, opts: CacheOptions) -> Any:
        return (type(obj), opts.entry_sizer is not None)

    def base(self, obj: Any) -> type:
        return tracked_base(type(obj), ("_me_sizes", "_me_total"))

    def methods(self, handles: Any, obj: Any, opts: CacheOptions) -> dict[str, Any]:
        cls = type(obj)
        return mapping_methods(SELF, handles, has_missing=cls is defaultdict,
                               entry_sizer=opts.entry_sizer,
                               originals={**originals_of(cls), **(
                                   # OrderedDict's setdefault stores through __setitem__
                                   {"_setdefault": dict.setdefault} if cls is not OrderedDict
                                   else {})},
                               record_error=_sizer_error(handles))

    def build(self, cls: type, obj: Any, opts: CacheOptions) -> Any:
        new = cls(obj.default_factory, obj) if type(obj) is defaultdict else cls(obj)
        _init_sizes(new, "_me", opts, dict.items(obj))
        return new

    def profile(self, obj: Any, opts: CacheOptions, kind: Kind) -> Profile:
        readers: dict[Any, Any] = {ITEMS: opts.items or len, **capacity_readers(obj, opts)}
        size = None
        if opts.bytes is not None:
            readers[BYTES] = opts.bytes
        elif opts.entry_sizer is not None:
            readers[BYTES] = _entry_total
        elif sampling(opts):
            size = SizeSpec(dict.items, len, shallow_size, True)
        return Profile(kind, readers, size=size)


def _sizer_error(handles: Any) -> Callable[[BaseException], None]:
    group = handles.group

    def record(exc: BaseException) -> None:
        registry = group.owner()
        if registry is not None:
            registry.errors.record("cache", f"cache {group.name!r} sizer", exc)
    return record


def _init_sizes(target: Any, prefix: str, opts: CacheOptions, items: Iterable[Any]) -> None:
    sizes: dict[Any, float] | None = None
    total = 0.0
    if opts.entry_sizer is not None:
        sizes = {}
        try:
            for key, value in items:
                sizes[key] = as_size(opts.entry_sizer(key, value))
                total += sizes[key]
        except Exception:  # the bytes are unknown (absent) until the cache is empty
            total = math.nan
    setattr(target, f"{prefix}_sizes", sizes)
    setattr(target, f"{prefix}_total", total)


# -- other mappings: proxies ----------------------------------------------------------------


def _own_setitem(cls: Any) -> bool:
    return cls.__setitem__ not in (dict.__setitem__, OrderedDict.__setitem__)


class MappingShape(Shape):
    """Any other ``MutableMapping``: a proxy counting on ``[]``, ``get`` and removals."""

    style = "proxy"
    label = "a mapping"

    def matches(self, obj: Any, opts: CacheOptions) -> bool:
        return not opts.methods_given and isinstance(obj, MutableMapping)

    check = DictShape.check

    def variant(self, obj: Any, opts: CacheOptions) -> Any:
        return (type(obj), opts.entry_sizer is not None, capacity_attrs(obj))

    def base(self, obj: Any) -> type:
        return proxy_base("cache", ("_self_sizes", "_self_total"))

    def methods(self, handles: Any, obj: Any, opts: CacheOptions) -> dict[str, Any]:
        cls = type(obj)
        return mapping_methods(PROXY, handles, has_missing=hasattr(cls, "__missing__"),
                               own_setitem=opts.entry_sizer is None and _own_setitem(cls),
                               entry_sizer=opts.entry_sizer, originals=originals_of(cls),
                               record_error=_sizer_error(handles))

    def build(self, cls: type, obj: Any, opts: CacheOptions) -> Any:
        proxy = cls(obj)
        _init_sizes(proxy, "_self", opts, items_of(obj))
        return proxy

    def profile(self, obj: Any, opts: CacheOptions, kind: Kind) -> Profile:
        readers: dict[Any, Any] = {ITEMS: opts.items or len, **capacity_readers(obj, opts)}
        size = None
        if opts.bytes is not None:
            readers[BYTES] = opts.bytes
        elif opts.entry_sizer is not None:
            readers[BYTES] = on_target(_proxy_total)
        elif sampling(opts):
            size = SizeSpec(items_of, len, shallow_size, True)
        return Profile(kind, readers, size=size)

    def matches_class(self, cls: type, opts: CacheOptions) -> bool:
        return not opts.methods_given and issubclass(cls, MutableMapping)

    def class_methods(self, cls: Any, handles: Any, opts: CacheOptions) -> dict[str, Any]:
        """Count on the class's own methods (a dict subclass: dict's too), every instance."""
        base = dict if issubclass(cls, dict) else cls
        originals = {**originals_of(base), "_getitem": cls.__getitem__,
                     "_setitem": cls.__setitem__, "_delitem": cls.__delitem__}
        methods = mapping_methods(SELF, handles, has_missing=hasattr(cls, "__missing__"),
                                  originals=originals)
        core = ("__getitem__", "__setitem__", "__delitem__")
        if issubclass(cls, dict):  # dict's own methods never call the three: count them too,
            # unless the class defines them itself (then they call what is counted)
            return {k: fn for k, fn in methods.items()
                    if k in core or getattr(cls, k, None) is getattr(dict, k, None)}
        # MutableMapping's own methods (get, pop, clear...) call the three above.
        out = {k: methods[k] for k in core[:2]}
        out["__delitem__"] = _counted_delitem(cls.__delitem__, handles)
        return out


def _counted_delitem(orig: Callable[[Any, Any], None], handles: Any) -> Callable[..., None]:
    explicit = handles.explicit

    def __delitem__(self: Any, key: Any) -> None:
        orig(self, key)
        explicit()
    return __delitem__
