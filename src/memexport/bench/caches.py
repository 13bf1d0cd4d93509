"""Cache cases: each hot path instrumented, against the same cache uninstrumented.

Every operation is timed four ways where it applies: the cache alone (the baseline),
through ``memexport.cache``, and counted inline by the caller with prometheus_client's
``Counter.labels(...).inc()`` and OpenTelemetry's ``Counter.add`` (what memexport replaces).
The issue's targets: ``lru_cache`` 1.00x (pull only), cachetools hit and dict get at most
+60 ns over the baseline, and every case at least 5x less overhead than the
prometheus_client-inline variant.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from memexport.bench import Case
from memexport.core.registry import Registry
from memexport.kinds.cache import cache

VALUE = {"role": "assistant", "content": "x" * 200}
MAXSIZE = 1000
PLUS_60 = "<= +60 ns"
VS_PROM = ">= 5x less overhead than prometheus_client inline"


class ToolResultCache:
    """A get/put cache written the way the guide's ``MemoryBoundedLRUCache`` is."""

    def __init__(self, max_items: int = MAXSIZE) -> None:
        self.max_items = max_items
        self.cache: OrderedDict[Any, Any] = OrderedDict()
        self.memory_usage = 0

    def get(self, key: Any) -> Any:
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        size = sys.getsizeof(value)
        while len(self.cache) >= self.max_items:
            _k, old = self.cache.popitem(last=False)
            self.memory_usage -= sys.getsizeof(old)
        self.cache[key] = value
        self.memory_usage += size


class _Inline:
    """Counting done by the caller: prometheus_client and OpenTelemetry, as users write it."""

    def __init__(self) -> None:
        prom = PromCounter("bench_cache_requests", "Requests.", ["cache", "result"],
                           registry=CollectorRegistry())
        self.prom = prom
        self.otel: Any = None
        self.attrs_hit = {"cache": "llm_responses", "result": "hit"}
        self.attrs_miss = {"cache": "llm_responses", "result": "miss"}
        try:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        except ImportError:
            return
        meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
        self.otel = meter.create_counter("bench.cache.requests")


def _variants(prefix: str, make: Callable[[], Any], loop: Callable[..., Callable[[int], None]],
              inline: _Inline, reg: Registry, target: str) -> list[Case]:
    """The four variants of one operation: baseline, memexport, prom inline, OTel inline.

    ``loop(obj, count)`` returns ``op(n)``; ``count`` is called once per operation with the
    result (``"hit"`` or ``"miss"``) or is None (no inline counting).
    """
    base = f"{prefix}, uninstrumented"
    prom = inline.prom
    hit_child, miss_child = prom.labels("llm_responses", "hit"), prom.labels("llm_responses",
                                                                             "miss")
    del hit_child, miss_child  # children exist; the inline variant still calls labels()

    def prom_count(result: str) -> None:
        prom.labels("llm_responses", result).inc()

    cases = [
        Case(base, loop(make(), None)),
        Case(f"{prefix}, memexport", loop(_instrument(make(), prefix, reg), None), base, target),
        Case(f"{prefix}, prometheus_client inline", loop(make(), prom_count), base),
    ]
    if inline.otel is not None:
        otel = inline.otel
        attrs = {"hit": inline.attrs_hit, "miss": inline.attrs_miss}

        def otel_count(result: str) -> None:
            otel.add(1, attrs[result])

        cases.append(Case(f"{prefix}, OpenTelemetry inline", loop(make(), otel_count), base))
    return cases


def _instrument(obj: Any, prefix: str, reg: Registry) -> Any:
    name = "bench_" + "".join(ch if ch.isalnum() else "_" for ch in prefix)[:100]
    return cache(obj, name=name, registry=reg)


def _getitem_hit(c: Any, count: Callable[[str], None] | None) -> Callable[[int], None]:
    c["k"] = VALUE
    if count is None:
        def op(n: int) -> None:
            for _ in range(n):
                c["k"]
    else:
        def op(n: int) -> None:
            for _ in range(n):
                c["k"]
                count("hit")
    return op


