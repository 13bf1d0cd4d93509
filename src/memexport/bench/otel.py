"""OpenTelemetry cases: one collection of 1,000 caches against one Prometheus scrape of the
same registry, and the cost per cache hit with the OpenTelemetry export on and off.

The hit cases time the same kind of cache (a dict, instrumented) in a registry exported to
OpenTelemetry and in one that is not: events never reach OpenTelemetry, so the two must
cost the same (target: at most 1.2x, the noise of such small figures here).
"""

from __future__ import annotations

from typing import Any

import memexport
from memexport.bench import compat
from memexport.bench.model import Case, Entry, Skipped, ratio_at_most

__all__ = ["cases"]

N_CACHES = 1000
VALUE = {"role": "assistant", "content": "x" * 200}


def _caches(reg: Any, prefix: str, n: int) -> list[Any]:
    out = []
    for i in range(n):
        c = memexport.cache({f"k{j}": VALUE for j in range(10)}, name=f"{prefix}{i}",
                            registry=reg)
        c["k1"]  # a hit, so the counters have values
        out.append(c)
    return out


def cases(quick: bool) -> list[Entry]:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:  # the otel extra is not installed
        return [Skipped("otel: every case", "needs opentelemetry-sdk (not installed)")]

    reg = compat.new_registry()
    caches = _caches(reg, "bench_otel", N_CACHES)
    prom = compat.prometheus_registry(reg)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    memexport.use_opentelemetry(provider, registry=reg, standard=False, collector=False)
    reader.get_metrics_data()  # instruments settled

    def scrape(n: int) -> None:
        for _ in range(n):
            compat.exposition(prom)

    def collect(n: int) -> None:
        for _ in range(n):
            reader.get_metrics_data()

    off = _caches(compat.new_registry(), "bench_off", 1)[0]
    on = caches[0]

    def hits(c: Any) -> Any:
        def op(n: int) -> None:
            for _ in range(n):
                c["k1"]
        return op

    scrape_name = f"otel: Prometheus scrape, {N_CACHES} caches"
    off_name = "otel: cache hit, OpenTelemetry export off"
    cases.keep = (caches, provider, off)  # type: ignore[attr-defined]
    return [
        Case(scrape_name, scrape),
        Case(f"otel: one OpenTelemetry collection, {N_CACHES} caches", collect, scrape_name),
        Case(off_name, hits(off)),
        Case("otel: cache hit, OpenTelemetry export on", hits(on), off_name,
             ratio_at_most(1.2)),
    ]
