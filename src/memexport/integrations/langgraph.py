"""LangGraph: the in-memory checkpoint saver as a conversation store, an adapter.

Asked only once ``langgraph`` is imported. An ``InMemorySaver`` (``MemorySaver``) keeps every
checkpoint, pending write and channel blob of every thread for the life of the process;
memexport reads their numbers at scrape time (no hot-path cost: nothing is wrapped) and
samples their deep size on the collector thread. One saver usually serves every session, so
its ``threads`` are the sessions. The three gauges are this adapter's own: they join the
conversation kind when it loads.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import Profile
from memexport.instrument.kind import Shape
from memexport.kinds.conversation.shapes import history_profile
from memexport.kinds.conversation.table import KIND, ConversationInfo, ConversationOptions

__all__ = ["METRICS", "SaverShape", "shapes"]

CHECKPOINTS = "memexport_conversation_checkpoints"
WRITES = "memexport_conversation_checkpoint_writes"
THREADS = "memexport_conversation_threads"

METRICS = (
    MetricDef(CHECKPOINTS, "gauge", "Checkpoints held by LangGraph in-memory savers of this name."),
    MetricDef(WRITES, "gauge", "Pending writes held by LangGraph in-memory savers of this name."),
    MetricDef(THREADS, "gauge",
              "Threads (sessions) held by LangGraph in-memory savers of this name."),
)
KIND.extend(*METRICS)


def _retry(fn: Any, obj: Any) -> int:
    # Another thread may be writing a checkpoint while we count: try again a few times.
    for _ in range(4):
        try:
            return fn(obj)  # type: ignore[no-any-return]
        except RuntimeError:
            continue
    return fn(obj)  # type: ignore[no-any-return]


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


class SaverShape(Shape):
    """A LangGraph ``InMemorySaver``: read at scrape, nothing wrapped."""

    style = "read"
    label = "a LangGraph InMemorySaver"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return not opts.explicit and isinstance(obj, InMemorySaver)

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(
            kind, ConversationInfo(None), sized=_sized, overhead=False,
            gauges={CHECKPOINTS: lambda o: _retry(_checkpoints, o),
                    WRITES: lambda o: _retry(_writes, o), THREADS: _threads})


_SHAPES = (SaverShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "conversation" else ()
