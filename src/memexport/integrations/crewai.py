"""CrewAI (``crewai``): the tool-result cache, agents and crews, and the unified ``Memory``, an
adapter of the cache and agent kinds.

Asked only once ``crewai`` is imported; its classes are looked up in ``sys.modules`` (memexport
never imports a crewai module the app did not).

- ``memexport.cache(handler, name)``: a ``CacheHandler`` (``agent.cache_handler``; a crew with
  ``cache=True`` gives every agent its own handler, shared): hits and misses of ``read``, puts
  of ``add`` (a ``ToolFailure``, which crewai does not store, is not a put), entries and a
  sampled deep size at scrape. The cache has no capacity and evicts nothing: it grows for the
  life of the crew, which is what ``memexport_cache_items`` shows.
- ``memexport.agent(memory, name)``: a unified ``Memory`` (or a ``MemoryScope``/``MemorySlice``
  view of one). Its records live in its storage (LanceDB by default, on disk), which a scrape
  never queries: memexport counts them where they change, through one wrapper per storage
  *instance*: ``save`` adds ``len(records)``, ``delete`` takes what it returns, ``reset``
  empties (a scoped reset recounts once, on the app's call). The count starts from the
  storage's ``count()`` when first instrumented (one read, then none).
- ``memexport.agent(agent_or_crew, name)``: an ``Agent`` (any ``BaseAgent``) or a ``Crew``: its
  lifecycle, and the records of its memory, resolved as crewai does (the agent's own
  ``memory``, else its crew's), counted as above when that memory was there when instrumented.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Component, Index, Profile, SizeSpec
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape
from memexport.kinds.agent.table import ITEMS as AGENT_ITEMS
from memexport.kinds.agent.table import AgentInfo, AgentOptions
from memexport.kinds.cache.shapes import none_is_miss
from memexport.kinds.cache.table import BYTES, ITEMS, MAX_ITEMS, CacheOptions

__all__ = ["AgentShape", "MemoryShape", "ToolCacheShape", "shapes", "undo"]

_CACHE_MODULE = "crewai.agents.cache.cache_handler"
_FAILURE_MODULE = "crewai.tools.tool_failure"
_AGENT_MODULE = "crewai.agents.agent_builder.base_agent"
_CREW_MODULE = "crewai.crew"
_MEMORY_MODULE = "crewai.memory.unified_memory"
_SCOPE_MODULE = "crewai.memory.memory_scope"
_WRAPPED = "_memexport_wrapped"

Patches = dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]


def _class(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _instance_of(obj: Any, *where: tuple[str, str]) -> bool:
    if isinstance(obj, type):
        return False
    classes = tuple(c for c in (_class(m, n) for m, n in where) if c is not None)
    return bool(classes) and isinstance(obj, classes)


# -- cache: CacheHandler -------------------------------------------------------------------------


def _store(handler: Any) -> dict[Any, Any]:
    store = getattr(handler, "_cache", None)
    return store if isinstance(store, dict) else {}


def _entries(handler: Any) -> Iterator[tuple[Any, Any]]:
    yield from list(_store(handler).items())


def _add_patch(index: Index) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def add(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            comp = get(id(self))
            if comp is not None:
                output = kwargs["output"] if "output" in kwargs else (
                    args[2] if len(args) > 2 else None)
                failure = _class(_FAILURE_MODULE, "ToolFailure")
                if failure is None or not isinstance(output, failure):
                    comp.group.handles.put()
            return result
        return add
    return factory


class ToolCacheShape(Shape):
    """A CrewAI ``CacheHandler``: tool results keyed by tool and input, never evicted."""

    style = "patch"
    label = "a CrewAI CacheHandler"

    def matches(self, obj: Any, opts: CacheOptions) -> bool:
        return not opts.methods_given and _instance_of(obj, (_CACHE_MODULE, "CacheHandler"))

    def profile(self, obj: Any, opts: CacheOptions, kind: Kind) -> Profile:
        readers: dict[Any, Any] = {ITEMS: opts.items or (lambda h: len(_store(h)))}
        if opts.max_items is not None:
            readers[MAX_ITEMS] = opts.max_items
        size = None
        if opts.bytes is not None:
            readers[BYTES] = opts.bytes
        elif opts.sizer in ("auto", "sampled"):
            size = SizeSpec(_entries, lambda h: len(_store(h)),
                            lambda h: shallow_size(_store(h)), True)
        return Profile(kind, readers, size=size)

    def patches(self, cls: type, index: Index, opts: CacheOptions, profile: Profile | None
                ) -> Patches:
        out: Patches = {}
        if callable(getattr(cls, "read", None)):
            out["read"] = none_is_miss(index)
        if callable(getattr(cls, "add", None)):
            out["add"] = _add_patch(index)
        return out


# -- agent: Memory, Agent, Crew ------------------------------------------------------------------


class _Count:
    """The records of one storage instance, kept where they change."""

    __slots__ = ("attrs", "n", "ref")

    def __init__(self, n: int, ref: weakref.ref[Any], attrs: tuple[str, ...]) -> None:
        self.n = n
        self.ref = ref
        self.attrs = attrs


#: id(storage) -> its count; entries leave with their storage (weakref callback).
_COUNTS: dict[int, _Count] = {}
_lock = threading.Lock()


def _backing(memory: Any) -> Any:
    """The ``Memory`` behind ``memory`` (itself, or the one a scope/slice view wraps)."""
    if _instance_of(memory, (_MEMORY_MODULE, "Memory")):
        return memory
    if _instance_of(memory, (_SCOPE_MODULE, "MemoryScope"), (_SCOPE_MODULE, "MemorySlice")):
        inner = getattr(memory, "_memory", None)
        return inner if _instance_of(inner, (_MEMORY_MODULE, "Memory")) else None
    return None


def _memory_of(obj: Any) -> Any:
    """The Memory an agent, a crew or a memory view uses, resolved as crewai does."""
    backing = _backing(obj)
    if backing is not None:
        return backing
    if _instance_of(obj, (_CREW_MODULE, "Crew")):
        return _backing(getattr(obj, "_memory", None))
    own = _backing(getattr(obj, "memory", None))
    if own is not None:
        return own
    crew = getattr(obj, "crew", None)
    return _backing(getattr(crew, "_memory", None)) if crew is not None else None


def _storage(memory: Any) -> Any:
    return getattr(memory, "_storage", None) if memory is not None else None


def _initial(storage: Any) -> int:
    count = getattr(storage, "count", None)
    try:
        return int(count()) if callable(count) else 0
    except Exception:  # an empty store without a table yet, or another backend
        return 0


def _forget(key: int) -> Callable[[Any], None]:
    def forget(_ref: Any) -> None:
        _COUNTS.pop(key, None)
    return forget


def _counted(storage: Any) -> _Count | None:
    """The count of ``storage``, wrapping its ``save``/``delete``/``reset`` the first time."""
    if storage is None:
        return None
    key = id(storage)
    with _lock:
        state = _COUNTS.get(key)
        if state is not None and state.ref() is storage:
            return state
        try:
            ref = weakref.ref(storage, _forget(key))
        except TypeError:  # not weak-referenceable: not counted
            return None
        state = _COUNTS[key] = _Count(_initial(storage), ref, ())
    cls = type(storage)

    def save(*args: Any, **kwargs: Any) -> Any:
        s = ref()
        if s is None:
            raise RuntimeError("memexport: the CrewAI memory storage is gone")
        result = cls.save(s, *args, **kwargs)
        records = kwargs.get("records", args[0] if args else ())
        try:
            state.n += len(records)
        except TypeError:
            pass
        return result

    def delete(*args: Any, **kwargs: Any) -> Any:
        s = ref()
        if s is None:
            raise RuntimeError("memexport: the CrewAI memory storage is gone")
        result = cls.delete(s, *args, **kwargs)
        if isinstance(result, int) and result > 0:
            state.n = max(0, state.n - result)
        return result

    def reset(*args: Any, **kwargs: Any) -> Any:
        s = ref()
        if s is None:
            raise RuntimeError("memexport: the CrewAI memory storage is gone")
        result = cls.reset(s, *args, **kwargs)
        scope = kwargs.get("scope_prefix", args[0] if args else None)
        state.n = 0 if scope is None or not str(scope).strip("/") else _initial(s)
        return result

    attrs = tuple(n for n in ("save", "delete", "reset") if callable(getattr(cls, n, None)))
    fns = {"save": save, "delete": delete, "reset": reset}
    if not getattr(storage, _WRAPPED, False):
        try:
            for name in attrs:
                fn = fns[name]
                fn.__doc__ = getattr(cls, name).__doc__
                setattr(storage, name, fn)
            setattr(storage, _WRAPPED, True)
        except (AttributeError, TypeError):  # a storage with slots: not counted
            with _lock:
                _COUNTS.pop(key, None)
            return None
    state.attrs = attrs
    return state


def _records(obj: Any, comp: Component) -> int | None:
    """Scrape-time reader: the counted records of ``obj``'s memory (None: not counted)."""
    storage = _storage(_memory_of(obj))
    state = _COUNTS.get(id(storage)) if storage is not None else None
    return state.n if state is not None and state.ref() is storage else None


