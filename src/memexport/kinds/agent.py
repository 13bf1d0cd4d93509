"""Agents: live, created and finalized per name, memory stores against their own limits, cleanups.

``memexport.agent(obj_or_class, name=...)`` tracks agent objects. A leak shows as live agents
(created minus finalized) rising; a memory store outgrowing its budget as
``memexport_agent_memory_bytes`` over ``memexport_agent_memory_limit_bytes``. Each agent is
one registry component in its name's group, registered with a profile built once per class
(the registry counts live, created and finalized agents and sums the profile's per-agent
gauge readers). What memexport keeps per agent besides (its deep-size sampler, when it saw
its cleanup run) is a ``State`` in an index keyed by ``id(agent)`` (see
``memexport.conversation.State``), made only at its first cleanup or scrape, so that
tracking an agent created per task costs its registry component alone, less than creating
the guide's agent. ``memexport.agent(obj)`` finds what it needs per class and name with one
dict lookup (``_FAST``) and keeps (handles, profile) in the component's ``state``.
When the agent is freed, all of it goes, leaving only the counts.

Recognised without configuration (first match wins):

- AutoGen ``ListMemory`` (when ``autogen_core`` is imported): ``_contents``; ``clear()`` is
  its cleanup.
- CrewAI's tool ``CacheHandler``, by its shape: a ``_cache`` dict with ``add`` and ``read``
  methods (crewai itself is not needed: see ``memexport.integrations.crewai``).
- The guide's ``MemoryManagedAgent`` and objects like it: a memory store in one of
  ``STORE_ATTRS`` (dict, list, deque or set), a limit in ``memory_limit_mb`` (MiB, as the
  guide counts) or ``memory_limit_bytes``, weak references in ``_weak_refs``/``weak_refs``,
  ``last_cleanup`` (datetime or unix seconds), a cleanup method in ``CLEANUP_METHODS``.
- PraisonAI-style list adapters: an object holding memory entries in list attributes named
  in ``LIST_ATTRS`` (all of them count) whose class has an ``add*``/``store*`` method and a
  ``search*``/``query*``/``retrieve*`` method.

Anything else through explicit arguments (``memory=``, ``limit_bytes=``, ``weak_refs=``,
``cleanup=``, ``last_cleanup=``); an object with none of these is still tracked for its
lifecycle (live, created, finalized), which is what an agent leak shows in.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
import math
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar
from weakref import getweakrefcount, getweakrefs

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY, Group, Profile, Registry, validate_name
from memexport.instrument.sizing import SampledSize, shallow_size
from memexport.kinds.conversation import (
    ClassCache,
    Index,
    NameHandles,
    State,
    WeakIdMap,
    _registries,
    cached_profile,
    handles_for,
    instance_attr,
    patch_method,
    sampled_size,
    to_getter,
    tracked_objects,
)

__all__ = ["KIND", "AgentProfile", "agent", "tracked_bytes"]

KIND = Kind(
    "agent",
    "agent",
    (
        MetricDef("memexport_agents", "gauge", "Live agents tracked under this name.",
                  source="live"),
        MetricDef("memexport_agents_created_total", "counter",
                  "Agents tracked under this name so far.", source="created"),
        MetricDef("memexport_agents_finalized_total", "counter",
                  "Tracked agents that were garbage-collected; created minus finalized rising "
                  "steadily is a leak.", source="finalized"),
        MetricDef("memexport_agent_memory_items", "gauge",
                  "Entries in the memory stores of the live agents of this name."),
        MetricDef("memexport_agent_memory_bytes", "gauge",
                  "Deep size of the memory stores of the live agents of this name, sampled on "
                  "the collector thread.", "bytes"),
        MetricDef("memexport_agent_memory_limit_bytes", "gauge",
                  "The agents' own memory limits (the guide's memory_limit_mb), summed over "
                  "the live agents of this name that have one.", "bytes"),
        MetricDef("memexport_agents_over_memory_limit", "gauge",
                  "Live agents of this name whose memory store is bigger than their own limit."),
        MetricDef("memexport_agent_weak_refs", "gauge",
                  "Weak references the live agents of this name still hold (their _weak_refs)."),
        MetricDef("memexport_agent_cleanups_total", "counter",
                  "Runs of the agents' own memory cleanup method."),
        MetricDef("memexport_agent_cleanup_evicted_total", "counter",
                  "Memory-store entries removed by the agents' own cleanups."),
        MetricDef("memexport_agent_last_cleanup_timestamp_seconds", "gauge",
                  "Unix time of the latest cleanup of any live agent of this name.", "seconds",
                  agg="max"),
    ),
    bytes_metric="memexport_agent_memory_bytes",
)

T = TypeVar("T")

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

ITEMS = "memexport_agent_memory_items"
BYTES = "memexport_agent_memory_bytes"
LIMIT = "memexport_agent_memory_limit_bytes"
OVER = "memexport_agents_over_memory_limit"
WEAK = "memexport_agent_weak_refs"
LAST_CLEANUP = "memexport_agent_last_cleanup_timestamp_seconds"


class AgentProfile:
    """How to read one type of agent (shared by its instances).

    ``stores(obj)`` returns the memory containers (``len`` = items, deep size = bytes),
    ``limit(obj)`` the agent's own limit in bytes, ``weak_refs(obj)`` the live weak
    references, ``last_cleanup(obj)`` unix seconds; ``cleanup`` names the method whose runs
    (and the entries they remove) are counted. ``readers`` is the registry profile built
    from them once (per-agent gauge readers, summed per name); ``stateful`` whether each
    agent needs a ``State`` (a store to sample, or a cleanup to count).
    """

    def __init__(self, *, stores: Callable[[Any], list[Any]] | None = None,
                 limit: Callable[[Any], float | None] | None = None,
                 weak_refs: Callable[[Any], int | None] | None = None,
                 last_cleanup: Callable[[Any], float | None] | None = None,
                 cleanup: str | None = None, source: str = "") -> None:
        self.stores = stores
        self.limit = limit
        self.weak_refs = weak_refs
        self.last_cleanup = last_cleanup
        self.cleanup = cleanup
        self.source = source
        self.stateful = stores is not None or cleanup is not None
        readers: dict[str, Callable[[Any], Any]] = {}
        if stores is not None:
            readers[ITEMS] = self.items
            readers[BYTES] = _bytes
            if limit is not None:
                readers[OVER] = _over_limit
        if limit is not None:
            readers[LIMIT] = limit
        if weak_refs is not None:
            readers[WEAK] = weak_refs
        if cleanup is not None:
            readers[LAST_CLEANUP] = _last_cleanup  # the agent's own, else when one ran
        elif last_cleanup is not None:
            readers[LAST_CLEANUP] = last_cleanup
        self.readers = Profile(KIND, readers)

    def items(self, obj: Any) -> int | None:
        if self.stores is None:
            return None
        return sum(len(c) for c in self.stores(obj))


# -- readers of an agent's own attributes --------------------------------------------------------


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


def _len_of(attr: str) -> Callable[[Any], int]:
    get = attrgetter(attr)

    def length(obj: Any) -> int:
        return len(get(obj))

    return length


def as_unix_seconds(value: Any) -> float | None:
    """A datetime (naive = local time, as ``datetime.now()``) or a number as unix seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _timestamp_of(get: Callable[[Any], Any]) -> Callable[[Any], float | None]:
    def read(obj: Any) -> float | None:
        return as_unix_seconds(get(obj))

    return read


