"""Cleanup jobs: runs, failures by exception type, duration, bytes freed, last success.

``memexport.cleanup(name=...)`` decorates or wraps a cleanup callback, such as those the guide
registers with ``AutomaticMemoryManager.register_cleanup``. The callback runs exactly as
before: its result is returned and its exception re-raised unchanged; memexport only counts.
The exception's type name (never its message) is a label, capped at ``MAX_EXCEPTION_TYPES``
distinct names per cleanup (later ones are counted as ``other``).

Freed bytes are measured two ways:

- ``memexport_cleanup_freed_bytes_total``: process RSS before minus after (psutil, about
  20 us a run), when it went down. CPython keeps freed small objects in its own arenas, so
  RSS often does not drop even when a cleanup freed plenty: read it with the next one.
- ``memexport_cleanup_freed_tracked_bytes_total`` (``tracked=True``): the deep size of every
  conversation and agent memory store memexport tracks in the registry, re-sampled before
  and after the run. This costs a deep-size walk of those objects (sampled, as on the
  collector thread) twice per run, so it is off by default.

``period=`` (seconds) exports how often the cleanup is meant to run, so the
``MemexportCleanupStale`` alert can fire when it has not succeeded for twice as long.
"""

from __future__ import annotations

import functools
import inspect
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from memexport.core import forks
from memexport.core.checks import positive_number, shown
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY, Profile, Registry, resolve_profile
from memexport.core.sizing import refresh
from memexport.instrument.events import Events, Handles, add, count
from memexport.instrument.kind import NOT_GIVEN, KindSpec, Shape

__all__ = ["KIND", "MAX_EXCEPTION_TYPES", "SPEC", "Cleanup", "cleanup", "tracked_bytes"]

#: Distinct exception type names per cleanup name; later ones are counted as ``other``.
MAX_EXCEPTION_TYPES = 20
OTHER = "other"

#: Buckets from 1 ms to 10 minutes: cleanups range from a dict trim to a full gc.collect().
CLEANUP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                   600.0)

RUNS = "memexport_cleanup_runs_total"
FAILURES = "memexport_cleanup_failures_total"
DURATION = "memexport_cleanup_duration_seconds"
FREED = "memexport_cleanup_freed_bytes_total"
FREED_TRACKED = "memexport_cleanup_freed_tracked_bytes_total"
LAST_SUCCESS = "memexport_cleanup_last_success_timestamp_seconds"
PERIOD = "memexport_cleanup_period_seconds"

KIND = Kind(
    "cleanup",
    "cleanup",
    (
        MetricDef(RUNS, "counter", "Runs of this cleanup, failed ones included."),
        MetricDef(FAILURES, "counter",
                  "Runs of this cleanup that raised, by exception type name.",
                  labels=("exception",)),
        MetricDef(DURATION, "histogram",
                  "How long runs of this cleanup took.", "seconds", buckets=CLEANUP_BUCKETS),
        MetricDef(FREED, "counter",
                  "Process RSS returned to the OS across runs of this cleanup (before minus "
                  "after, when positive).", "bytes"),
        MetricDef(FREED_TRACKED, "counter",
                  "Deep size of tracked conversations and agent memory stores freed across "
                  "runs of this cleanup (tracked=True).", "bytes"),
        MetricDef(LAST_SUCCESS, "gauge",
                  "Unix time this cleanup last returned without raising.", "seconds",
                  agg="max"),
        MetricDef(PERIOD, "gauge",
                  "How often this cleanup is meant to run (its period= argument).", "seconds",
                  agg="max"),
    ),
)
REGISTRY.add_kind(KIND)


class CleanupHandles(Handles):
    """A cleanup name's counters; failures by exception type name, capped per name (the
    ``other`` series exists from the start, so the first failure shows in ``increase()``)."""

    __slots__ = ("_failures", "_lock", "duration")

    runs: Callable[[], int]
    freed: Callable[[float], None]
    freed_tracked: Callable[[float], None]

    def setup(self) -> None:
        self.duration = self.group.histogram(DURATION).observe
        self._failures: dict[str, Callable[[], int]] = {
            OTHER: self.group.counter(FAILURES, OTHER).inc}
        self._lock = forks.RLock()

    def failure(self, type_name: str) -> None:
        inc = self._failures.get(type_name)
        if inc is None:
            with self._lock:
                inc = self._failures.get(type_name)
                if inc is None:
                    if len(self._failures) > MAX_EXCEPTION_TYPES:
                        inc = self._failures[OTHER]  # not remembered: the map stays capped
                    else:
                        inc = self._failures[type_name] = self.group.counter(
                            FAILURES, type_name).inc
        inc()


EVENTS = Events(KIND, CleanupHandles, runs=count(RUNS), freed=add(FREED),
                freed_tracked=add(FREED_TRACKED))


def tracked_bytes(registry: Registry, kinds: tuple[str, ...] = ("conversation", "agent")
                  ) -> float:
    """Deep size of every conversation and agent memory store tracked in ``registry``,
    sampled now (the samples also refresh the gauges)."""
    total = 0.0
    for group in registry.groups():
        if group.kind.name not in kinds:
            continue
        for comp in list(group.members.values()):
            obj = comp()
            if obj is not None and comp.profile.resolve is not None:
                resolve_profile(comp, obj, registry.errors)
            if obj is None or comp.profile.size is None:
                continue
            value = refresh(comp, obj)
            if value is not None:
                total += value
    return total


