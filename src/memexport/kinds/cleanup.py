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
import math
import os
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY, Registry, validate_name

__all__ = ["KIND", "MAX_EXCEPTION_TYPES", "Cleanup", "cleanup"]

#: Distinct exception type names per cleanup; later ones are counted as ``other``.
MAX_EXCEPTION_TYPES = 20
OTHER = "other"

#: Buckets from 1 ms to 10 minutes: cleanups range from a dict trim to a full gc.collect().
CLEANUP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                   600.0)

KIND = Kind(
    "cleanup",
    "cleanup",
    (
        MetricDef("memexport_cleanup_runs_total", "counter",
                  "Runs of this cleanup, failed ones included."),
        MetricDef("memexport_cleanup_failures_total", "counter",
                  "Runs of this cleanup that raised, by exception type name.",
                  labels=("exception",)),
        MetricDef("memexport_cleanup_duration_seconds", "histogram",
                  "How long runs of this cleanup took.", "seconds", buckets=CLEANUP_BUCKETS),
        MetricDef("memexport_cleanup_freed_bytes_total", "counter",
                  "Process RSS returned to the OS across runs of this cleanup (before minus "
                  "after, when positive).", "bytes"),
        MetricDef("memexport_cleanup_freed_tracked_bytes_total", "counter",
                  "Deep size of tracked conversations and agent memory stores freed across "
                  "runs of this cleanup (tracked=True).", "bytes"),
        MetricDef("memexport_cleanup_last_success_timestamp_seconds", "gauge",
                  "Unix time this cleanup last returned without raising.", "seconds",
                  agg="max"),
        MetricDef("memexport_cleanup_period_seconds", "gauge",
                  "How often this cleanup is meant to run (its period= argument).", "seconds",
                  agg="max"),
    ),
)

_process: Any = None
_process_lock = threading.Lock()


def _rss() -> int | None:
    """Current RSS in bytes, None where psutil cannot tell."""
    global _process
    try:
        if _process is None:
            with _process_lock:
                if _process is None:
                    import psutil

                    _process = psutil.Process(os.getpid())
        return int(_process.memory_info().rss)
    except Exception:
        return None


def tracked_bytes(registry: Registry) -> float:
    """Deep size of every conversation and agent memory store tracked in ``registry``, sampled
    now (the samples also refresh the gauges)."""
    from memexport.kinds.agent import tracked_bytes as agents
    from memexport.kinds.conversation import tracked_bytes as conversations

    return conversations(registry) + agents(registry)


class Cleanup:
    """A cleanup callback wrapped to count its runs; call it as the callback itself."""

    def __init__(self, fn: Callable[..., Any], name: str, *, period: float | None = None,
                 tracked: bool = False, registry: Registry = REGISTRY) -> None:
        if not callable(fn):
            raise ValueError(f"cleanup needs a callable, got {fn!r}")
        if period is not None and (isinstance(period, bool) or not isinstance(period, int | float)
                                   or not math.isfinite(period) or period <= 0):
            raise ValueError(f"cleanup period must be a positive number of seconds, got "
                             f"{period!r}")
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._tracked = bool(tracked)
        self._registry = registry
        self._seen: set[str] = set()
        self._failures: dict[str, Callable[[], object]] = {}
        self._lock = threading.Lock()
        self.last_success: float | None = None
        comp = registry.register(self, KIND, name)
        self._comp = comp
        self._runs = comp.counter("memexport_cleanup_runs_total").inc
        self._duration = comp.histogram("memexport_cleanup_duration_seconds").observe
        self._freed = comp.adder("memexport_cleanup_freed_bytes_total").add
        if self._tracked:
            self._freed_tracked = comp.adder("memexport_cleanup_freed_tracked_bytes_total").add
        comp.gauge("memexport_cleanup_last_success_timestamp_seconds", _last_success)
        if period is not None:
            value = float(period)
            comp.gauge("memexport_cleanup_period_seconds", lambda _c: value)

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

    def _before(self) -> tuple[int | None, float | None]:
        tracked = None
        if self._tracked:
            try:
                tracked = tracked_bytes(self._registry)
            except Exception as exc:
                self._registry.errors.record(KIND.name, f"cleanup {self._comp.group.name!r} "
                                             f"tracked bytes", exc)
        return _rss(), tracked

    def _after(self, before: tuple[int | None, float | None], start: float,
               exc: BaseException | None) -> None:
        try:
            self._duration(time.perf_counter() - start)
            self._runs()
            if exc is not None:
                self._failure(type(exc).__name__)
            else:
                self.last_success = time.time()
            rss0, tracked0 = before
            rss1 = _rss()
            if rss0 is not None and rss1 is not None and rss0 > rss1:
                self._freed(rss0 - rss1)
            if tracked0 is not None:
                tracked1 = tracked_bytes(self._registry)
                if tracked0 > tracked1:
                    self._freed_tracked(tracked0 - tracked1)
        except Exception as err:  # never hurt the app
            self._registry.errors.record(KIND.name, f"cleanup {self._comp.group.name!r}", err)

    def _failure(self, type_name: str) -> None:
        inc = self._failures.get(type_name)
        if inc is None:
            with self._lock:
                inc = self._failures.get(type_name)
                if inc is None:
                    label = type_name
                    if type_name not in self._seen:
                        if len(self._seen) >= MAX_EXCEPTION_TYPES:
                            label = OTHER
                        else:
                            self._seen.add(type_name)
                    inc = self._comp.counter("memexport_cleanup_failures_total", label).inc
                    self._failures[type_name] = inc
        inc()


def _last_success(c: Cleanup) -> float | None:
    return c.last_success


def cleanup(fn: Callable[..., Any] | None = None, *, name: str, period: float | None = None,
            tracked: bool = False, registry: Registry = REGISTRY) -> Any:
    """Count the runs of a cleanup callback under ``name``: decorator or wrapper.

    ``@memexport.cleanup(name="trim_histories", period=1800)`` on a function (or method), or
    ``manager.register_cleanup(memexport.cleanup(agent.periodic_cleanup, name="agents"))``.
    The returned callable runs ``fn`` unchanged (coroutine functions stay awaitable) and
    keeps the count as long as it lives: keep it where the callback was kept.
    """
    validate_name("cleanup", name)
    if fn is None:
        return lambda f: Cleanup(f, name, period=period, tracked=tracked, registry=registry)
    return Cleanup(fn, name, period=period, tracked=tracked, registry=registry)
