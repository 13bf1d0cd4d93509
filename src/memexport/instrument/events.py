"""A kind's hot-path events, declared once and bound per name as C-level callables.

A kind lists its events (``Events(KIND, hit=count(REQUESTS, "hit"), ...)``); ``bind(group)``
gives the group's ``Handles``: one slotted object per name whose attributes are the bound
``Counter.inc`` / ``Adder.add`` / ``Histogram.add`` of the group's series, made once, so a
hit costs one C call and nothing is created on the hot path while a scrape reads the group.
Every series of an event exists from the start (0), so ``rate()`` sees the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple

from memexport.core import forks
from memexport.core.counters import Adder, Counter, Histogram
from memexport.core.model import Kind
from memexport.core.registry import Group, kind_key

__all__ = ["Event", "Events", "Handles", "add", "count", "timings"]


class Event(NamedTuple):
    """One event: the series it feeds, and how (a count, an amount, a duration)."""

    metric: str
    labels: tuple[str, ...]
    how: Literal["count", "add", "timings"]


def count(metric: str, *labels: str) -> Event:
    """An event counted once per call: ``handles.<event>()`` is ``Counter.inc``."""
    return Event(metric, labels, "count")


def add(metric: str, *labels: str) -> Event:
    """An amount added per call (bytes, seconds): ``handles.<event>(x)`` is ``Adder.add``."""
    return Event(metric, labels, "add")


def timings(metric: str, *labels: str) -> Event:
    """A value for a histogram: ``handles.<event>(x)`` is a bare ``list.append``; the hot
    path folds every ``FOLD_AT`` events (``handles.fold()``) so memory stays bounded."""
    return Event(metric, labels, "timings")


class Handles:
    """The hot-path callables of one name: one attribute per event, plus the group.

    Kinds subclass it to add what they derive from the events (a pool's pending acquires);
    ``setup()`` runs once after the events are bound. ``classes`` caches the per-name proxy
    and tracked classes the kind builds for this name.
    """

    __slots__ = ("_histograms", "classes", "group")

    events: ClassVar[dict[str, Event]] = {}

    def __init__(self, group: Group) -> None:
        self.group = group
        self.classes: dict[Any, type | None] = {}
        self._histograms: list[Histogram] = []
        for attr, ev in self.events.items():
            target: Counter | Adder | Histogram
            if ev.how == "count":
                target = group.counter(ev.metric, *ev.labels)
                setattr(self, attr, target.inc)
            elif ev.how == "add":
                target = group.adder(ev.metric, *ev.labels)
                setattr(self, attr, target.add)
            else:
                target = group.histogram(ev.metric, *ev.labels)
                self._histograms.append(target)
                setattr(self, attr, target.add)
        self.setup()

    def setup(self) -> None:
        """Hook for subclasses, called once the events are bound."""

    def fold(self) -> None:
        """Fold the pending durations of this name's histograms (never waits for a lock)."""
        for h in self._histograms:
            h.try_fold()

    def sized(self, mean_entry_bytes: float) -> None:
        """Hook: a member of this name was just sized (``mean_entry_bytes`` per entry)."""


class Events:
    """The events of a kind; ``bind(group)`` returns the group's handles (made once)."""

    def __init__(self, kind: Kind, base: type[Handles] = Handles, **events: Event) -> None:
        for attr, ev in events.items():
            types = ("histogram",) if ev.how == "timings" else ("counter",)
            kind_key(kind, ev.metric, ev.labels, types)  # ValueError if not the kind's
            if not attr.isidentifier() or attr.startswith("_"):
                raise ValueError(f"event name {attr!r} must be a public identifier")
        self.kind = kind
        self.events = dict(events)
        ns: dict[str, Any] = {"__slots__": tuple(events), "events": self.events}
        self.handles_class: type[Handles] = type(f"{kind.name.title()}Handles", (base,), ns)
        self._lock = forks.RLock()  # re-entrant (signal handlers), fresh after fork

    def bind(self, group: Group) -> Any:
        """The handles of ``group`` (bound on first use; every caller gets the same)."""
        h = group.handles
        if h is None:
            with self._lock:
                h = group.handles
                if h is None:
                    h = group.handles = self.handles_class(group)
        return h


Inc = Callable[[], int]
AddAmount = Callable[[float], None]