def _get_hit(c: Any, count: Callable[[str], None] | None) -> Callable[[int], None]:
    c["k"] = VALUE
    get = c.get
    if count is None:
        def op(n: int) -> None:
            for _ in range(n):
                get("k")
    else:
        def op(n: int) -> None:
            for _ in range(n):
                if get("k") is None:
                    count("miss")
                else:
                    count("hit")
    return op


def _set(c: Any, count: Callable[[str], None] | None) -> Callable[[int], None]:
    if count is None:
        def op(n: int) -> None:
            for _ in range(n):
                c["k"] = VALUE
    else:
        def op(n: int) -> None:
            for _ in range(n):
                c["k"] = VALUE
                count("hit")  # one counter call per put, as a caller counting puts would
    return op


_keys = itertools.count()


def _miss_insert(c: Any, count: Callable[[str], None] | None) -> Callable[[int], None]:
    """A lookup that misses, then the insert that evicts the oldest entry (steady state)."""
    nxt = _keys.__next__
    for _ in range(MAXSIZE):
        c[nxt()] = VALUE
    get = c.get
    if count is None:
        def op(n: int) -> None:
            for _ in range(n):
                k = nxt()
                if get(k) is None:
                    c[k] = VALUE
    else:
        def op(n: int) -> None:
            for _ in range(n):
                k = nxt()
                if get(k) is None:
                    count("miss")
                    c[k] = VALUE
    return op


def _guide_get_put(c: Any, count: Callable[[str], None] | None) -> Callable[[int], None]:
    """The guide's pattern: get, and on a miss compute and put (half the gets hit)."""
    nxt = _keys.__next__
    for _ in range(MAXSIZE):
        c.put(nxt(), VALUE)
    get, put = c.get, c.put
    if count is None:
        def op(n: int) -> None:
            for i in range(n):
                k = nxt() if i & 1 else "hot"
                if get(k) is None:
                    put(k, VALUE)
    else:
        def op(n: int) -> None:
            for i in range(n):
                k = nxt() if i & 1 else "hot"
                if get(k) is None:
                    count("miss")
                    put(k, VALUE)
                else:
                    count("hit")
    return op


def _lru_cases(inline: _Inline, reg: Registry) -> list[Case]:
    def make() -> Callable[[int], int]:
        @functools.lru_cache(maxsize=MAXSIZE)
        def square(x: int) -> int:
            return x * x
        return square

    def loop(f: Callable[[int], int], count: Callable[[str], None] | None
             ) -> Callable[[int], None]:
        if count is None:
            def op(n: int) -> None:
                for _ in range(n):
                    f(7)
        else:
            def op(n: int) -> None:
                for _ in range(n):
                    f(7)
                    count("hit")
        return op

    return _variants("cache: lru_cache call (hit)", make, loop, inline, reg,
                     "1.00x (pull only)")


def cases(quick: bool) -> list[Case]:
    reg = Registry()
    inline = _Inline()
    out: list[Case] = []
    try:
        import cachetools
    except ImportError:  # optional: the other cases still run
        have_cachetools = False
    else:
        have_cachetools = True
    if have_cachetools:
        out += _variants("cache: cachetools LRUCache hit c[k]",
                         lambda: cachetools.LRUCache(maxsize=MAXSIZE), _getitem_hit, inline,
                         reg, f"{PLUS_60}; {VS_PROM}")
        out += _variants("cache: cachetools LRUCache miss+insert (evicts)",
                         lambda: cachetools.LRUCache(maxsize=MAXSIZE), _miss_insert, inline,
                         reg, VS_PROM)
    out += _variants("cache: dict get d[k]", dict, _getitem_hit, inline, reg,
                     f"{PLUS_60}; {VS_PROM}")
    out += _variants("cache: dict get d.get(k)", dict, _get_hit, inline, reg,
                     f"{PLUS_60}; {VS_PROM}")
    out += _variants("cache: dict set d[k] = v", dict, _set, inline, reg, VS_PROM)
    out += _variants("cache: guide-style class get/put", ToolResultCache, _guide_get_put,
                     inline, reg, VS_PROM)
    out += _lru_cases(inline, reg)
    return out
