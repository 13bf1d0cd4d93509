"""AutoGen (autogen-core): chat completion contexts as conversations, ``ListMemory`` as an
agent memory store, an adapter.

Asked only once ``autogen_core`` is imported. Every ``ChatCompletionContext`` keeps all its
messages in ``_messages``; ``BufferedChatCompletionContext`` and the other windowed variants
only *show* a window through ``get_messages()``, so ``memexport_conversation_messages``
(read from ``_messages``) keeps growing where the window does not: that growth is what
memexport makes visible.
"""

from __future__ import annotations

from typing import Any

from autogen_core.memory import ListMemory
from autogen_core.model_context import ChatCompletionContext

from memexport.core.model import Kind
from memexport.core.registry import Profile
from memexport.instrument.kind import Shape
from memexport.kinds.agent.shapes import StoreShape
from memexport.kinds.agent.table import AgentInfo, AgentOptions
from memexport.kinds.conversation.shapes import HistoryShape, history_profile
from memexport.kinds.conversation.table import ConversationInfo, ConversationOptions

__all__ = ["ContextShape", "ListMemoryShape", "shapes"]


def _messages(obj: Any) -> Any:
    return obj._messages


def _contents(obj: Any) -> list[Any]:
    return [obj._contents]


class ContextShape(HistoryShape):
    """An AutoGen chat completion context (its ``add_message`` is a coroutine)."""

    label = "an AutoGen ChatCompletionContext"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return not opts.explicit and isinstance(obj, ChatCompletionContext)

    def matches_class(self, cls: type, opts: ConversationOptions) -> bool:
        return not opts.explicit and issubclass(cls, ChatCompletionContext)

    def info(self, obj_or_cls: Any, opts: ConversationOptions) -> ConversationInfo:
        return ConversationInfo(_messages, [("add_message", False)])

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, self.info(obj, opts))


class ListMemoryShape(StoreShape):
    """An AutoGen ``ListMemory``: its contents are the store, ``clear()`` its cleanup."""

    label = "an AutoGen ListMemory"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        return not opts.explicit and isinstance(obj, ListMemory)

    def matches_class(self, cls: type, opts: AgentOptions) -> bool:
        return not opts.explicit and issubclass(cls, ListMemory)

    def agent_info(self, obj_or_cls: Any, opts: AgentOptions) -> AgentInfo:
        return AgentInfo(stores=_contents, cleanup="clear")


_CONVERSATION = (ContextShape(),)
_AGENT = (ListMemoryShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _CONVERSATION if kind == "conversation" else _AGENT if kind == "agent" else ()