class MemoryShape(Shape):
    """A CrewAI unified ``Memory`` (or a scope/slice view): records counted at its storage."""

    style = "read"
    label = "a CrewAI Memory"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        return not opts.explicit and _backing(obj) is not None

    def profile(self, obj: Any, opts: AgentOptions, kind: Kind) -> Profile:
        return Profile(kind, {}, extra=AgentInfo(), with_comp={AGENT_ITEMS: _records})

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        _counted(_storage(_memory_of(obj)))


class AgentShape(MemoryShape):
    """A CrewAI ``Agent`` or ``Crew``: its lifecycle and the records of the memory it uses."""

    label = "a CrewAI Agent or Crew"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        return not opts.explicit and _instance_of(obj, (_AGENT_MODULE, "BaseAgent"),
                                                  (_CREW_MODULE, "Crew"))


def undo() -> None:
    """Take the storage wrappers back off every storage still alive."""
    with _lock:
        states = list(_COUNTS.values())
        _COUNTS.clear()
    for state in states:
        storage = state.ref()
        if storage is None:
            continue
        for name in (*state.attrs, _WRAPPED):
            try:
                delattr(storage, name)
            except AttributeError:
                pass


_CACHE = (ToolCacheShape(),)
_AGENT = (MemoryShape(), AgentShape())


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return {"cache": _CACHE, "agent": _AGENT}.get(kind, ())
