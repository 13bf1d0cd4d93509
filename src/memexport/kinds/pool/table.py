"""The pool kind's table: its metrics, hot-path events, per-pool state and options."""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memexport.core.checks import cached_options, shown
from memexport.core.component import number
from memexport.core.counters import Counter, NumberedCounter
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY
from memexport.instrument.events import Events, Handles, count, timings
from memexport.instrument.readers import reader_from

__all__ = ["ACQUIRES", "CREATED", "DESTROYED", "ERRORS", "EVENTS", "EXHAUSTED",
           "EXHAUSTED_TOTAL", "KIND", "MAX_RESOURCES", "OLDEST", "PENDING", "RESOURCES", "USE",
           "WAIT", "PoolHandles", "PoolOptions", "PoolState", "options"]

RESOURCES = "memexport_pool_resources"
MAX_RESOURCES = "memexport_pool_max_resources"
PENDING = "memexport_pool_pending_acquires"
ACQUIRES = "memexport_pool_acquires_total"
EXHAUSTED_TOTAL = "memexport_pool_exhausted_total"
ERRORS = "memexport_pool_acquire_errors_total"
WAIT = "memexport_pool_acquire_wait_seconds"
USE = "memexport_pool_use_seconds"
CREATED = "memexport_pool_created_total"
DESTROYED = "memexport_pool_destroyed_total"
OLDEST = "memexport_pool_oldest_use_seconds"

KIND = Kind(
    "pool",
    "pool",
    (
        MetricDef(RESOURCES, "gauge",
                  "Resources of the pool by state: idle (ready in the pool) or in_use "
                  "(acquired and not yet released).", labels=("state",),
                  otel_name="db.client.connection.count"),
        MetricDef(MAX_RESOURCES, "gauge",
                  "The most resources the pool holds at once (its configured size); absent "
                  "when unbounded.", otel_name="db.client.connection.max"),
        MetricDef(PENDING, "gauge", "Acquires waiting for a resource right now.",
                  source="group", otel_name="db.client.connection.pending_requests"),
        MetricDef(ACQUIRES, "counter", "Acquires that got a resource."),
        MetricDef(EXHAUSTED_TOTAL, "counter",
                  "Acquires that timed out or were refused because the pool had no resource "
                  "to give.", otel_name="db.client.connection.timeouts"),
        MetricDef(ERRORS, "counter",
                  "Acquires that failed for another reason (the pool's factory or connect "
                  "raised)."),
        MetricDef(WAIT, "histogram",
                  "Time from asking the pool for a resource to getting it.", "seconds",
                  otel_name="db.client.connection.wait_time"),
        MetricDef(USE, "histogram",
                  "Time a resource was held, from acquire to release.", "seconds",
                  otel_name="db.client.connection.use_time"),
        MetricDef(CREATED, "counter",
                  "Resources the pool created (connections opened, clients built, worker "
                  "threads started)."),
        MetricDef(DESTROYED, "counter", "Resources the pool closed or discarded."),
        MetricDef(OLDEST, "gauge",
                  "How long the longest-held resource has been out (0 when none is); a "
                  "leaked resource makes it grow without bound.", "seconds", agg="max"),
    ),
)
REGISTRY.add_kind(KIND)

#: Exceptions of an acquire that mean "the pool had nothing to give" by default (and, once
#: the app uses asyncio, ``asyncio.TimeoutError``/``asyncio.QueueEmpty``: see
#: ``exhausted_defaults``).
EXHAUSTED: tuple[type[BaseException], ...] = (TimeoutError, queue.Empty)


def asyncio_loaded() -> Any:
    """The asyncio module if the app imported it, else None (memexport never imports it:
    without it there is no asyncio pool to read)."""
    return sys.modules.get("asyncio")


def exhausted_defaults(extra: tuple[type[BaseException], ...] = ()
                       ) -> tuple[type[BaseException], ...]:
    """The default exhausted types, asyncio's included once it is loaded, plus ``extra``."""
    aio = asyncio_loaded()
    defaults = EXHAUSTED if aio is None else (*EXHAUSTED, aio.TimeoutError, aio.QueueEmpty)
    return tuple(dict.fromkeys((*defaults, *extra)))


