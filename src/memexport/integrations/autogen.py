"""AutoGen (autogen-core): chat completion contexts as conversations, ``ListMemory`` as an
agent memory store.

Imported by ``memexport.conversation``/``memexport.agent`` only once ``autogen_core`` is
imported. Every ``ChatCompletionContext`` keeps all its messages in ``_messages``;
``BufferedChatCompletionContext`` and the other windowed variants only *show* a window
through ``get_messages()``, so ``memexport_conversation_messages`` (read from ``_messages``)
keeps growing where the window does not: that growth is what memexport makes visible.
"""

from __future__ import annotations

from typing import Any

from autogen_core.memory import ListMemory
from autogen_core.model_context import ChatCompletionContext

from memexport.kinds.conversation import ConversationProfile

__all__ = ["agent_profile", "conversation_profile"]


def _messages(obj: Any) -> Any:
    return obj._messages


def _contents(obj: Any) -> list[Any]:
    return [obj._contents]


def conversation_profile(obj: Any) -> ConversationProfile | None:
    """The profile of an AutoGen chat completion context, else None."""
    if not isinstance(obj, ChatCompletionContext):
        return None
    return ConversationProfile(history=_messages, adds=[("add_message", False)],
                               source=f"autogen {type(obj).__qualname__}")


def agent_profile(obj: Any) -> Any:
    """The profile of an AutoGen ``ListMemory`` (its ``clear()`` counts as a cleanup)."""
    if not isinstance(obj, ListMemory):
        return None
    from memexport.kinds.agent import AgentProfile

    return AgentProfile(stores=_contents, cleanup="clear",
                        source=f"autogen {type(obj).__qualname__}")
