"""Event counters for the application's hot path: exact under threads, no lock per event.

``Counter.inc`` is the C-level ``__next__`` of an ``itertools.count``: one call, atomic under
the GIL, tens of nanoseconds. ``Adder`` and ``Histogram`` take amounts through a
``deque.append`` (also atomic) and fold them into totals only when read or every
``_FOLD_AT`` events, so the hot path never waits on a lock.
"""

from __future__ import annotations

import itertools
import math
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["DEFAULT_SECONDS_BUCKETS", "Adder", "Counter", "Histogram", "HistogramValue"]

_FOLD_AT = 4096

#: Fixed buckets from 100 microseconds to 5 minutes, for waits and hold times.
DEFAULT_SECONDS_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)


class Counter:
    """A monotonic event count; call ``inc()`` (no argument) once per event."""

    __slots__ = ("_count", "inc")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.inc = self._count.__next__

    def value(self) -> int:
        """The number of ``inc()`` calls so far (read from the count's repr: no side effect)."""
        text = repr(self._count)  # "count(N)"
        return int(text[6:-1])


class Adder:
    """A monotonic sum of non-negative amounts (bytes evicted, seconds spent)."""

    __slots__ = ("_lock", "_pending", "_total")

    def __init__(self) -> None:
        self._pending: deque[float] = deque()
        self._total = 0.0
        # Re-entrant: a GC callback may add while this thread is folding.
        self._lock = threading.RLock()

    def add(self, amount: float) -> None:
        pending = self._pending
        pending.append(amount)
        if len(pending) > _FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._lock:
            pop = self._pending.popleft
            total = 0.0
            try:
                while True:
                    total += pop()
            except IndexError:
                pass
            self._total += total

    def value(self) -> float:
        self._fold()
        return self._total


class HistogramValue(NamedTuple):
    """Cumulative bucket counts (one per bound, then +Inf), sum and count."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    sum: float
    count: int

    def merged(self, other: HistogramValue) -> HistogramValue:
        return HistogramValue(
            self.bounds,
            tuple(a + b for a, b in zip(self.cumulative, other.cumulative, strict=True)),
            self.sum + other.sum,
            self.count + other.count,
        )


def validate_buckets(bounds: Sequence[float]) -> tuple[float, ...]:
    """Check histogram bounds: finite, strictly increasing, at least one."""
    out = tuple(float(b) for b in bounds)
    if not out:
        raise ValueError("histogram buckets must not be empty")
    for b in out:
        if not math.isfinite(b):
            raise ValueError(f"histogram bucket bound {b!r} is not finite (+Inf is implied)")
    for a, b in itertools.pairwise(out):
        if not a < b:
            raise ValueError(f"histogram buckets must increase strictly: {a!r} then {b!r}")
    return out


class Histogram:
    """Fixed-bucket histogram: ``observe(v)`` appends to a deque; values are put into their
    buckets when read, or every ``_FOLD_AT`` observations, under a lock the hot path does
    not otherwise take."""

    __slots__ = ("_bounds", "_counts", "_lock", "_pending", "_sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_SECONDS_BUCKETS) -> None:
        self._bounds = validate_buckets(bounds)
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket, the last one is +Inf
        self._sum = 0.0
        self._pending: deque[float] = deque()
        # Re-entrant: a GC callback may observe (and fold) while this thread is folding.
        self._lock = threading.RLock()

    def observe(self, value: float) -> None:
        pending = self._pending
        pending.append(value)
        if len(pending) > _FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._lock:
            pop = self._pending.popleft
            counts = self._counts
            bounds = self._bounds
            total = 0.0
            try:
                while True:
                    v = pop()
                    # bisect_left: a value equal to a bound belongs to that bucket (le=bound).
                    counts[bisect_left(bounds, v)] += 1
                    total += v
            except IndexError:
                pass
            self._sum += total

    def value(self) -> HistogramValue:
        with self._lock:
            self._fold()
            cumulative = tuple(itertools.accumulate(self._counts))
            return HistogramValue(self._bounds, cumulative, self._sum, cumulative[-1])

    @property
    def bounds(self) -> tuple[float, ...]:
        return self._bounds