class PoolHandles(Handles):
    """A pool name's hot-path callables; pending acquires are what started minus what
    ended (got a resource, or failed), for every pool of the name."""

    __slots__ = ("_failed", "_started", "failed_inc", "started", "wait_zero")

    exhausted: Callable[[], int]
    errors: Callable[[], int]
    wait: Callable[[float], None]
    use: Callable[[float], None]

    def setup(self) -> None:
        self._started = NumberedCounter()
        self.started: Callable[[], int] = self._started.inc
        self._failed = Counter()
        self.failed_inc: Callable[[], int] = self._failed.inc
        wait = self.group.histogram(WAIT)
        self.wait_zero: Callable[[], Any] = wait.zero  # a wait of 0: counted, no value kept
        self.group.count_of(ACQUIRES, wait)  # every acquire that got a resource waited once
        self.group.gauge(PENDING, self.pending)

    def pending(self) -> float:
        # The ends first, then the starts: never negative.
        done = self.group.histogram(WAIT).count() + self._failed.value()
        return float(max(0, self._started.value() - done))

    def failer(self, exhausted: tuple[type[BaseException], ...],
               is_exhausted: Callable[[BaseException], bool] | None = None
               ) -> Callable[..., None]:
        """``failed(exc, cancelled=False)``: count a failed acquire as exhausted (timed out,
        refused, or in asyncio a cancelled wait) or as an error."""
        failed_inc, exhausted_inc, errors_inc = self.failed_inc, self.exhausted, self.errors

        def failed(exc: BaseException | None, cancelled: bool = False) -> None:
            failed_inc()
            aio = asyncio_loaded() if cancelled else None
            if isinstance(exc, exhausted) or (
                    aio is not None and isinstance(exc, aio.CancelledError)) or (
                    is_exhausted is not None and exc is not None and is_exhausted(exc)):
                exhausted_inc()
            else:
                errors_inc()
        return failed


EVENTS = Events(KIND, PoolHandles, exhausted=count(EXHAUSTED_TOTAL), errors=count(ERRORS),
                wait=timings(WAIT), use=timings(USE))


class PoolState:
    """One pool's own numbers: the resources it has out, and its size as last read.

    ``held``: acquire time -> acquire time for a ``with``, ``id(resource)`` -> acquire time
    for a resource handed out by value. ``last``/``created``/``destroyed`` turn a pool that
    keeps only its current size into created/destroyed totals (``size_delta``).
    """

    __slots__ = ("created", "destroyed", "held", "last", "undo")

    def __init__(self) -> None:
        self.held: dict[float, float] = {}
        self.last: float | None = None
        self.created = 0.0
        self.destroyed = 0.0
        #: For a pool instrumented through its library's events: removes the listeners.
        self.undo: Callable[[], None] | None = None

    def in_use(self) -> int:
        return len(self.held)

    def oldest(self) -> float:
        starts = list(self.held.copy().values())
        return max(0.0, time.perf_counter() - min(starts)) if starts else 0.0

    def size_delta(self, value: Any) -> None:
        """Fold a new reading of the pool's size: rises are creations, falls destructions
        (a create and destroy inside one scrape interval cancel out)."""
        if value is None:
            return
        value = number(value)  # a str, a negative or an infinite size fails: counted
        if self.last is None:  # the resources present at wrap time count as created
            self.created = value
        elif value > self.last:
            self.created += value - self.last
        elif value < self.last:
            self.destroyed += self.last - value
        self.last = value


@dataclass(frozen=True)
class PoolOptions:
    """The explicit arguments of one ``memexport.pool`` call, validated."""

    acquire: str | None = None
    release: str | None = None
    mode: str | None = None
    idle: Callable[[Any], Any] | None = None
    in_use: Callable[[Any], Any] | None = None
    max_size: Callable[[Any], Any] | None = None
    size: Callable[[Any], Any] | None = None
    exhausted: tuple[type[BaseException], ...] = EXHAUSTED

    @property
    def methods_given(self) -> bool:
        return self.acquire is not None or self.release is not None or self.mode is not None


def _exhausted_types(spec: Any) -> tuple[type[BaseException], ...]:
    if spec is None:
        return ()
    items = (spec,) if isinstance(spec, type) else tuple(spec)
    for t in items:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ValueError(f"exhausted={shown(spec)}: pass exception classes, e.g. "
                             f"exhausted=(MyPoolEmpty,)")
    return items


@cached_options
def options(*, acquire: Any = None, release: Any = None, mode: Any = None, idle: Any = None,
            in_use: Any = None, max_size: Any = None, size: Any = None,
            exhausted: Any = None) -> PoolOptions:
    """Validate ``memexport.pool``'s keyword arguments (ValueError naming a bad one)."""
    if mode not in (None, "context", "call"):
        raise ValueError(f"mode={shown(mode)}: use 'context' (with pool.acquire() as r) or "
                         f"'call' (r = pool.acquire(); pool.release(r))")
    for what, attr in (("acquire", acquire), ("release", release)):
        if attr is not None and (not isinstance(attr, str) or not attr.isidentifier()):
            raise ValueError(f"{what}={shown(attr)} is not a method name")
    return PoolOptions(acquire, release, mode, reader_from(idle, "idle"),
                       reader_from(in_use, "in_use"), reader_from(max_size, "max_size"),
                       reader_from(size, "size"),
                       exhausted_defaults(_exhausted_types(exhausted)))
