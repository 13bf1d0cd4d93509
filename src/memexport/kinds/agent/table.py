"""The agent kind's table: its metrics, hot-path events and validated options."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memexport.core.checks import cached_options, shown
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY
from memexport.instrument.events import Events, Handles, add, count
from memexport.instrument.readers import container_len, reader_from

__all__ = ["BYTES", "CLEANUPS", "EVENTS", "EVICTED", "ITEMS", "KIND", "LAST_CLEANUP", "LIMIT",
           "OVER", "WEAK", "AgentHandles", "AgentInfo", "AgentOptions", "as_unix_seconds",
           "options"]

ITEMS = "memexport_agent_memory_items"
BYTES = "memexport_agent_memory_bytes"
LIMIT = "memexport_agent_memory_limit_bytes"
OVER = "memexport_agents_over_memory_limit"
WEAK = "memexport_agent_weak_refs"
CLEANUPS = "memexport_agent_cleanups_total"
EVICTED = "memexport_agent_cleanup_evicted_total"
LAST_CLEANUP = "memexport_agent_last_cleanup_timestamp_seconds"

KIND = Kind(
    "agent",
    "agent",
    (
        MetricDef("memexport_agents", "gauge", "Live agents tracked under this name.",
                  source="live"),
        MetricDef("memexport_agents_created_total", "counter",
                  "Agents tracked under this name so far.", source="created"),
        MetricDef("memexport_agents_finalized_total", "counter",
                  "Tracked agents that were garbage-collected; created minus finalized rising "
                  "steadily is a leak.", source="finalized"),
        MetricDef(ITEMS, "gauge", "Entries in the memory stores of the live agents of this name."),
        MetricDef(BYTES, "gauge",
                  "Deep size of the memory stores of the live agents of this name, sampled on "
                  "the collector thread.", "bytes"),
        MetricDef(LIMIT, "gauge",
                  "The agents' own memory limits (the guide's memory_limit_mb), summed over "
                  "the live agents of this name that have one.", "bytes"),
        MetricDef(OVER, "gauge",
                  "Live agents of this name whose memory store is bigger than their own limit."),
        MetricDef(WEAK, "gauge",
                  "Weak references the live agents of this name still hold (their _weak_refs)."),
        MetricDef(CLEANUPS, "counter", "Runs of the agents' own memory cleanup method."),
        MetricDef(EVICTED, "counter",
                  "Memory-store entries removed by the agents' own cleanups."),
        MetricDef(LAST_CLEANUP, "gauge",
                  "Unix time of the latest cleanup of any live agent of this name.", "seconds",
                  agg="max"),
    ),
    bytes_metric=BYTES,
)
REGISTRY.add_kind(KIND)


class AgentHandles(Handles):
    """An agent name's hot-path callables (its cleanups' runs and what they removed)."""

    __slots__ = ()

    cleanups: Callable[[], int]
    evicted: Callable[[float], None]


EVENTS = Events(KIND, AgentHandles, cleanups=count(CLEANUPS), evicted=add(EVICTED))


class AgentInfo:
    """How to read one type of agent (a profile's ``extra``).

    ``stores(obj)`` returns the memory containers (``len`` = items, deep size = bytes),
    ``limit(obj)`` the agent's own limit in bytes, ``weak_refs(obj)`` the live weak
    references, ``last_cleanup(obj)`` unix seconds; ``cleanup`` names the method whose runs
    (and the entries they remove) are counted.
    """

    __slots__ = ("cleanup", "last_cleanup", "limit", "stores", "weak_refs")

    def __init__(self, *, stores: Callable[[Any], list[Any]] | None = None,
                 limit: Callable[[Any], float | None] | None = None,
                 weak_refs: Callable[[Any], int | None] | None = None,
                 last_cleanup: Callable[[Any], float | None] | None = None,
                 cleanup: str | None = None) -> None:
        self.stores = stores
        self.limit = limit
        self.weak_refs = weak_refs
        self.last_cleanup = last_cleanup
        self.cleanup = cleanup

    def items(self, obj: Any) -> int | None:
        if self.stores is None:
            return None
        return sum(container_len(c) for c in self.stores(obj))


def as_unix_seconds(value: Any) -> float | None:
    """A datetime (naive = local time, as ``datetime.now()``) or a number as unix seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


@dataclass(frozen=True)
class AgentOptions:
    """The explicit arguments of one ``memexport.agent`` call, validated."""

    memory: Any = None  # an attribute name or a callable
    limit_bytes: Callable[[Any], Any] | None = None
    weak_refs: Any = None
    cleanup: str | None = None
    last_cleanup: Callable[[Any], Any] | None = None

    @property
    def explicit(self) -> bool:
        return any(v is not None for v in (self.memory, self.limit_bytes, self.weak_refs,
                                           self.cleanup, self.last_cleanup))


@cached_options
def options(*, memory: Any = None, limit_bytes: Any = None, weak_refs: Any = None,
            cleanup: Any = None, last_cleanup: Any = None) -> AgentOptions:
    """Validate ``memexport.agent``'s keyword arguments (ValueError naming a bad one)."""
    if memory is not None and not (callable(memory) or (isinstance(memory, str)
                                                        and memory.isidentifier())):
        raise ValueError(f"memory must be an attribute name or a callable, got {shown(memory)}")
    limit = None
    if limit_bytes is not None:
        if isinstance(limit_bytes, int | float) and not isinstance(limit_bytes, bool):
            if not math.isfinite(limit_bytes) or limit_bytes <= 0:
                raise ValueError(f"limit_bytes must be a positive finite number, got "
                                 f"{shown(limit_bytes)}")
        limit = reader_from(limit_bytes, "limit_bytes")
    if weak_refs is not None and not (callable(weak_refs) or isinstance(weak_refs, str)):
        raise ValueError(f"weak_refs must be an attribute name or a callable, got "
                         f"{shown(weak_refs)}")
    if cleanup is not None and (not isinstance(cleanup, str) or not cleanup.isidentifier()):
        raise ValueError(f"cleanup={shown(cleanup)} is not a method name")
    return AgentOptions(memory, limit, weak_refs, cleanup,
                        reader_from(last_cleanup, "last_cleanup", constants=False))