class _Attrs:
    """An agent's instance data by name (``instance_attr``: no property run, no ``__dict__``)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self, name: str) -> Any:
        return instance_attr(self.obj, name)


def _has_method(cls: type, prefixes: tuple[str, ...]) -> bool:
    return any(callable(getattr(cls, n, None)) for n in dir(cls)
               if n.startswith(prefixes))


_INTEGRATIONS = (
    ("autogen_core", "memexport.integrations.autogen"),
)


def recognise(obj: Any, *, memory: Any = None, limit_bytes: Any = None, weak_refs: Any = None,
              cleanup: str | None = None, last_cleanup: Any = None) -> AgentProfile:
    """The profile of ``obj``: explicit arguments first, then integrations, then shapes."""
    if isinstance(obj, Mapping | list | deque | set | tuple | str | bytes):
        raise TypeError(
            f"memexport.agent got a {type(obj).__qualname__}: pass the agent object itself "
            f"(memory='attribute' names its store), or track a chat history with "
            f"memexport.kinds.conversation")
    explicit = any(a is not None for a in (memory, limit_bytes, weak_refs, cleanup, last_cleanup))
    if not explicit:
        for module_name, integration in _INTEGRATIONS:
            if module_name in sys.modules:
                try:
                    mod = importlib.import_module(integration)
                except ImportError:
                    continue
                profile = mod.agent_profile(obj)
                if profile is not None:
                    return profile
        from memexport.integrations import crewai

        profile = crewai.agent_profile(obj)
        if profile is not None:
            return profile
    cls = type(obj)
    d = _Attrs(obj)
    stores: Callable[[Any], list[Any]] | None = None
    if memory is not None:
        if isinstance(memory, str):
            if not memory.isidentifier():
                raise ValueError(f"memory must be an attribute name or a callable, got "
                                 f"{memory!r}")
            if not isinstance(getattr(obj, memory, None), _CONTAINERS):
                raise ValueError(f"memory={memory!r}: {cls.__qualname__}.{memory} is not a "
                                 f"dict, list, deque or set")
            stores = _stores_of((memory,))
        elif callable(memory):
            fn = memory

            def stores(o: Any) -> list[Any]:
                return [fn(o)]
        else:
            raise ValueError(f"memory must be an attribute name or a callable, got {memory!r}")
    elif not explicit:
        found = next((a for a in STORE_ATTRS if isinstance(d.get(a), _CONTAINERS)), None)
        lists = tuple(a for a in LIST_ATTRS if isinstance(d.get(a), list))
        if lists and _has_method(cls, ("add", "store")) and _has_method(
                cls, ("search", "query", "retrieve")):
            stores = _stores_of(lists)
        elif found is not None:
            stores = _stores_of((found,))
    limit: Callable[[Any], float | None] | None = None
    if limit_bytes is not None:
        if isinstance(limit_bytes, int | float) and not isinstance(limit_bytes, bool):
            if not math.isfinite(limit_bytes) or limit_bytes <= 0:
                raise ValueError(f"limit_bytes must be a positive finite number, got "
                                 f"{limit_bytes!r}")
            value = float(limit_bytes)

            def limit(o: Any) -> float:
                return value
        else:
            limit = to_getter(limit_bytes, "limit_bytes")
    elif not explicit:
        if isinstance(d.get("memory_limit_mb"), int | float):
            limit = _limit_mb
        elif isinstance(d.get("memory_limit_bytes"), int | float):
            limit = _limit_bytes
    weak: Callable[[Any], int | None] | None = None
    if weak_refs is not None:
        getter = to_getter(weak_refs, "weak_refs")
        assert getter is not None
        weak = (lambda o, g=getter: len(g(o))) if isinstance(weak_refs, str) else getter
    elif not explicit:
        attr = next((a for a in WEAK_ATTRS if isinstance(
            d.get(a), weakref.WeakValueDictionary | weakref.WeakKeyDictionary | weakref.WeakSet)),
            None)
        if attr is not None:
            weak = _len_of(attr)
    last: Callable[[Any], float | None] | None = None
    if last_cleanup is not None:
        getter = to_getter(last_cleanup, "last_cleanup")
        assert getter is not None
        last = _timestamp_of(getter)
    elif not explicit and isinstance(d.get("last_cleanup"), datetime | int | float):
        last = _timestamp_of(attrgetter("last_cleanup"))
    method: str | None = None
    if cleanup is not None:
        if not isinstance(cleanup, str) or not callable(getattr(cls, cleanup, None)):
            raise ValueError(f"cleanup={cleanup!r}: {cls.__qualname__} has no method of that "
                             f"name")
        method = cleanup
    elif not explicit:
        method = next((n for n in CLEANUP_METHODS if callable(getattr(cls, n, None))), None)
    return AgentProfile(stores=stores, limit=limit, weak_refs=weak, last_cleanup=last,
                        cleanup=method, source=cls.__qualname__)


# -- per-agent state and the cleanup wrapper ----------------------------------------------------


class _Handles(NameHandles):
    """An agent name's group and its shared counters' hot-path callables."""

    __slots__ = ("cleanups", "evicted")

    def __init__(self, registry: Registry, group: Group) -> None:
        super().__init__(registry, group)
        self.cleanups: Callable[[], object] = group.counter(
            "memexport_agent_cleanups_total").inc
        self.evicted: Callable[[float], None] = group.adder(
            "memexport_agent_cleanup_evicted_total").add


class _State(State):
    """A tracked agent with a store or a cleanup: ``last_cleanup`` is when memexport saw its
    cleanup method return (unix seconds), for agents that keep no time of their own; unset
    until then."""

    __slots__ = ("last_cleanup",)


_INDEX = Index()
_STATES = _INDEX.states

#: Per class: its profiles, and ``bound`` = (handles, profile) when every instance of the
#: class is tracked (``@memexport.agent`` on it, or a subclass constructed through it). Such
#: instances get a ``State`` only when one is needed (``_state_of``), so tracking an agent
#: created per task costs its registry component alone.
_CLASSES: WeakIdMap[type, ClassCache[AgentProfile]] = WeakIdMap()


def _component_of(obj: Any) -> Any:
    """The registry component of an agent tracked on its own (``agent(obj)``), else None.

    Found through the object's weak references, one of which is its component's: no index
    of our own, so tracking an agent adds nothing to forget when it is freed. Only the
    cleanup wrapper, the first scrape of an agent and ``agent()`` on an object that already
    has weak references come here.
    """
    if not getweakrefcount(obj):
        return None
    refs = getweakrefs(obj)
    with _registries.lock:
        groups = [g for ref, per in _registries.entries.values() if ref() is not None
                  for (kind, _), g in per.groups.items() if kind == KIND.name]
    for group in groups:
        members = group.members
        for r in refs:
            comp = members.get(id(r))
            if comp is not None and comp.ref is r:  # r is alive: its id is its own
                return comp
    return None


def _state_of(obj: Any) -> Any:
    """The state of a tracked agent, created on first need (its first cleanup or scrape);
    None for an agent that is not tracked or needs none."""
    st = _STATES.get(id(obj))
    if st is not None:
        return st
    comp = _component_of(obj)
    bound = None if comp is None else comp.state
    if bound is None:
        cache = _CLASSES.get(type(obj))
        bound = None if cache is None else cache.bound
    if bound is None or not bound[1].stateful:
        return None
    st = _State(obj, _INDEX.gone)
    st.key = id(obj)
    st.h, st.p = bound
    return _STATES.setdefault(st.key, st)  # another thread may have made one: use the first


def _safe_items(st: Any, obj: Any) -> int | None:
    try:
        return st.p.items(obj)  # type: ignore[no-any-return]
    except Exception as exc:  # never hurt the app
        st.h.record_error(KIND.name, "memory items", exc)
        return None


def _settle_cleanup(st: Any, before: int | None, obj: Any) -> None:
    h = st.h
    h.cleanups()
    st.last_cleanup = time.time()
    if before is None:
        return
    after = _safe_items(st, obj)
    if after is not None and before > after:
        h.evicted(before - after)


def _make_cleanup_wrapper(is_async: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrappers counting a tracked agent's cleanup runs and the entries they removed.

    Cleanups are rare, so an agent without a state yet (tracked through its class) pays the
    class lookup here, not at creation.
    """
    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        if is_async:
            async def cleanup_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                st = _state_of(self)
                if st is None:
                    return await original(self, *args, **kwargs)
                before = _safe_items(st, self)
                try:
                    return await original(self, *args, **kwargs)
                finally:
                    _settle_cleanup(st, before, self)
            return cleanup_async

        def cleanup(self: Any, *args: Any, **kwargs: Any) -> Any:
            st = _state_of(self)
            if st is None:
                return original(self, *args, **kwargs)
            before = _safe_items(st, self)
            try:
                return original(self, *args, **kwargs)
            finally:
                _settle_cleanup(st, before, self)
        return cleanup

    return factory


