"""The shapes of agent memexport recognises, and the one hot path: the agent's own cleanup.

Recognised without configuration (first match wins; adapters such as AutoGen's ``ListMemory``
are asked before these):

- a tool-result cache handler shaped like CrewAI's ``CacheHandler`` (a ``_cache`` dict with
  ``add`` and ``read`` methods: crewai itself is not needed);
- the guide's ``MemoryManagedAgent`` and objects like it: a memory store in one of
  ``STORE_ATTRS`` (dict, list, deque or set), a limit in ``memory_limit_mb`` (MiB, as the
  guide counts) or ``memory_limit_bytes``, weak references in ``_weak_refs``/``weak_refs``,
  ``last_cleanup`` (datetime or unix seconds), a cleanup method in ``CLEANUP_METHODS``;
- PraisonAI-style list adapters: memory entries in list attributes named in ``LIST_ATTRS``
  (all of them count) on a class with an ``add*``/``store*`` and a ``search*``/``query*``/
  ``retrieve*`` method;
- anything else is still tracked for its lifecycle (live, created, finalized), which is
  what an agent leak shows in.

Each agent costs its registry component; what memexport keeps of it besides is the time
its cleanup last returned (the component's ``state``), nothing on the agent itself.
"""

from __future__ import annotations

import inspect
import itertools
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any

from memexport.core.checks import shown
from memexport.core.model import Kind
from memexport.core.registry import Component, Index, Profile, SizeSpec, profile_now
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape
from memexport.instrument.readers import instance_attr, len_of, reader_from
from memexport.kinds.agent.table import (
    ITEMS,
    LAST_CLEANUP,
    LIMIT,
    OVER,
    WEAK,
    AgentInfo,
    AgentOptions,
    as_unix_seconds,
)

__all__ = ["CacheHandlerShape", "GenericShape", "StoreShape", "agent_profile"]

#: Attributes holding an agent's memory store, in the order they are looked for.
STORE_ATTRS = ("_memory_store", "memory_store", "_memories", "memories", "_memory", "memory",
               "_store", "store")
#: List attributes of a PraisonAI-style list adapter (every one present counts).
LIST_ATTRS = ("short_term", "long_term", "_short_term", "_long_term", "entries", "_entries",
              "memories", "_memories")
#: An agent's own cleanup method, in the order looked for (only the first found is counted,
#: so ``periodic_cleanup`` calling ``_cleanup_old_memories`` counts once).
CLEANUP_METHODS = ("_cleanup_old_memories", "cleanup_old_memories", "cleanup_memories",
                   "cleanup_memory", "clear_memory", "reset_memory")
WEAK_ATTRS = ("_weak_refs", "weak_refs")
_MIB = 1 << 20
_CONTAINERS = (dict, list, deque, set)
_WEAK = (weakref.WeakValueDictionary, weakref.WeakKeyDictionary, weakref.WeakSet)


def _entries(stores: Callable[[Any], list[Any]], pairs: bool) -> Callable[[Any], Iterable[Any]]:
    def entries(o: Any) -> Iterable[Any]:
        cs = stores(o)
        if pairs:
            return itertools.chain.from_iterable(c.items() for c in cs)
        return itertools.chain.from_iterable(c.values() if isinstance(c, dict) else c
                                             for c in cs)
    return entries


def agent_profile(kind: Kind, info: AgentInfo, obj: Any) -> Profile:
    """The readers of one type of agent: per-agent gauges, summed per name."""
    readers: dict[Any, Any] = {}
    with_comp: dict[Any, Any] = {}
    size = None
    stores = info.stores
    if stores is not None:
        readers[ITEMS] = info.items
        pairs = all(isinstance(c, dict) for c in stores(obj))
        size = SizeSpec(_entries(stores, pairs), lambda o: sum(len(c) for c in stores(o)),
                        lambda o: sum(shallow_size(c) for c in stores(o)), pairs)
        if info.limit is not None:
            limit = info.limit

            def over(o: Any, comp: Component) -> int | None:
                cap, used = limit(o), comp.size
                return None if cap is None or used is None else int(used > cap)

            with_comp[OVER] = over
    if info.limit is not None:
        readers[LIMIT] = info.limit
    if info.weak_refs is not None:
        readers[WEAK] = info.weak_refs
    if info.cleanup is not None or info.last_cleanup is not None:
        own = info.last_cleanup

        def last(o: Any, comp: Component) -> float | None:
            value = own(o) if own is not None else None
            return value if value is not None else comp.state  # when memexport saw one run

        with_comp[LAST_CLEANUP] = last
    return Profile(kind, readers, size=size, extra=info, with_comp=with_comp)


