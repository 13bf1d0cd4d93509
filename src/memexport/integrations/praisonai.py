"""PraisonAI (``praisonaiagents``): an ``Agent``'s chat history, prompt/tool caches and memory
store, and ``FileMemory`` stores, an adapter of the conversation, cache and agent kinds.

Asked only once ``praisonaiagents`` is imported; the classes are looked up in ``sys.modules``
(PraisonAI loads its modules lazily, memexport never imports one the app did not).

- ``memexport.conversation(agent, name)``: the history is the list inside the agent's
  ``AsyncSafeState`` (read without its lock: one ``len``). Added: ``_append_to_chat_history``
  and ``_add_to_chat_history`` (one message each) and ``_add_to_chat_history_if_not_duplicate``
  (when it returns True), the paths of ``chat``/``achat``/``start``. Summarised: what
  ``_replace_chat_history`` (context compaction) takes out. Dropped: what ``prune_history``,
  ``clear_history``, ``_truncate_chat_history`` and ``delete_history*`` take out.
- ``memexport.cache(agent, name)``: ``_system_prompt_cache`` and ``_formatted_tools_cache``
  (OrderedDicts, LRU, ``_max_cache_size`` each) as one cache: hits and misses of
  ``_cache_get``, puts and capacity evictions of ``_cache_put`` (counted under the agent's own
  cache lock, an ``RLock``, so they are exact), items and a sampled deep size at scrape.
- ``memexport.agent(agent, name)``: the agent's lifecycle, and when its memory is a
  ``FileMemory`` (``memory=True``) the entries of its short-term, long-term, entity and
  summary stores; ``memexport.agent(file_memory, name)`` tracks a ``FileMemory`` alone (its
  cleanup: ``clear_short_term``). Database-backed ``Memory`` stores are not read at scrape.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Index, Profile, SizeSpec
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape
from memexport.kinds.agent.shapes import StoreShape, agent_profile
from memexport.kinds.agent.table import AgentInfo, AgentOptions
from memexport.kinds.cache.shapes import none_is_miss
from memexport.kinds.cache.table import BYTES, ITEMS, MAX_ITEMS, CacheOptions
from memexport.kinds.conversation.shapes import HistoryShape, history_profile
from memexport.kinds.conversation.table import ConversationInfo, ConversationOptions

__all__ = ["AgentCacheShape", "AgentHistoryShape", "AgentStoreShape", "FileMemoryShape",
           "shapes"]

_AGENT_MODULE = "praisonaiagents.agent.agent"
_FILE_MEMORY_MODULE = "praisonaiagents.memory.file_memory"
_STATE = "_Agent__chat_history_state"
#: Methods that take messages out of the history without a summary.
_DROPPERS = ("prune_history", "clear_history", "_truncate_chat_history", "delete_history",
             "delete_history_matching")
_CACHES = ("_system_prompt_cache", "_formatted_tools_cache")
_STORES = ("_short_term", "_long_term", "_entities", "_summaries")

Patches = dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]


def _class(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def is_agent(obj: Any) -> bool:
    cls = _class(_AGENT_MODULE, "Agent")
    return cls is not None and not isinstance(obj, type) and isinstance(obj, cls)


def _is_agent_class(c: type) -> bool:
    cls = _class(_AGENT_MODULE, "Agent")
    return cls is not None and issubclass(c, cls)


def is_file_memory(obj: Any) -> bool:
    cls = _class(_FILE_MEMORY_MODULE, "FileMemory")
    return cls is not None and not isinstance(obj, type) and isinstance(obj, cls)


# -- conversation -------------------------------------------------------------------------------


def _history(agent: Any) -> Any:
    return getattr(agent, _STATE).value


def _length(agent: Any) -> int | None:
    try:
        return len(_history(agent))
    except Exception:  # never hurt the app
        return None


def _dedup_patch(index: Index) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def _add_to_chat_history_if_not_duplicate(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(self))
            added = original(self, *args, **kwargs)
            if comp is not None and added is True:
                comp.group.handles.added()
            return added
        return _add_to_chat_history_if_not_duplicate
    return factory


def _drop_patch(index: Index) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def drop(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(self))
            if comp is None:
                return original(self, *args, **kwargs)
            n0 = _length(self)
            try:
                return original(self, *args, **kwargs)
            finally:
                n1 = _length(self)
                if n0 is not None and n1 is not None and n0 > n1:
                    comp.group.handles.dropped_many(n0 - n1)
        drop.__name__ = getattr(original, "__name__", "drop")
        return drop
    return factory


class AgentHistoryShape(HistoryShape):
    """A PraisonAI ``Agent``'s chat history."""

    label = "a PraisonAI Agent"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return not opts.explicit and is_agent(obj)

    def matches_class(self, cls: type, opts: ConversationOptions) -> bool:
        return not opts.explicit and _is_agent_class(cls)

    def info(self, obj_or_cls: Any, opts: ConversationOptions) -> ConversationInfo:
        return ConversationInfo(_history, [("_append_to_chat_history", False),
                                           ("_add_to_chat_history", False)],
                                ["_replace_chat_history"])

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, self.info(obj, opts))

    def patches(self, cls: type, index: Index, opts: ConversationOptions,
                profile: Profile | None) -> Patches:
        out = super().patches(cls, index, opts, profile)
        if callable(getattr(cls, "_add_to_chat_history_if_not_duplicate", None)):
            out["_add_to_chat_history_if_not_duplicate"] = _dedup_patch(index)
        for name in _DROPPERS:
            if callable(getattr(cls, name, None)):
                out[name] = _drop_patch(index)
        return out