# -- scrape-time readers of one agent (they look its state up; none closes over an agent) -------


def _make_sampler(st: Any, obj: Any) -> SampledSize | None:
    stores = st.p.stores
    if stores is None:
        return None
    pairs = all(isinstance(c, dict) for c in stores(obj))

    def entries(o: Any) -> Iterable[Any]:
        cs = stores(o)
        if pairs:
            return itertools.chain.from_iterable(c.items() for c in cs)
        return itertools.chain.from_iterable(c.values() if isinstance(c, dict) else c
                                             for c in cs)

    def length(o: Any) -> int:
        return sum(len(c) for c in stores(o))

    def overhead(o: Any) -> int:
        return sum(shallow_size(c) for c in stores(o))

    return SampledSize(entries, length, overhead, pairs=pairs, collector=KIND.name,
                       source=f"agent {st.h.name!r} memory deep size")


def _bytes(obj: Any) -> float | None:
    """The agent's memory stores' sampled deep size."""
    st = _state_of(obj)
    if st is None:
        return None
    s = sampled_size(st, obj, _make_sampler)
    return None if s is None else s.read(obj)


def _over_limit(obj: Any) -> int | None:
    """1 if the agent's store is bigger than its own limit, else 0 (summed: how many are)."""
    st = _state_of(obj)
    if st is None:
        return None
    limit = st.p.limit(obj)
    size = _bytes(obj)
    if limit is None or size is None:
        return None
    return 1 if size > limit else 0


