"""Pool cases: acquire+release of a guide-style pool, a queue pool and an asyncio pool.

Each pool is timed three ways in the same run: bare, through ``memexport.pool`` (which
includes folding its raw durations every 4,096 acquires, in the acquiring thread), and with
the prometheus_client instrumentation a user would write inline (``Histogram.observe`` for
the wait and the hold, ``Gauge.inc``/``dec`` for the resources in use). Targets: the guide's
``ResourcePool`` and ``queue.Queue`` at most 1.25x bare (issue 12); derived per operation,
memexport's overhead at most 1/3 of the prometheus_client-inline variant's (issue 4).

A ``queue.Queue`` comes back from ``memexport.pool`` as a tracked queue (a per-name subclass
instance sharing the original's lock, conditions and items: ``get``/``put`` are the queue's own
code plus the bookkeeping, no proxy), so its case times ``get``/``put`` on the returned object;
an ``asyncio`` queue pool keeps a proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

import memexport
from memexport.bench import compat
from memexport.bench.model import Case, Derived, Entry, Result, at_most, ratio_at_most

#: The guide's pool, under the name the demo imports it by (memexport.demo.pools).
GuideStylePool = compat.guide().ResourcePool

POOL = ratio_at_most(1.25)
VS_PROM = at_most(1 / 3, "x")


def _vs_prom(prefix: str, base: str) -> Derived:
    ours, theirs = f"{prefix}, memexport.pool", f"{prefix}, prometheus_client inline"

    def share(r: Mapping[str, Result]) -> float:
        b = r[base].value
        return (r[ours].value - b) / max(r[theirs].value - b, 1e-9)

    return Derived(f"{prefix}, memexport's overhead / prometheus_client inline's",
                   (base, ours, theirs), share, "x", VS_PROM)


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
                         buckets=compat.seconds_buckets()).labels(name)
    use = PromHistogram("bench_pool_use_seconds", "Use.", ["pool"], registry=reg,
                        buckets=compat.seconds_buckets()).labels(name)
    in_use = PromGauge("bench_pool_in_use", "In use.", ["pool"], registry=reg).labels(name)
    return wait.observe, use.observe, in_use.inc, in_use.dec


def _guide_cases() -> list[Entry]:
    reg = compat.new_registry()

    def warm(p: Any) -> Any:
        with p.acquire(timeout=0.001):
            pass
        return p

    resource_pool = compat.guide().ResourcePool
    bare = warm(resource_pool(object, max_size=4))
    ours = warm(memexport.pool(resource_pool(object, max_size=4), name="bench_guide",
                               registry=reg))
    theirs = warm(resource_pool(object, max_size=4))
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
    base = "pool: guide ResourcePool acquire+release"
    return [
        Case(base, run_bare),
        Case("pool: guide ResourcePool, memexport.pool", run_ours, base, POOL),
        Case("pool: guide ResourcePool, prometheus_client inline", run_theirs, base),
        _vs_prom("pool: guide ResourcePool", base),
    ]


def _queue_cases() -> list[Entry]:
    reg = compat.new_registry()

    def filled() -> queue.Queue[Any]:
        q: queue.Queue[Any] = queue.Queue(maxsize=4)
        for _ in range(4):
            q.put(object())
        return q

    bare = filled()
    ours = memexport.pool(filled(), name="bench_queue", registry=reg)  # a tracked queue
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
        Case("pool: queue.Queue, memexport.pool", run_ours, base, POOL),
        Case("pool: queue.Queue, prometheus_client inline", run_theirs, base),
        _vs_prom("pool: queue.Queue", base),
    ]


def _asyncio_cases() -> list[Entry]:
    reg = compat.new_registry()
    loop = asyncio.new_event_loop()

    async def make(instrument: bool) -> Any:
        p: Any = AsyncQueuePool(object, max_size=4)
        if instrument:
            p = memexport.pool(p, name="bench_asyncio", registry=reg)
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
        Case("pool: asyncio pool, memexport.pool", run_ours, base),
        Case("pool: asyncio pool, prometheus_client inline", run_theirs, base),
        _vs_prom("pool: asyncio pool", base),
    ]


def cases(quick: bool) -> list[Entry]:
    return _guide_cases() + _queue_cases() + _asyncio_cases()