def _settle(comp: Component, before: int | None, obj: Any) -> None:
    h = comp.group.handles
    h.cleanups()
    comp.state = time.time()
    if before is None:
        return
    after = _items(comp, obj)
    if after is not None and before > after:
        h.evicted(before - after)


def _items(comp: Component, obj: Any) -> int | None:
    info = profile_now(comp, obj).extra
    if not isinstance(info, AgentInfo):
        return None
    try:
        return info.items(obj)
    except Exception:  # never hurt the app
        return None


def cleanup_patch(index: Index, is_async: bool
                  ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A factory of cleanup wrappers counting a tracked agent's cleanup runs and the entries
    they removed (objects not tracked pass straight through)."""
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        if is_async:
            async def cleanup_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                comp = get(id(self))
                if comp is None:
                    return await original(self, *args, **kwargs)
                before = _items(comp, self)
                try:
                    return await original(self, *args, **kwargs)
                finally:
                    _settle(comp, before, self)
            return cleanup_async

        def cleanup(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(self))
            if comp is None:
                return original(self, *args, **kwargs)
            before = _items(comp, self)
            try:
                return original(self, *args, **kwargs)
            finally:
                _settle(comp, before, self)
        return cleanup

    return factory


class StoreShape(Shape):
    """An agent whose class's cleanup method is replaced once (adapters subclass it)."""

    style = "patch"

    def agent_info(self, obj_or_cls: Any, opts: AgentOptions) -> AgentInfo:
        raise NotImplementedError

    def variant(self, obj: Any, opts: AgentOptions) -> Any:
        return type(obj)

    def profile(self, obj: Any, opts: AgentOptions, kind: Kind) -> Profile:
        return agent_profile(kind, self.agent_info(obj, opts), obj)

    def patches(self, cls: type, index: Index, opts: AgentOptions, profile: Profile | None
                ) -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
        info = profile.extra if profile is not None else self.agent_info(cls, opts)
        method = info.cleanup
        if method is None:
            return {}
        fn = getattr(cls, method, None)
        return {method: cleanup_patch(index, inspect.iscoroutinefunction(fn))}


class CacheHandlerShape(StoreShape):
    """A ``_cache`` dict plus ``add`` and ``read`` methods: CrewAI's ``CacheHandler`` shape."""

    label = "a tool-result cache handler"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        cls = type(obj)
        if opts.explicit or not (callable(getattr(cls, "add", None))
                                 and callable(getattr(cls, "read", None))):
            return False
        try:
            return isinstance(obj._cache, dict)
        except Exception:
            return False

    def agent_info(self, obj_or_cls: Any, opts: AgentOptions) -> AgentInfo:
        return AgentInfo(stores=_cache_store)


def _cache_store(obj: Any) -> list[Any]:
    return [obj._cache]


def _has_method(cls: type, prefixes: tuple[str, ...]) -> bool:
    return any(callable(getattr(cls, n, None)) for n in dir(cls) if n.startswith(prefixes))


def _stores_of(attrs: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    getters = [attrgetter(a) for a in attrs]

    def stores(obj: Any) -> list[Any]:
        return [g(obj) for g in getters]
    return stores


def _limit_mb(obj: Any) -> float | None:
    v = obj.memory_limit_mb
    return None if v is None else float(v) * _MIB


def _limit_bytes(obj: Any) -> float | None:
    v = obj.memory_limit_bytes
    return None if v is None else float(v)


class GenericShape(StoreShape):
    """The guide's ``MemoryManagedAgent`` and objects like it; any object, for its lifecycle."""

    label = "an agent"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        return True

    def matches_class(self, cls: type, opts: AgentOptions) -> bool:
        return True

    def check(self, obj: Any, opts: AgentOptions) -> None:
        if isinstance(obj, Mapping | list | deque | set | tuple | str | bytes):
            raise TypeError(
                f"memexport.agent got a {shown(type(obj).__qualname__)}: pass the agent object "
                f"itself (memory='attribute' names its store), or track a chat history with "
                f"memexport.conversation")
        self.agent_info(obj, opts)

    def agent_info(self, obj_or_cls: Any, opts: AgentOptions) -> AgentInfo:
        is_cls = isinstance(obj_or_cls, type)
        cls = obj_or_cls if is_cls else type(obj_or_cls)
        d = (lambda name: None) if is_cls else (lambda name: instance_attr(obj_or_cls, name))
        explicit = opts.explicit
        stores: Callable[[Any], list[Any]] | None = None
        if opts.memory is not None:
            if isinstance(opts.memory, str):
                if not is_cls and not isinstance(d(opts.memory), _CONTAINERS):
                    raise ValueError(f"memory={shown(opts.memory)}: {shown(cls.__qualname__)}."
                                     f"{opts.memory} is not a dict, list, deque or set")
                stores = _stores_of((opts.memory,))
            else:
                fn = opts.memory

                def stores(o: Any) -> list[Any]:
                    return [fn(o)]
        elif not explicit and not is_cls:
            found = next((a for a in STORE_ATTRS if isinstance(d(a), _CONTAINERS)), None)
            lists = tuple(a for a in LIST_ATTRS if isinstance(d(a), list))
            if lists and _has_method(cls, ("add", "store")) and _has_method(
                    cls, ("search", "query", "retrieve")):
                stores = _stores_of(lists)
            elif found is not None:
                stores = _stores_of((found,))
        limit = opts.limit_bytes
        if limit is None and not explicit and not is_cls:
            if isinstance(d("memory_limit_mb"), int | float):
                limit = _limit_mb
            elif isinstance(d("memory_limit_bytes"), int | float):
                limit = _limit_bytes
        weak: Callable[[Any], Any] | None = None
        if opts.weak_refs is not None:
            getter = reader_from(opts.weak_refs, "weak_refs", constants=False)
            assert getter is not None
            weak = len_of(getter) if isinstance(opts.weak_refs, str) else getter
        elif not explicit and not is_cls:
            attr = next((a for a in WEAK_ATTRS if isinstance(d(a), _WEAK)), None)
            if attr is not None:
                get_weak = attrgetter(attr)
                weak = lambda o: len(get_weak(o))  # noqa: E731
        last = None
        if opts.last_cleanup is not None:
            get_last = opts.last_cleanup
            last = lambda o: as_unix_seconds(get_last(o))  # noqa: E731
        elif (not explicit and not is_cls and isinstance(d("last_cleanup"), int | float)) or (
                not explicit and not is_cls and hasattr(d("last_cleanup"), "timestamp")):
            last = lambda o: as_unix_seconds(o.last_cleanup)  # noqa: E731
        method: str | None = None
        if opts.cleanup is not None:
            if not callable(getattr(cls, opts.cleanup, None)):
                raise ValueError(f"cleanup={shown(opts.cleanup)}: {shown(cls.__qualname__)} has no "
                                 f"method of that name")
            method = opts.cleanup
        elif not explicit:
            method = next((n for n in CLEANUP_METHODS if callable(getattr(cls, n, None))), None)
        return AgentInfo(stores=stores, limit=limit, weak_refs=weak, last_cleanup=last,
                         cleanup=method)

    def class_profile(self, obj: Any, opts: AgentOptions, kind: Kind, index: Index) -> Profile:
        return agent_profile(kind, self.agent_info(obj, opts), obj)