def _last_cleanup(obj: Any) -> float | None:
    """The agent's own last cleanup time, else when memexport saw its cleanup run."""
    st = _state_of(obj)
    if st is None:
        return None
    own = st.p.last_cleanup
    value = own(obj) if own is not None else None
    return value if value is not None else getattr(st, "last_cleanup", None)  # type: ignore[no-any-return]


def tracked_bytes(registry: Registry) -> float:
    """Deep size of the memory stores of every agent tracked in ``registry``, sampled now."""
    total = 0.0
    for obj in tracked_objects(registry, KIND):
        st = _state_of(obj)
        if st is None:
            continue
        s = sampled_size(st, obj, _make_sampler)
        if s is not None:
            value = s.refresh(obj)
            if value is not None:
                total += value
    return total


# -- the public entry point ---------------------------------------------------------------------

def _install(cls: type, profile: AgentProfile) -> None:
    if profile.cleanup is not None:
        fn = getattr(cls, profile.cleanup, None)
        patch_method(cls, profile.cleanup,
                     _make_cleanup_wrapper(inspect.iscoroutinefunction(fn)), "agent-cleanup")


def _recognise(obj: Any, explicit: tuple[Any, ...]) -> AgentProfile:
    memory, limit_bytes, weak_refs, cleanup, last_cleanup = explicit
    return recognise(obj, memory=memory, limit_bytes=limit_bytes, weak_refs=weak_refs,
                     cleanup=cleanup, last_cleanup=last_cleanup)


