"""pydantic-ai message histories as conversations, an adapter.

Asked only once ``pydantic_ai`` is imported. A pydantic-ai history is a list of
``ModelMessage``; memexport recognises what holds one:

- a plain list (``result.all_messages()``, kept and passed back as ``message_history=``):
  the conversation kind's own list shape (a tracking list is returned: use it);
- a ``pydantic_ai.conversation.Conversation`` (``result.conversation``): its ``messages``,
  read at scrape, nothing wrapped;
- an ``InMemoryConversationStore``: every message it stores (each once, however many
  conversations and branches share it), read at scrape from its entries; the deep size of
  its entries and records sampled on the collector thread. Other ``ConversationStore``\\ s keep
  their messages in a database that a scrape never queries.
"""

from __future__ import annotations

import sys
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Profile
from memexport.instrument.kind import Shape
from memexport.kinds.conversation.shapes import history_profile
from memexport.kinds.conversation.table import ConversationInfo, ConversationOptions

__all__ = ["ConversationShape", "StoreShape", "shapes"]


def _class(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _messages(conversation: Any) -> Any:
    return conversation.messages


def _entries(store: Any) -> Any:
    return store._entries


def _sized(store: Any) -> list[Any]:
    # Values, not the dicts themselves: the sizer walks each container's items.
    return [list(store._entries.values()), list(store._records.values())]


class ConversationShape(Shape):
    """A pydantic-ai ``Conversation``: its messages, read at scrape."""

    style = "read"
    label = "a pydantic-ai Conversation"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        cls = _class("pydantic_ai.conversation", "Conversation")
        return (not opts.explicit and cls is not None and isinstance(obj, cls)
                and isinstance(getattr(obj, "messages", None), list))

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, ConversationInfo(_messages))


class StoreShape(Shape):
    """A pydantic-ai ``InMemoryConversationStore``: the messages it stores, read at scrape."""

    style = "read"
    label = "a pydantic-ai InMemoryConversationStore"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        cls = _class("pydantic_ai.conversation_store", "InMemoryConversationStore")
        return (not opts.explicit and cls is not None and isinstance(obj, cls)
                and isinstance(getattr(obj, "_entries", None), dict))

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, ConversationInfo(_entries), sized=_sized)


_SHAPES = (ConversationShape(), StoreShape())


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "conversation" else ()