# -- cache --------------------------------------------------------------------------------------


def _caches(agent: Any) -> list[Any]:
    return [c for c in (getattr(agent, a, None) for a in _CACHES) if c is not None]


def _cache_items(agent: Any) -> int:
    return sum(len(c) for c in _caches(agent))


def _cache_max(agent: Any) -> float | None:
    m = getattr(agent, "_max_cache_size", None)
    return float(m) * len(_caches(agent)) if isinstance(m, int) else None


def _cache_entries(agent: Any) -> Any:
    for c in _caches(agent):
        yield from list(c.items())


def _put_patch(index: Index) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def _cache_put(self: Any, cache_dict: Any, key: Any, value: Any) -> Any:
            comp = get(id(self))
            if comp is None:
                return original(self, cache_dict, key, value)
            lock = getattr(self, "_cache_lock", None)  # an RLock: the original takes it too
            if lock is None:
                return original(self, cache_dict, key, value)
            with lock:
                n0 = len(cache_dict) + (key not in cache_dict)
                result = original(self, cache_dict, key, value)
                lost = n0 - len(cache_dict)
            h = comp.group.handles
            h.put()
            if lost > 0:
                h.evicted(h.capacity, lost)
            return result
        return _cache_put
    return factory


class AgentCacheShape(Shape):
    """A PraisonAI ``Agent``'s system-prompt and formatted-tools caches, as one cache."""

    style = "patch"
    label = "a PraisonAI Agent"

    def matches(self, obj: Any, opts: CacheOptions) -> bool:
        return not opts.methods_given and is_agent(obj)

    def profile(self, obj: Any, opts: CacheOptions, kind: Kind) -> Profile:
        readers: dict[Any, Any] = {ITEMS: opts.items or _cache_items,
                                   MAX_ITEMS: opts.max_items or _cache_max}
        size = None
        if opts.bytes is not None:
            readers[BYTES] = opts.bytes
        elif opts.sizer in ("auto", "sampled"):
            size = SizeSpec(_cache_entries, _cache_items,
                            lambda a: sum(shallow_size(c) for c in _caches(a)), True)
        return Profile(kind, readers, size=size)

    def patches(self, cls: type, index: Index, opts: CacheOptions, profile: Profile | None
                ) -> Patches:
        out: Patches = {}
        if callable(getattr(cls, "_cache_get", None)):
            out["_cache_get"] = none_is_miss(index)
        if callable(getattr(cls, "_cache_put", None)):
            out["_cache_put"] = _put_patch(index)
        return out


# -- agent and memory stores ---------------------------------------------------------------------


def _file_stores(memory: Any) -> list[Any]:
    return [s for s in (getattr(memory, a, None) for a in _STORES) if s is not None]


def _agent_stores(agent: Any) -> list[Any]:
    memory = getattr(agent, "_memory_instance", None)
    return _file_stores(memory) if is_file_memory(memory) else []


class AgentStoreShape(StoreShape):
    """A PraisonAI ``Agent``: its lifecycle, and its ``FileMemory`` stores when it has one."""

    label = "a PraisonAI Agent"
    by_type = False  # its variant reads the instance: with or without a FileMemory

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        return not opts.explicit and is_agent(obj)

    def variant(self, obj: Any, opts: AgentOptions) -> Any:
        return (type(obj), is_file_memory(getattr(obj, "_memory_instance", None)))

    def agent_info(self, obj_or_cls: Any, opts: AgentOptions) -> AgentInfo:
        if isinstance(obj_or_cls, type) or not is_file_memory(
                getattr(obj_or_cls, "_memory_instance", None)):
            return AgentInfo()
        return AgentInfo(stores=_agent_stores)

    def profile(self, obj: Any, opts: AgentOptions, kind: Kind) -> Profile:
        return agent_profile(kind, self.agent_info(obj, opts), obj)


class FileMemoryShape(StoreShape):
    """A PraisonAI ``FileMemory``: short-term, long-term, entities and summaries in memory."""

    label = "a PraisonAI FileMemory"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        return not opts.explicit and is_file_memory(obj)

    def agent_info(self, obj_or_cls: Any, opts: AgentOptions) -> AgentInfo:
        cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
        cleanup = "clear_short_term" if inspect.isfunction(
            getattr(cls, "clear_short_term", None)) else None
        return AgentInfo(stores=_file_stores, cleanup=cleanup)


_CONVERSATION = (AgentHistoryShape(),)
_CACHE = (AgentCacheShape(),)
_AGENT = (AgentStoreShape(), FileMemoryShape())


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return {"conversation": _CONVERSATION, "cache": _CACHE, "agent": _AGENT}.get(kind, ())
