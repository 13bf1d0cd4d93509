"""Caches: items, bytes, capacity, hits, misses, puts and evictions, in one line per cache.

``memexport.cache(obj, name)`` recognises, without configuration (shapes, first match wins):

- ``functools.lru_cache`` / ``functools.cache`` wrappers (``read``): the very same wrapper is
  returned and read at scrape time from ``cache_info()`` (zero cost per call). Evictions of a
  bounded cache are derived as ``misses - currsize`` (every miss stores its result and an
  entry only leaves to make room: an upper bound, since a call that raises stores nothing);
- cachetools caches (``memexport.integrations.cachetools``);
- ``dict``, ``OrderedDict``, ``defaultdict`` (``tracked``): a subclass instance holding the
  same items, so it still is a dict for ``json.dumps`` and C fast paths; ``[]``/``get`` hits
  and misses (a miss is the ``KeyError``, re-raised unchanged, or ``get`` returning its
  default; ``in`` is not a request), puts and explicit removals;
- any other ``MutableMapping`` (``proxy``), and for one with its own ``__setitem__`` (a bounded
  dict subclass) the entries that left during a put count as capacity evictions;
- get/put-style classes such as the guide's ``MemoryBoundedLRUCache`` (``proxy``): a ``get``
  hits unless it returns ``None`` (``miss=``), and entries that left during a ``put`` are
  capacity evictions, from the length before and after, so the class needs no change;
- anything else through explicit arguments (``items``, ``bytes``, ``max_items``,
  ``max_bytes``, ``lookups``, ``stores``).

On a class (``@memexport.cache(name=...)``) every instance is counted: the class's own methods
are replaced once, so instances stay instances of the real class.

Bytes (``sizer=``): the cache's own accounting where it has one (cachetools with a
``getsizeof``), else a deep size sampled by the collector thread (``memexport.core.sizing``);
``"entry"`` or a callable ``(key, value) -> int`` sizes each entry once at insert (dicts
only); ``None`` exports no bytes; ``bytes=`` reads the cache's own figure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from memexport.core.registry import REGISTRY, Registry
from memexport.instrument.kind import NOT_GIVEN, ClassPlan, KindSpec, Shape, replacing
from memexport.kinds.cache.getput import GetPutShape
from memexport.kinds.cache.shapes import DictShape, LruShape, MappingShape
from memexport.kinds.cache.table import (
    CAPACITY,
    DEFAULT_OPTIONS,
    EVENTS,
    EXPIRED,
    EXPLICIT,
    KIND,
    REASONS,
    CacheHandles,
    CacheOptions,
    options,
)

__all__ = ["CAPACITY", "EVENTS", "EXPIRED", "EXPLICIT", "KIND", "REASONS", "SPEC",
           "CacheHandles", "CacheOptions", "cache"]

T = TypeVar("T")


class CacheSpec(KindSpec):
    """The cache kind: decorated classes count on methods bound to their name's handles."""

    def class_patches(self, shape: Shape, cls: type, handles: Any, plan: ClassPlan
                      ) -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
        methods = shape.class_methods(cls, handles, plan.opts)  # type: ignore[attr-defined]
        return {attr: replacing(fn) for attr, fn in methods.items()}


SPEC = CacheSpec(
    KIND, EVENTS, (LruShape(), DictShape(), MappingShape(), GetPutShape()), what="cache",
    hint="it is not an lru_cache, cachetools cache, mapping or get/put cache. Pass "
         "lookups=('get',...) and/or stores=('put',...) naming its methods, and items= "
         "(an attribute name or a callable cache -> number of entries); optionally "
         "bytes=, max_items=, max_bytes=")


@overload
def cache(obj: T, name: str, *, sizer: Any = ..., items: Any = ..., bytes: Any = ...,
          max_items: Any = ..., max_bytes: Any = ..., lookups: str | Iterable[str] | None = ...,
          stores: str | Iterable[str] | None = ..., miss: Any = ...,
          registry: Registry = ...) -> T: ...


@overload
def cache(*, name: str, sizer: Any = ..., items: Any = ..., bytes: Any = ...,
          max_items: Any = ..., max_bytes: Any = ..., lookups: str | Iterable[str] | None = ...,
          stores: str | Iterable[str] | None = ..., miss: Any = ...,
          registry: Registry = ...) -> Callable[[T], T]: ...


def cache(obj: Any = NOT_GIVEN, name: Any = None, *, sizer: Any = "auto", items: Any = None,
          bytes: Any = None, max_items: Any = None, max_bytes: Any = None, lookups: Any = None,
          stores: Any = None, miss: Any = None, registry: Registry = REGISTRY) -> Any:
    """Instrument a cache (or, applied to a class, every instance of it) under ``name``.

    Returns an object that behaves as ``obj``: the same ``lru_cache`` wrapper, a dict that
    counts (holding the same items), a proxy of a mapping, cachetools or get/put cache, or
    the class itself (patched once). Without ``obj`` it returns a decorator. Explicit
    arguments override what is recognised: ``items``/``bytes``/``max_items``/``max_bytes``
    (an attribute name, a number or a callable ``cache -> number``), ``lookups``/``stores``
    (method names), ``miss`` (what a lookup returns on a miss, default None), ``sizer``
    (``"auto"``, ``"sampled"``, ``"entry"``, ``"own"``, None, or a callable
    ``(key, value) -> bytes``).
    """
    if type(sizer) is str and sizer == "auto" and items is None and bytes is None \
            and max_items is None and max_bytes is None and lookups is None \
            and stores is None and miss is None:
        opts = DEFAULT_OPTIONS  # no validation to do
    else:
        opts = options(sizer=sizer, items=items, bytes=bytes, max_items=max_items,
                       max_bytes=max_bytes, lookups=lookups, stores=stores, miss=miss)
    if obj is NOT_GIVEN:
        SPEC.check_call(name, registry)
        return lambda target: SPEC.instrument(target, name, registry, opts)
    return SPEC.instrument(obj, name, registry, opts)
