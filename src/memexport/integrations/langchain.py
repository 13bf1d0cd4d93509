"""LangChain (langchain-core): chat message histories as conversations.

Imported by ``memexport.conversation`` only once ``langchain_core`` is imported. Any
``BaseChatMessageHistory`` is counted where messages are added (``add_message``, or
``add_messages`` when a subclass implements only the bulk method). The number of messages is
read only where it is held in memory (``InMemoryChatMessageHistory`` and other histories
keeping a ``messages`` list as data): other histories' ``messages`` property may query a
database, which a scrape must never do.
"""

from __future__ import annotations

from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory

from memexport.kinds.conversation import ConversationProfile

__all__ = ["conversation_profile"]


def _messages(obj: Any) -> Any:
    return obj.__dict__.get("messages")


def conversation_profile(obj: Any) -> ConversationProfile | None:
    """The profile of a LangChain chat message history, else None."""
    if not isinstance(obj, BaseChatMessageHistory):
        return None
    cls = type(obj)
    if cls.add_message is not BaseChatMessageHistory.add_message:
        adds = [("add_message", False)]
    elif cls.add_messages is not BaseChatMessageHistory.add_messages:
        adds = [("add_messages", True)]
    else:
        adds = []
    held = isinstance(getattr(obj, "__dict__", {}).get("messages"), list)
    return ConversationProfile(history=_messages if held else None, adds=adds,
                               source=f"langchain {cls.__qualname__}")
