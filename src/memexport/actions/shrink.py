"""Shrinking one instrumented object through its own API, and the user hooks that do it instead.

- a cache: ``cache_clear()`` (``functools.lru_cache``: it cannot shrink in part), a cachetools
  cache's ``expire()`` then ``popitem()`` (its own policy picks what goes), an
  ``OrderedDict``'s ``popitem(last=False)`` (oldest first), a mapping's oldest keys deleted
  (``del cache[key]``, insertion order), or ``clear()`` when the whole cache is to go. The
  calls go through what ``memexport.cache`` returned, so they are counted as explicit
  evictions like the app's own;
- a pool: SQLAlchemy's ``pool.dispose()`` (closes the idle connections; checked-out ones
  stay), redis-py's ``disconnect(inuse_connections=False)``;
- anything else, and every conversation history: a hook registered for its name with
  ``@shrinker(name)`` (caches), ``@trimmer(name)`` (histories: summarise or trim) or
  ``@reaper(name)`` (pools). A hook runs on the action thread: it must take the locks its
  object needs, as the app's own code would.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from memexport.core import forks, sizing
from memexport.core.checks import shown, validate_name
from memexport.core.component import Component, resolve_profile
from memexport.core.registry import Registry

__all__ = ["hook_for", "length", "measure", "members", "reap_pool", "reaper", "shrink_cache",
           "shrinker", "trimmer"]

F = TypeVar("F", bound=Callable[..., Any])

#: Removals between two deadline checks.
_CHECK_EVERY = 256

_hooks: dict[tuple[str, str], Callable[..., Any]] = {}
_hooks_lock = forks.RLock()


def _register(kind: str, name: str) -> Callable[[F], F]:
    validate_name(kind, name)

    def register(fn: F) -> F:
        if not callable(fn):
            raise ValueError(f"a {kind} hook must be callable, got {shown(fn)}")
        with _hooks_lock:
            _hooks[(kind, name)] = fn
        return fn

    return register


def shrinker(name: str) -> Callable[[F], F]:
    """Register ``fn(cache, fraction)`` to shrink the cache ``name`` by ``fraction``."""
    return _register("cache", name)


def trimmer(name: str) -> Callable[[F], F]:
    """Register ``fn(history, fraction)`` to summarise or trim each conversation ``name``."""
    return _register("conversation", name)


def reaper(name: str) -> Callable[[F], F]:
    """Register ``fn(pool)`` to close the idle resources of the pool ``name``."""
    return _register("pool", name)


def hook_for(kind: str, name: str) -> Callable[..., Any] | None:
    with _hooks_lock:
        return _hooks.get((kind, name))


def members(registry: Registry, kind: str, names: Any) -> Iterator[tuple[str, Component, Any]]:
    """``(name, component, object)`` of the live components of ``kind`` whose name is in
    ``names`` (a container, or ``"*"`` for all)."""
    for group in registry.groups():
        if group.kind.name != kind or (names != "*" and group.name not in names):
            continue
        for comp in list(group.members.values()):
            obj = comp()
            if obj is not None:
                yield group.name, comp, obj


def measure(comp: Component, obj: Any, registry: Registry) -> float | None:
    """A component's bytes now: its own figure, else its length times the mean entry size
    the sampler found (one sampling window first if it never sized it) plus its overhead.
    Taken before and after a shrink, the difference is the entries removed at that mean:
    O(1) per component, where re-sampling each one twice costs a deep walk of 2 x 256
    entries."""
    profile = comp.profile
    if profile.resolve is not None:
        profile = resolve_profile(comp, obj, registry.errors)
    metric = comp.group.kind.bytes_metric
    reader = profile.readers.get((metric, ())) if metric else None
    if reader is not None:
        value = reader(obj)
        if value is not None:
            return float(value)
    spec = profile.size
    if spec is None:
        return None
    if comp.size_mean <= 0.0:
        sizing.refresh(comp, obj)
    return float(spec.length(obj) * comp.size_mean + spec.overhead(obj))


def length(obj: Any) -> int | None:
    """Entries of a cache: ``cache_info().currsize`` or ``len``; None if neither answers."""
    info = getattr(obj, "cache_info", None)
    if callable(info):
        try:
            return int(info().currsize)
        except Exception:
            return None
    try:
        return len(obj)
    except Exception:
        return None


def _is_cachetools(obj: Any) -> bool:
    return any((c.__module__ or "").startswith("cachetools") for c in type(obj).__mro__)


def _pop(pop: Callable[[], Any], k: int, deadline: float) -> int:
    done = 0
    while done < k:
        if done % _CHECK_EVERY == 0 and time.perf_counter() > deadline:
            break
        try:
            pop()
        except KeyError:  # emptied meanwhile
            break
        done += 1
    return done


def _oldest_keys(obj: Any, k: int) -> list[Any]:
    for _ in range(5):  # the app may resize the mapping meanwhile: try again
        try:
            return list(itertools.islice(iter(obj), k))
        except RuntimeError:
            continue
    return []


def shrink_cache(obj: Any, fraction: float, hook: Callable[..., Any] | None = None,
                 deadline: float = math.inf) -> tuple[int, str]:
    """Remove ``fraction`` of the cache's entries; (entries removed, how)."""
    before = length(obj)
    if hook is not None:
        hook(obj, fraction)
        after = length(obj)
        return (max(0, before - after) if before is not None and after is not None else 0,
                "hook")
    if callable(getattr(obj, "cache_clear", None)) and callable(getattr(obj, "cache_info",
                                                                        None)):
        obj.cache_clear()
        return before or 0, "cache_clear"
    if before is None:
        return 0, "unsupported"
    inner = getattr(obj, "__wrapped__", obj)
    k = min(before, math.ceil(before * fraction))
    if k <= 0:
        return 0, "empty"
    if _is_cachetools(inner):
        if callable(getattr(inner, "expire", None)):  # TTL caches (the proxy has one anyway)
            obj.expire()
        gone = before - (length(obj) or 0)
        return gone + _pop(obj.popitem, k - gone, deadline), "popitem"
    whole = k >= before and callable(getattr(obj, "clear", None))
    if whole:
        obj.clear()
        return before - (length(obj) or 0), "clear"
    if isinstance(inner, OrderedDict):
        return _pop(lambda: obj.popitem(last=False), k, deadline), "popitem"
    if isinstance(inner, Mapping) and hasattr(obj, "__delitem__"):
        removed = 0
        for i, key in enumerate(_oldest_keys(obj, k)):
            if i % _CHECK_EVERY == 0 and time.perf_counter() > deadline:
                break
            try:
                del obj[key]
                removed += 1
            except KeyError:
                continue
        return removed, "delete"
    return 0, "unsupported"


def reap_pool(obj: Any, hook: Callable[..., Any] | None = None) -> str:
    """Close the pool's idle resources through its own API (or the hook); how."""
    if hook is not None:
        hook(obj)
        return "hook"
    inner = getattr(obj, "__wrapped__", obj)
    module = type(inner).__module__ or ""
    if module.startswith("sqlalchemy"):
        pool = getattr(inner, "pool", inner)  # an Engine: its Pool
        dispose = getattr(pool, "dispose", None)
        if callable(dispose):
            dispose()
            return "dispose"
    if module.startswith("redis"):
        disconnect = getattr(inner, "disconnect", None)
        if callable(disconnect):
            disconnect(inuse_connections=False)
            return "disconnect"
    return "unsupported"