def profile_for(obj: Any, explicit: tuple[Any, ...]) -> AgentProfile:
    """The profile of ``obj``'s class with these explicit arguments (``memory``,
    ``limit_bytes``, ``weak_refs``, ``cleanup``, ``last_cleanup``), cached per class."""
    return cached_profile(_CLASSES, obj, explicit, _recognise, _install)


def _class_tracked(cls: type) -> bool:
    cache = _CLASSES.get(cls)
    return cache is not None and cache.bound is not None


def _track(obj: Any, h: _Handles, profile: AgentProfile) -> None:
    """One registry component for ``obj`` unless it is tracked already (the first name wins).

    Its ``state`` is (handles, profile): what ``_state_of`` needs to make the agent's
    ``State`` when its first cleanup or scrape needs one.
    """
    if _class_tracked(type(obj)) or _component_of(obj) is not None:
        return
    reg = h.registry()
    if reg is not None:
        reg.register(obj, KIND, h.group, profile.readers).state = (h, profile)


class _Fast:
    """What ``agent(obj, name=...)`` without explicit arguments needs for one class, name and
    registry, found with one dict lookup: tracking one more agent then costs its component.

    Holds the class and the registry weakly; ``next`` is the entry of another class or
    registry tracked under the same name.
    """

    __slots__ = ("bound", "cache", "cls", "group", "next", "readers", "reg")

    def __init__(self, cls: type, h: _Handles, profile: AgentProfile,
                 cache: ClassCache[AgentProfile], next: _Fast | None) -> None:
        self.cls = weakref.ref(cls)
        self.reg = h.registry
        self.group = h.group
        self.readers = profile.readers
        self.bound = (h, profile)
        self.cache = cache
        self.next = next


