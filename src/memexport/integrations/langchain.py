"""LangChain (langchain-core): chat message histories as conversations, an adapter.

Asked only once ``langchain_core`` is imported. Any ``BaseChatMessageHistory`` is counted
where messages are added (``add_message``, or ``add_messages`` when a subclass implements
only the bulk method). The number of messages is read only where it is held in memory
(``InMemoryChatMessageHistory`` and other histories keeping a ``messages`` list as data):
other histories' ``messages`` property may query a database, which a scrape must never do.

An ``InMemoryChatMessageHistory`` whose adds only append (its own ``add_message``) is tracked
through its list (``kinds.conversation.held``): a pydantic model cannot move into a subclass,
and a class patch would cost every untracked history's add. Other histories get the class's
add method replaced once.
"""

from __future__ import annotations

from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory

from memexport.core.model import Kind
from memexport.core.registry import Profile
from memexport.instrument import patching
from memexport.instrument.kind import Shape
from memexport.kinds.conversation.held import HeldListShape, plain_list
from memexport.kinds.conversation.shapes import HistoryShape, history_profile
from memexport.kinds.conversation.table import ConversationInfo, ConversationOptions

try:
    from langchain_core.chat_history import InMemoryChatMessageHistory as _InMemory
except ImportError:  # pragma: no cover - deprecated in 1.6.4, removed in 2.0
    _InMemory = None  # type: ignore[assignment,misc]

__all__ = ["LangChainHeldShape", "LangChainHistoryShape", "shapes"]


def _messages(obj: Any) -> Any:
    return obj.__dict__.get("messages")


def _held(obj: Any) -> bool:
    return isinstance(getattr(obj, "__dict__", {}).get("messages"), list)


class LangChainHistoryShape(HistoryShape):
    """A LangChain chat message history."""

    label = "a LangChain chat message history"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return not opts.explicit and isinstance(obj, BaseChatMessageHistory)

    def matches_class(self, cls: type, opts: ConversationOptions) -> bool:
        return not opts.explicit and issubclass(cls, BaseChatMessageHistory)

    def info(self, obj_or_cls: Any, opts: ConversationOptions) -> ConversationInfo:
        cls: Any = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
        if cls.add_message is not BaseChatMessageHistory.add_message:
            adds = [("add_message", False)]
        elif cls.add_messages is not BaseChatMessageHistory.add_messages:
            adds = [("add_messages", True)]
        else:
            adds = []
        return ConversationInfo(_messages, adds)

    def variant(self, obj: Any, opts: ConversationOptions) -> Any:
        return (type(obj), _held(obj))

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, self.info(obj, opts), readable=_held(obj))


class LangChainHeldShape(HeldListShape):
    """An ``InMemoryChatMessageHistory`` whose adds only append to its ``messages`` list."""

    label = "a LangChain in-memory chat message history"
    attr = "messages"
    resets = ("clear",)

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        base: Any = _InMemory
        if opts.explicit or base is None or not isinstance(obj, base):
            return False
        cls = type(obj)
        original = patching.patched_method
        # An add method replaced for another history would count each add a second time.
        return (cls.add_message is original(base, "add_message")
                and original(cls, "clear") is original(base, "clear")
                and plain_list(obj.__dict__.get("messages")))

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, ConversationInfo(_messages), readable=True)


_SHAPES = (LangChainHeldShape(), LangChainHistoryShape())


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "conversation" else ()
