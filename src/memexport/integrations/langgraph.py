"""LangGraph: the in-memory checkpoint saver as a conversation store.

Imported by ``memexport.conversation`` only once ``langgraph`` is imported. An
``InMemorySaver`` (``MemorySaver``) keeps every checkpoint, pending write and channel blob of
every thread for the life of the process; memexport reads their numbers at scrape time
(no hot-path cost: nothing is wrapped) and samples their deep size on the collector thread.
One saver usually serves every session, so its ``threads`` are the sessions.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from memexport.kinds.conversation import ConversationProfile

__all__ = ["conversation_profile"]


def _retry(fn: Any, obj: Any) -> int:
    # Another thread may be writing a checkpoint while we count: try again a few times.
    for _ in range(4):
        try:
            return fn(obj)
        except RuntimeError:
            continue
    return fn(obj)


def _checkpoints(obj: Any) -> int:
    return sum(len(ns) for per_thread in list(obj.storage.values())
               for ns in list(per_thread.values()))


def _writes(obj: Any) -> int:
    return sum(len(w) for w in list(obj.writes.values()))


def _threads(obj: Any) -> int:
    return len(obj.storage)


def _sized(obj: Any) -> list[Any]:
    # Three entries, each walked whole: the checkpoints, the writes, the channel blobs.
    return [[obj.storage, obj.writes, obj.blobs]]


def conversation_profile(obj: Any) -> ConversationProfile | None:
    """The profile of a LangGraph ``InMemorySaver``, else None."""
    if not isinstance(obj, InMemorySaver):
        return None
    return ConversationProfile(
        gauges={
            "memexport_conversation_checkpoints": lambda o: _retry(_checkpoints, o),
            "memexport_conversation_checkpoint_writes": lambda o: _retry(_writes, o),
            "memexport_conversation_threads": _threads,
        },
        sized=_sized, sized_overhead=False, source=f"langgraph {type(obj).__qualname__}")