#: ``name -> _Fast`` (a short chain when one name is used with several classes/registries).
_FAST: dict[str, _Fast] = {}
_fast_get = _FAST.get
_MAX_CHAIN = 8


def _find(fast: _Fast | None, cls: type, registry: Registry) -> _Fast | None:
    while fast is not None:
        if fast.cls() is cls and fast.reg() is registry:
            return fast
        fast = fast.next
    return None


def _remember(obj: Any, name: str, registry: Registry, h: _Handles,
              profile: AgentProfile) -> None:
    """Add the fast-path entry of ``obj``'s class under ``name`` (slow path, once)."""
    cls = type(obj)
    if h.name != name:
        return  # folded into __overflow__: every call must reach the registry's count
    try:
        with _CLASSES.lock:
            cache = _CLASSES.get_or_add(cls, ClassCache)
            old, keep = _FAST.get(name), []
            while old is not None and len(keep) < _MAX_CHAIN - 1:
                c, r = old.cls(), old.reg()
                if c is not None and r is not None and not (c is cls and r is registry):
                    keep.append((c, old))
                old = old.next
            head = _Fast(cls, h, profile, cache, None)
            tail = head
            for _, f in keep:  # relink the live entries of other classes/registries
                f.next = None
                tail.next = f
                tail = f
            _FAST[name] = head
    except TypeError:  # a class that takes no weak references: no fast path
        pass