_process: Any = None


def _rss() -> int | None:
    """Current RSS in bytes, None where it cannot be read (psutil, about 20 us)."""
    global _process
    try:
        if _process is None:
            import psutil

            _process = psutil.Process()
        return int(_process.memory_info().rss)
    except Exception:
        return None


class Cleanup:
    """A cleanup callback wrapped to count its runs; call it as the callback itself."""

    def __init__(self, fn: Callable[..., Any], handles: CleanupHandles, *,
                 period: float | None = None, tracked: bool = False,
                 registry: Registry = REGISTRY) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._tracked = bool(tracked)
        self._registry = registry
        self._h = handles
        self.period = period
        self.last_success: float | None = None

    # -- calling -------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._is_async:
            return self._call_async(*args, **kwargs)
        before = self._before()
        start = time.perf_counter()
        try:
            result = self._fn(*args, **kwargs)
        except BaseException as exc:
            self._after(before, start, exc)
            raise
        self._after(before, start, None)
        return result

    async def _call_async(self, *args: Any, **kwargs: Any) -> Any:
        before = self._before()
        start = time.perf_counter()
        try:
            result = await self._fn(*args, **kwargs)
        except BaseException as exc:
            self._after(before, start, exc)
            raise
        self._after(before, start, None)
        return result

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """Decorating a method: bind like a function would."""
        if instance is None:
            return self
        return types.MethodType(self, instance)

    # -- measuring (never raises into the caller) ----------------------------------------------

    def _record(self, what: str, exc: BaseException) -> None:
        self._registry.errors.record(KIND.name, f"cleanup {self._h.group.name!r} {what}", exc)

    def _before(self) -> tuple[int | None, float | None]:
        tracked = None
        if self._tracked:
            try:
                tracked = tracked_bytes(self._registry)
            except Exception as exc:
                self._record("tracked bytes", exc)
        try:
            rss = _rss()
        except Exception:
            rss = None
        return rss, tracked

    def _after(self, before: tuple[int | None, float | None], start: float,
               exc: BaseException | None) -> None:
        h = self._h
        try:
            h.duration(time.perf_counter() - start)
            h.runs()
            if exc is not None:
                h.failure(type(exc).__name__)
            else:
                self.last_success = time.time()
            rss0, tracked0 = before
            rss1 = _rss()
            if rss0 is not None and rss1 is not None and rss0 > rss1:
                h.freed(rss0 - rss1)
            if tracked0 is not None:
                tracked1 = tracked_bytes(self._registry)
                if tracked0 > tracked1:
                    h.freed_tracked(tracked0 - tracked1)
        except Exception as err:  # never hurt the app
            self._record("measuring", err)


def _last_success(c: Cleanup) -> float | None:
    return c.last_success


def _period(c: Cleanup) -> float | None:
    return c.period


class CleanupShape(Shape):
    """A ``Cleanup`` wrapper: its numbers are its own (read), its events its handles'."""

    style = "read"
    label = "a cleanup callable"

    def matches(self, obj: Any, opts: Any) -> bool:
        return isinstance(obj, Cleanup)

    def profile(self, obj: Any, opts: Any, kind: Kind) -> Profile:
        return Profile(kind, {LAST_SUCCESS: _last_success, PERIOD: _period})


@dataclass(frozen=True)
class CleanupOptions:
    period: float | None = None
    tracked: bool = False


SPEC = KindSpec(KIND, EVENTS, (CleanupShape(),), what="cleanup",
                hint="pass a function or method (memexport.cleanup wraps callables)")

F = TypeVar("F", bound=Callable[..., Any])


def _options(period: Any, tracked: Any) -> CleanupOptions:
    if period is not None:
        period = positive_number(period, "cleanup period")
    if not isinstance(tracked, bool):
        raise ValueError(f"tracked must be True or False, got {shown(tracked)}")
    return CleanupOptions(period, tracked)


def _wrap(fn: Any, name: str, registry: Registry, opts: CleanupOptions) -> Cleanup:
    if not callable(fn):
        raise ValueError(f"cleanup needs a callable, got {shown(fn)}")
    SPEC.check_call(name, registry)
    c = Cleanup(fn, SPEC.handles(registry, name), period=opts.period, tracked=opts.tracked,
                registry=registry)
    SPEC.instrument(c, name, registry, opts)
    return c


@overload
def cleanup(fn: F, name: str, *, period: float | None = ..., tracked: bool = ...,
            registry: Registry = ...) -> F: ...


@overload
def cleanup(*, name: str, period: float | None = ..., tracked: bool = ...,
            registry: Registry = ...) -> Callable[[F], F]: ...


def cleanup(fn: Any = NOT_GIVEN, name: Any = None, *, period: Any = None, tracked: Any = False,
            registry: Registry = REGISTRY) -> Any:
    """Count the runs of a cleanup callback under ``name``: decorator or wrapper.

    ``@memexport.cleanup(name="trim_histories", period=1800)`` on a function (or method), or
    ``manager.register_cleanup(memexport.cleanup(agent.periodic_cleanup, "agents"))``.
    The returned callable runs ``fn`` unchanged (coroutine functions stay awaitable) and
    keeps the count as long as it lives: keep it where the callback was kept.
    """
    opts = _options(period, tracked)
    if fn is NOT_GIVEN:
        SPEC.check_call(name, registry)
        return lambda f: _wrap(f, name, registry, opts)
    return _wrap(fn, name, registry, opts)
