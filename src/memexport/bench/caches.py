"""Cache cases: each hot path instrumented, against the same cache uninstrumented.

Every operation is timed four ways where it applies: the cache alone (the baseline),
through ``memexport.cache``, and counted inline by the caller with prometheus_client's
``Counter.labels(...).inc()`` and OpenTelemetry's ``Counter.add`` (what memexport replaces).
Targets: cache hits (cachetools ``c[k]``, dict ``d[k]`` and ``d.get(k)``) at most +60 ns over
the bare cache (issue 12); ``lru_cache`` about 1.00x, taken as at most 1.05x (pull only);
and, derived per operation, memexport's overhead at most 1/5 of the prometheus_client-inline
variant's (issue 4).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

import memexport
from memexport.bench import compat
from memexport.bench.model import (
    Case,
    Derived,
    Entry,
    Result,
    Skipped,
    Target,
    at_most,
    delta_at_most,
    ratio_at_most,
)

VALUE = {"role": "assistant", "content": "x" * 200}
MAXSIZE = 1000
HIT = delta_at_most(60)
VS_PROM = at_most(0.2, "x")


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


def _vs_prom(base: str, ours: str, prom: str) -> Callable[[Mapping[str, Result]], float]:
    def share(r: Mapping[str, Result]) -> float:
        b = r[base].value
        return (r[ours].value - b) / max(r[prom].value - b, 1e-9)
    return share


def _variants(prefix: str, make: Callable[[], Any], loop: Callable[..., Callable[[int], None]],
              inline: _Inline, reg: Any, target: Target | None) -> list[Entry]:
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

    ours, theirs = f"{prefix}, memexport", f"{prefix}, prometheus_client inline"
    cases: list[Entry] = [
        Case(base, loop(make(), None)),
        Case(ours, loop(_instrument(make(), prefix, reg), None), base, target),
        Case(theirs, loop(make(), prom_count), base),
        Derived(f"{prefix}, memexport's overhead / prometheus_client inline's",
                (base, ours, theirs), _vs_prom(base, ours, theirs), "x", VS_PROM),
    ]
    if inline.otel is not None:
        otel = inline.otel
        attrs = {"hit": inline.attrs_hit, "miss": inline.attrs_miss}

        def otel_count(result: str) -> None:
            otel.add(1, attrs[result])

        cases.append(Case(f"{prefix}, OpenTelemetry inline", loop(make(), otel_count), base))
    else:
        cases.append(Skipped(f"{prefix}, OpenTelemetry inline",
                             "needs opentelemetry-sdk (not installed)"))
    return cases


def _instrument(obj: Any, prefix: str, reg: Any) -> Any:
    name = "bench_" + "".join(ch if ch.isalnum() else "_" for ch in prefix)[:100]
    return memexport.cache(obj, name=name, registry=reg)


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


def _lru_cases(inline: _Inline, reg: Any) -> list[Entry]:
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
                     ratio_at_most(1.05))


def cases(quick: bool) -> list[Entry]:
    reg = compat.new_registry()
    inline = _Inline()
    out: list[Entry] = []
    try:
        import cachetools
    except ImportError:  # optional: the other cases still run
        out += [Skipped(f"cache: cachetools LRUCache {what}", "needs cachetools (not installed)")
                for what in ("hit c[k]", "miss+insert (evicts)")]
    else:
        out += _variants("cache: cachetools LRUCache hit c[k]",
                         lambda: cachetools.LRUCache(maxsize=MAXSIZE), _getitem_hit, inline,
                         reg, HIT)
        out += _variants("cache: cachetools LRUCache miss+insert (evicts)",
                         lambda: cachetools.LRUCache(maxsize=MAXSIZE), _miss_insert, inline,
                         reg, None)
    out += _variants("cache: dict get d[k]", dict, _getitem_hit, inline, reg, HIT)
    out += _variants("cache: dict get d.get(k)", dict, _get_hit, inline, reg, HIT)
    out += _variants("cache: dict set d[k] = v", dict, _set, inline, reg, None)
    guide = compat.guide().MemoryBoundedLRUCache
    out += _variants("cache: guide MemoryBoundedLRUCache get/put", lambda: guide(
        max_items=MAXSIZE), _guide_get_put, inline, reg, None)
    out += _lru_cases(inline, reg)
    return out
