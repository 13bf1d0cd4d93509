"""Core cases: memexport's event counter against a bare ``+= 1`` and the counters a user
would call instead (prometheus_client, OpenTelemetry). Scrapes are in ``scrape``, collector
ticks in ``process``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from memexport.bench.model import Case, Entry, Skipped
from memexport.core.counters import Counter

__all__ = ["cases"]

BARE = "counter: bare int += 1"


class _Holder:
    __slots__ = ("__weakref__", "items", "n")

    def __init__(self) -> None:
        self.items = [1, 2, 3]
        self.n = 0


def cases(quick: bool) -> list[Entry]:
    holder = _Holder()

    def bare_int(n: int) -> None:
        h = holder
        for _ in range(n):
            h.n += 1

    inc = Counter().inc

    def memexport_counter(n: int) -> None:
        for _ in range(n):
            inc()

    prom = PromCounter("bench_events", "Events.", ["cache"], registry=CollectorRegistry())

    def prometheus_labels_inc(n: int) -> None:
        for _ in range(n):
            prom.labels("llm_responses").inc()

    out: list[Entry] = [
        Case(BARE, bare_int),
        Case("counter: memexport Counter.inc()", memexport_counter, BARE),
        Case("counter: prometheus_client Counter.labels(...).inc()", prometheus_labels_inc,
             BARE),
    ]
    otel_name = "counter: OpenTelemetry Counter.add()"
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        return [*out, Skipped(otel_name, "needs opentelemetry-sdk (not installed)")]
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    otel = meter.create_counter("bench.events")
    attrs = {"cache": "llm_responses"}

    def otel_add(n: int) -> None:
        for _ in range(n):
            otel.add(1, attrs)

    return [*out, Case(otel_name, otel_add, BARE)]
