"""The conversation kind's table: its metrics, hot-path events and validated options."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from memexport.core.checks import cached_options, shown
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY
from memexport.instrument.events import Events, Handles, add, count
from memexport.instrument.readers import reader_from

__all__ = ["ADDED", "BYTES", "DROPPED", "EVENTS", "KIND", "LARGEST", "MESSAGES", "SUMMARIES",
           "SUMMARIZED", "ConversationHandles", "ConversationInfo", "ConversationOptions",
           "options"]

MESSAGES = "memexport_conversation_messages"
LARGEST = "memexport_conversation_largest_messages"
SUMMARIES = "memexport_conversation_summaries"
BYTES = "memexport_conversation_bytes"
ADDED = "memexport_conversation_messages_added_total"
SUMMARIZED = "memexport_conversation_messages_summarized_total"
DROPPED = "memexport_conversation_messages_dropped_total"

KIND = Kind(
    "conversation",
    "conversation",
    (
        MetricDef("memexport_conversations", "gauge",
                  "Live conversation objects (sessions) tracked under this name.",
                  source="live"),
        MetricDef("memexport_conversations_created_total", "counter",
                  "Conversation objects tracked under this name so far.", source="created"),
        MetricDef("memexport_conversations_finalized_total", "counter",
                  "Tracked conversation objects that were garbage-collected.",
                  source="finalized"),
        MetricDef(MESSAGES, "gauge", "Messages held by the live histories of this name, summed."),
        MetricDef(LARGEST, "gauge",
                  "Messages held by the longest single live history of this name.", agg="max"),
        MetricDef(SUMMARIES, "gauge",
                  "Summaries held by the live histories of this name, summed."),
        MetricDef(BYTES, "gauge",
                  "Deep size of the live histories (messages and summaries) of this name, "
                  "sampled on the collector thread.", "bytes"),
        MetricDef(ADDED, "counter", "Messages added to histories of this name."),
        MetricDef(SUMMARIZED, "counter",
                  "Messages that left a history of this name into a summary."),
        MetricDef(DROPPED, "counter",
                  "Messages that left a history of this name without a summary (a deque's "
                  "maxlen pushing the oldest out, a trim)."),
    ),
    bytes_metric=BYTES,
)
REGISTRY.add_kind(KIND)


class ConversationHandles(Handles):
    """A conversation name's hot-path callables (a counter and an adder of the same metric
    add up: ``added()`` for one message, ``added_many(k)`` for k at once)."""

    __slots__ = ()

    added: Callable[[], int]
    added_many: Callable[[float], None]
    dropped: Callable[[], int]
    dropped_many: Callable[[float], None]
    summarized: Callable[[float], None]


EVENTS = Events(KIND, ConversationHandles, added=count(ADDED), added_many=add(ADDED),
                dropped=count(DROPPED), dropped_many=add(DROPPED), summarized=add(SUMMARIZED))


class ConversationInfo:
    """What the hot path needs of one shape of history (a profile's ``extra``).

    ``history(obj)`` is the message container (a bounded deque's ``maxlen`` drops are
    counted); ``adds`` lists ``(method, bulk)``: methods adding one message (or ``len(arg)``
    with ``bulk``); ``summarize`` the methods whose removals from the history are summaries.
    """

    __slots__ = ("adds", "history", "summarize")

    def __init__(self, history: Callable[[Any], Any] | None,
                 adds: Iterable[tuple[str, bool]] = (), summarize: Iterable[str] = ()) -> None:
        self.history = history
        self.adds = tuple(adds)
        self.summarize = tuple(summarize)


def _names(spec: Any, what: str) -> tuple[str, ...] | None:
    if spec is None:
        return None
    out = (spec,) if isinstance(spec, str) else tuple(spec)
    for n in out:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"{what}={shown(spec)}: give method names")
    return out


@dataclass(frozen=True)
class ConversationOptions:
    """The explicit arguments of one ``memexport.conversation`` call, validated."""

    history: Callable[[Any], Any] | None = None
    summaries: Callable[[Any], Any] | None = None
    add: tuple[str, ...] | None = None
    summarize: tuple[str, ...] | None = None

    @property
    def explicit(self) -> bool:
        return any(v is not None for v in (self.history, self.summaries, self.add,
                                           self.summarize))


@cached_options
def options(*, history: Any = None, summaries: Any = None, add: Any = None,
            summarize: Any = None) -> ConversationOptions:
    """Validate ``memexport.conversation``'s keyword arguments (ValueError naming a bad one)."""
    return ConversationOptions(reader_from(history, "history", constants=False),
                               reader_from(summaries, "summaries", constants=False),
                               _names(add, "add"), _names(summarize, "summarize"))
