"""LangGraph's ``InMemoryStore`` (long-term memory) as an agent memory store, an adapter.

LangChain deprecates its chat message histories (``BaseChatMessageHistory`` and
``InMemoryChatMessageHistory``, since langchain-core 1.6.4) in favour of LangGraph
persistence: a checkpointer for short-term memory (``InMemorySaver``: the ``langgraph``
adapter reads it as a conversation) and a store for long-term memory
(``langgraph.store.memory.InMemoryStore``: this adapter). ``memexport.agent(store, name)``
reads the store's items per namespace at scrape (one ``len`` per namespace, no lock: the store
has none) and samples their deep size on the collector thread; nothing is wrapped.
"""

from __future__ import annotations

import sys
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Profile
from memexport.instrument.kind import Shape
from memexport.kinds.agent.shapes import agent_profile
from memexport.kinds.agent.table import AgentInfo, AgentOptions

__all__ = ["StoreShape", "shapes"]


def _store_class() -> type | None:
    mod = sys.modules.get("langgraph.store.memory")
    cls = getattr(mod, "InMemoryStore", None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _namespaces(store: Any) -> list[Any]:
    return list(store._data.values())


class StoreShape(Shape):
    """A LangGraph ``InMemoryStore``: every namespace's items, read at scrape."""

    style = "read"
    label = "a LangGraph InMemoryStore"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        cls = _store_class()
        return (not opts.explicit and cls is not None and isinstance(obj, cls)
                and isinstance(getattr(obj, "_data", None), dict))

    def profile(self, obj: Any, opts: AgentOptions, kind: Kind) -> Profile:
        return agent_profile(kind, AgentInfo(stores=_namespaces), obj)


_SHAPES = (StoreShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "agent" else ()