def agent(obj_or_class: Any = None, *, name: str, memory: Any = None, limit_bytes: Any = None,
          weak_refs: Any = None, cleanup: str | None = None, last_cleanup: Any = None,
          registry: Registry = REGISTRY) -> Any:
    """Track an agent (or, on a class, every instance it creates) under ``name``.

    ``agent = memexport.agent(MemoryManagedAgent("planner", memory_limit_mb=100),
    name="planner")`` returns the same object, tracked; ``@memexport.agent(name="researcher")``
    on a class tracks each instance once its ``__init__`` has run. For shapes memexport does
    not recognise pass ``memory`` (attribute name or callable returning the store: dict, list,
    deque or set), ``limit_bytes`` (a number, attribute or callable), ``weak_refs``,
    ``cleanup`` (the method that trims the store) and ``last_cleanup`` (datetime or unix
    seconds). The agent is held weakly.
    """
    try:
        fast = _fast_get(name)
    except TypeError:  # an unhashable name: the slow path raises the ValueError
        fast = None
    if fast is not None and memory is None and limit_bytes is None and weak_refs is None \
            and cleanup is None and last_cleanup is None:
        obj = obj_or_class
        if fast.cls() is not type(obj) or fast.reg() is not registry:
            fast = _find(fast.next, type(obj), registry)
        if fast is not None:
            if fast.cache.bound is None and (  # else tracked already: the first name wins
                    not getweakrefcount(obj) or _component_of(obj) is None):
                registry.register(obj, KIND, fast.group, fast.readers).state = fast.bound
            return obj
    if obj_or_class is None:
        validate_name(KIND.name, name)
        return lambda target: agent(target, name=name, memory=memory, limit_bytes=limit_bytes,
                                    weak_refs=weak_refs, cleanup=cleanup,
                                    last_cleanup=last_cleanup, registry=registry)
    h = handles_for(registry, KIND, name, _Handles)
    explicit = (memory, limit_bytes, weak_refs, cleanup, last_cleanup)
    if isinstance(obj_or_class, type):
        return _track_class(obj_or_class, h, explicit)
    profile = profile_for(obj_or_class, explicit)
    _track(obj_or_class, h, profile)
    if all(a is None for a in explicit):
        _remember(obj_or_class, name, registry, h, profile)
    return obj_or_class


_UNSEEN: Any = object()


def _bind_class(cls: type, h: _Handles, profile: AgentProfile) -> AgentProfile | None:
    """Mark every instance of ``cls`` as tracked under ``h``; None if another decorated
    class already tracks them (a decorated subclass of a decorated class: the first wins)."""
    with _CLASSES.lock:
        cache = _CLASSES.get_or_add(cls, ClassCache)
        if cache.bound is not None:
            return None
        cache.bound = (h, profile)
        return profile


def _track_class(cls: type[T], h: _Handles, explicit: tuple[Any, ...]) -> type[T]:
    """Patch ``cls.__init__`` so every instance is registered under ``h`` once constructed.

    The path of agents created per task: each costs its registry component and nothing
    more. The class is marked as tracked (``_CLASSES``) and its instances get a ``State``
    lazily (``_state_of``), at their first cleanup or scrape. The class holds the registry
    (its instances are counted there).
    """
    profiles: dict[type, AgentProfile | None] = {}
    base_init = cls.__dict__.get("__init__") or cls.__init__
    reg = h.registry()
    register = reg.register if reg is not None else None
    group = h.group
    kind = KIND
    unseen = _UNSEEN

    @functools.wraps(base_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        try:
            profile = profiles.get(type(self), unseen)
            if profile is unseen:
                profile = profiles[type(self)] = _bind_class(
                    type(self), h, profile_for(self, explicit))
            if profile is not None:
                register(self, kind, group, profile.readers)  # type: ignore[misc]
        except Exception as exc:  # never hurt the app: count, log once, go on untracked
            h.record_error(KIND.name, type(self).__qualname__, exc)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


def memory_stores(obj: Any) -> list[Any]:
    """The memory containers of a tracked agent (``[]`` if it has none or is not tracked).

    For the RSS ledger: a component held in an agent's store (a tracked conversation kept
    as a memory entry) is counted in the agent's deep size too, and the ledger subtracts it.
    Never raises.
    """
    try:
        st = _state_of(obj)
        stores = None if st is None else st.p.stores
        return [] if stores is None else list(stores(obj))
    except Exception:
        return []
