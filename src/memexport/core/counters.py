"""Event counters for the application's hot path: exact under threads, no lock per event.

``Counter.inc`` is the C-level ``__next__`` of an ``itertools.repeat``: one call, atomic
under the GIL, making no object. ``Adder`` and ``Histogram`` take amounts through a C-level
``append`` (also atomic) and fold them into totals only when read, or every ``FOLD_AT``
values, so the hot path never waits on a lock.
"""

from __future__ import annotations

import itertools
import math
import operator
import sys
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from memexport.core import forks

__all__ = ["DEFAULT_SECONDS_BUCKETS", "FOLD_AT", "FOLD_MASK", "Adder", "Counter", "Histogram",
           "HistogramValue", "NumberedCounter", "validate_buckets"]

#: What a counter counts down from: never reached (2**63 - 1 events).
_TIMES = sys.maxsize

#: Pending amounts kept before the adding thread folds them (bounds memory when unread).
FOLD_AT = 4096
#: ``n & FOLD_MASK == 0`` every ``FOLD_AT`` events: hot paths with an event count at hand
#: (a counter's return value) fold on that instead of measuring the buffer.
FOLD_MASK = FOLD_AT - 1

#: Fixed buckets from 100 microseconds to 5 minutes, for waits and hold times.
DEFAULT_SECONDS_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)


class Counter:
    """A monotonic event count; call ``inc()`` (no argument) once per event.

    ``inc`` is the ``__next__`` of an ``itertools.repeat(None, N)``: it makes no object per
    event (a count's ``__next__`` makes an int, about 9 ns more), and the value is what was
    taken from the ``N``. It returns None; ``NumberedCounter`` returns the count.
    """

    __slots__ = ("_left", "inc")

    def __init__(self) -> None:
        self._left = itertools.repeat(None, _TIMES)
        self.inc: Callable[[], Any] = self._left.__next__

    def value(self) -> int:
        """The number of ``inc()`` calls so far (what is left, read with no side effect)."""
        return _TIMES - operator.length_hint(self._left)


class NumberedCounter:
    """A counter whose ``inc`` returns the count before the event, which hot paths use to
    fold a buffer every ``FOLD_AT`` events (``if not n & FOLD_MASK``)."""

    __slots__ = ("_count", "inc")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.inc: Callable[[], int] = self._count.__next__

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
        # Re-entrant: a GC callback may add while this thread is folding; fresh in a forked
        # child (a scrape there must not wait for a thread that no longer exists).
        self._lock = forks.RLock()

    def add(self, amount: float) -> None:
        pending = self._pending
        pending.append(amount)
        if len(pending) > FOLD_AT:
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
    count: int  # type: ignore[assignment]  # the field, not tuple.count

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
    """Fixed-bucket histogram fed by a C-level ``add`` (``list.append``), bucketed when read.

    ``add`` is for hot paths that fold every ``FOLD_AT`` events themselves (a pool's acquire
    count); ``observe`` checks the buffer's length and folds when it is long. A fold takes
    the first ``k`` pending values with one slice and one ``del`` (appends only go to the
    end, so values added meanwhile stay) and counts each bucket with a bisect in the values
    above the first bound, sorted once (not at all when they all fall in the first bucket).
    """

    __slots__ = ("_bounds", "_buf", "_cum", "_lock", "_total", "_zeros", "_zeros_folded", "add",
                 "zero")

    def __init__(self, bounds: Sequence[float] = DEFAULT_SECONDS_BUCKETS) -> None:
        self._bounds = validate_buckets(bounds)
        self._cum = [0] * (len(self._bounds) + 1)  # cumulative per bound, the last is +Inf
        self._total = 0.0
        self._buf: list[float] = []
        self.add: Callable[[float], None] = self._buf.append
        #: ``zero()`` adds a value of 0 (a pool get that did not wait): a count, no float
        #: made or kept, folded with the rest.
        self._zeros = Counter()
        self._zeros_folded = 0
        self.zero: Callable[[], Any] = self._zeros.inc
        # Re-entrant: a GC callback may observe (and fold) while this thread is folding.
        self._lock = forks.RLock()

    def observe(self, value: float) -> None:
        buf = self._buf
        buf.append(value)
        if len(buf) > FOLD_AT:
            self.try_fold()

    def fold(self) -> None:
        """Move the pending values into the bucket counts and the sum."""
        with self._lock:
            zeros = self._zeros.value()
            z = zeros - self._zeros_folded
            if z:
                self._zeros_folded = zeros
                cum = self._cum
                for i in range(len(cum)):
                    cum[i] += z
            buf = self._buf
            k = len(buf)
            if not k:
                return
            vals = buf[:k]
            del buf[:k]
            cum = self._cum
            bounds = self._bounds
            # Only the values above the first bound are sorted (pool waits and holds are
            # mostly microseconds: a few, or none): sorting all k for one slow value cost a
            # pool about 85 ns per value, and this comprehension is faster than max().
            first = bounds[0]
            above = [v for v in vals if v > first]
            if above:
                above.sort()
                n = len(above)
                at_first = k - n
                cum[0] += at_first
                for i in range(1, len(bounds)):
                    got = bisect_right(above, bounds[i])
                    cum[i] += at_first + got
                    if got == n:  # every later bound holds all k
                        for j in range(i + 1, len(cum)):
                            cum[j] += k
                        break
                else:
                    cum[-1] += k
            else:
                for i in range(len(cum)):
                    cum[i] += k
            self._total += sum(vals)

    def try_fold(self) -> None:
        """Fold unless another thread is at it (a hot path never waits for the lock)."""
        if self._lock.acquire(blocking=False):
            try:
                self.fold()
            finally:
                self._lock.release()

    def count(self) -> int:
        """Values seen so far, folded or not."""
        with self._lock:
            return (self._cum[-1] + len(self._buf)
                    + self._zeros.value() - self._zeros_folded)

    def value(self) -> HistogramValue:
        with self._lock:
            self.fold()
            return HistogramValue(self._bounds, tuple(self._cum), self._total, self._cum[-1])

    @property
    def bounds(self) -> tuple[float, ...]:
        return self._bounds


class CountOf(Counter):
    """A counter that is the number of values a histogram has seen (acquires = waits)."""

    __slots__ = ("_histogram",)

    def __init__(self, histogram: Histogram) -> None:
        super().__init__()
        self._histogram = histogram

    def value(self) -> int:
        return self._histogram.count()
