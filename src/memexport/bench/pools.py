"""Pool cases: acquire+release of a guide-style pool, a queue pool and an asyncio pool.

Each pool is timed three ways in the same run: bare, through ``memexport.pool`` (which
includes folding its raw durations every 4,096 acquires, in the acquiring thread), and with
the prometheus_client instrumentation a user would write inline (``Histogram.observe`` for
the wait and the hold, ``Gauge.inc``/``dec`` for the resources in use). Targets (issue 4):
memexport adds at most 10 % to the guide's pool, and at least 3x less than the inline
prometheus_client variant adds.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from queue import Empty, Queue
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from memexport.bench import Case
from memexport.core.counters import DEFAULT_SECONDS_BUCKETS
from memexport.core.registry import Registry
from memexport.kinds.pool import pool

TARGET_GUIDE = "<= 1.10x; overhead <= 1/3 of prometheus_client inline"
TARGET_OTHER = "overhead <= 1/3 of prometheus_client inline"


class GuideStylePool:
    """A user's pool like the guide's ``ResourcePool`` (same acquire/release logic, copied so
    the package does not depend on the guide at run time)."""

    def __init__(self, factory: Callable[[], Any], max_size: int = 10,
                 cleanup_func: Callable[[Any], None] | None = None) -> None:
        self.factory = factory
        self.max_size = max_size
        self.cleanup_func = cleanup_func
        self.pool: Queue[Any] = Queue(maxsize=max_size)
        self.size = 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def acquire(self, timeout: float = 30) -> Iterator[Any]:
        """Acquire a resource from the pool"""
        resource = None
        try:
            try:
                resource = self.pool.get(timeout=timeout)
            except Empty:
                with self.lock:
                    if self.size < self.max_size:
                        resource = self.factory()
                        self.size += 1
                    else:
                        raise TimeoutError("Resource pool exhausted")  # noqa: B904 (as in the guide)
            yield resource
        finally:
            if resource is not None:
                try:
                    self.pool.put_nowait(resource)
                except BaseException:  # the guide's bare ``except:``
                    if self.cleanup_func:
                        self.cleanup_func(resource)
                    with self.lock:
                        self.size -= 1


class AsyncQueuePool:
    """A typical asyncio pool: idle resources in an ``asyncio.Queue``."""

    def __init__(self, factory: Callable[[], Any], max_size: int = 10) -> None:
        self.factory = factory
        self.max_size = max_size
        self.idle: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_size)
        self.size = 0

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float = 30) -> AsyncIterator[Any]:
        if self.idle.empty() and self.size < self.max_size:
            self.size += 1
            resource = self.factory()
        else:
            resource = await asyncio.wait_for(self.idle.get(), timeout)
        try:
            yield resource
        finally:
            self.idle.put_nowait(resource)


def _prom(name: str) -> tuple[Callable[[float], None], Callable[[float], None],
                              Callable[[], None], Callable[[], None]]:
    """prometheus_client handles as a user would pre-bind them: (wait, use, inc, dec)."""
    reg = CollectorRegistry()
    wait = PromHistogram("bench_pool_wait_seconds", "Wait.", ["pool"], registry=reg,
                         buckets=DEFAULT_SECONDS_BUCKETS).labels(name)
    use = PromHistogram("bench_pool_use_seconds", "Use.", ["pool"], registry=reg,
                        buckets=DEFAULT_SECONDS_BUCKETS).labels(name)
    in_use = PromGauge("bench_pool_in_use", "In use.", ["pool"], registry=reg).labels(name)
    return wait.observe, use.observe, in_use.inc, in_use.dec


def _guide_cases() -> list[Case]:
    reg = Registry()

    def warm(p: Any) -> Any:
        with p.acquire(timeout=0.001):
            pass
        return p

    bare = warm(GuideStylePool(object, max_size=4))
    ours = warm(pool(GuideStylePool(object, max_size=4), name="bench_guide", registry=reg))
    theirs = warm(GuideStylePool(object, max_size=4))
    wait, use, inc, dec = _prom("bench_guide")
    clock = time.perf_counter

    def run_bare(n: int) -> None:
        acquire = bare.acquire
        for _ in range(n):
            with acquire(timeout=1):
                pass

    def run_ours(n: int) -> None:
        acquire = ours.acquire
        for _ in range(n):
            with acquire(timeout=1):
                pass

    def run_theirs(n: int) -> None:
        acquire = theirs.acquire
        for _ in range(n):
            t0 = clock()
            with acquire(timeout=1):
                t1 = clock()
                wait(t1 - t0)
                inc()
                dec()
                use(clock() - t1)

    run_ours.keep = (reg, ours)  # type: ignore[attr-defined]
    base = "pool: guide-style ResourcePool acquire+release"
    return [
        Case(base, run_bare),
        Case("pool: guide-style, memexport.pool", run_ours, base, TARGET_GUIDE),
        Case("pool: guide-style, prometheus_client inline", run_theirs, base),
    ]


def _queue_cases() -> list[Case]:
    reg = Registry()

    def filled() -> queue.Queue[Any]:
        q: queue.Queue[Any] = queue.Queue(maxsize=4)
        for _ in range(4):
            q.put(object())
        return q

    bare = filled()
    ours = pool(filled(), name="bench_queue", registry=reg)
    theirs = filled()
    wait, use, inc, dec = _prom("bench_queue")
    clock = time.perf_counter

    def run_bare(n: int) -> None:
        get, put = bare.get, bare.put
        for _ in range(n):
            put(get(True, 1))

    def run_ours(n: int) -> None:
        get, put = ours.get, ours.put
        for _ in range(n):
            put(get(True, 1))

    def run_theirs(n: int) -> None:
        get, put = theirs.get, theirs.put
        for _ in range(n):
            t0 = clock()
            r = get(True, 1)
            t1 = clock()
            wait(t1 - t0)
            inc()
            dec()
            use(clock() - t1)
            put(r)

    run_ours.keep = (reg, ours)  # type: ignore[attr-defined]
    base = "pool: queue.Queue get+put"
    return [
        Case(base, run_bare),
        Case("pool: queue.Queue, memexport.pool", run_ours, base, TARGET_OTHER),
        Case("pool: queue.Queue, prometheus_client inline", run_theirs, base),
    ]


def _asyncio_cases() -> list[Case]:
    reg = Registry()
    loop = asyncio.new_event_loop()

    async def make(instrument: bool) -> Any:
        p: Any = AsyncQueuePool(object, max_size=4)
        if instrument:
            p = pool(p, name="bench_asyncio", registry=reg)
        async with p.acquire(timeout=1):
            pass
        return p

    bare = loop.run_until_complete(make(False))
    ours = loop.run_until_complete(make(True))
    theirs = loop.run_until_complete(make(False))
    wait, use, inc, dec = _prom("bench_asyncio")
    clock = time.perf_counter

    async def cycle_plain(p: Any, n: int) -> None:
        acquire = p.acquire
        for _ in range(n):
            async with acquire(timeout=1):
                pass

    async def cycle_prom(n: int) -> None:
        acquire = theirs.acquire
        for _ in range(n):
            t0 = clock()
            async with acquire(timeout=1):
                t1 = clock()
                wait(t1 - t0)
                inc()
                dec()
                use(clock() - t1)

    def run_bare(n: int) -> None:
        loop.run_until_complete(cycle_plain(bare, n))

    def run_ours(n: int) -> None:
        loop.run_until_complete(cycle_plain(ours, n))

    def run_theirs(n: int) -> None:
        loop.run_until_complete(cycle_prom(n))

    run_ours.keep = (reg, ours, loop)  # type: ignore[attr-defined]
    base = "pool: asyncio pool async acquire+release"
    return [
        Case(base, run_bare),
        Case("pool: asyncio pool, memexport.pool", run_ours, base, TARGET_OTHER),
        Case("pool: asyncio pool, prometheus_client inline", run_theirs, base),
    ]


def cases(quick: bool) -> list[Case]:
    return _guide_cases() + _queue_cases() + _asyncio_cases()
