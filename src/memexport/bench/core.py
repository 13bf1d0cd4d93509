"""Core cases: the event counter, one collector tick, a full scrape of 1,000 components."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge

from memexport.bench import Case
from memexport.core.counters import Counter
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import Registry
from memexport.exporters.prometheus import register_collector

N_COMPONENTS = 1000

BENCH_KIND = Kind(
    "benchthing",
    "benchthing",
    (
        MetricDef("bench_thing_items", "gauge", "Items."),
        MetricDef("bench_thing_bytes", "gauge", "Bytes.", "bytes"),
        MetricDef("bench_thing_requests_total", "counter", "Requests.",
                  labels=("result",)),
    ),
)


class _Holder:
    __slots__ = ("__weakref__", "items", "n")

    def __init__(self) -> None:
        self.items = [1, 2, 3]
        self.n = 0


def _counter_cases() -> list[Case]:
    holder = _Holder()

    def bare_int(n: int) -> None:
        h = holder
        for _ in range(n):
            h.n += 1

    inc = Counter().inc

    def memexport_counter(n: int) -> None:
        for _ in range(n):
            inc()

    prom_registry = CollectorRegistry()
    prom = PromCounter("bench_events", "Events.", ["cache"], registry=prom_registry)

    def prometheus_labels_inc(n: int) -> None:
        for _ in range(n):
            prom.labels("llm_responses").inc()

    cases = [
        Case("counter: bare int += 1", bare_int),
        Case("counter: memexport Counter.inc()", memexport_counter, "counter: bare int += 1"),
        Case("counter: prometheus_client Counter.labels(...).inc()", prometheus_labels_inc,
             "counter: bare int += 1"),
    ]
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        return cases
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    otel = meter.create_counter("bench.events")
    attrs = {"cache": "llm_responses"}

    def otel_add(n: int) -> None:
        for _ in range(n):
            otel.add(1, attrs)

    cases.append(Case("counter: OpenTelemetry Counter.add()", otel_add,
                      "counter: bare int += 1"))
    return cases


def _tick_case() -> list[Case]:
    from memexport.process.collector import ProcessCollector

    collector = ProcessCollector(Registry())

    def tick(n: int) -> None:
        for _ in range(n):
            collector.tick()

    return [Case("collector: one tick, default probes (CPU)", tick, target="< 1 ms CPU",
                 clock=time.thread_time_ns)]


REQUESTS = "bench_thing_requests_total"


def populated() -> tuple[Registry, list[_Holder]]:
    """A registry of ``N_COMPONENTS`` components (the holders keep them alive)."""
    reg = Registry()
    holders = [_Holder() for _ in range(N_COMPONENTS)]
    for i, h in enumerate(holders):
        comp = reg.register(h, BENCH_KIND, f"thing{i}")
        comp.gauge("bench_thing_items", lambda o: len(o.items))
        comp.gauge("bench_thing_bytes", lambda o: 24 * len(o.items))
        comp.counter(REQUESTS, "hit").inc()
        comp.counter(REQUESTS, "miss").inc()
    return reg, holders


def _scrape_cases() -> list[Case]:
    reg, holders = populated()
    ours = CollectorRegistry(auto_describe=False)
    register_collector(ours, reg)

    theirs = CollectorRegistry()
    g_items = PromGauge("bench_items", "Items.", ["thing"], registry=theirs)
    g_bytes = PromGauge("bench_bytes", "Bytes.", ["thing"], registry=theirs)
    c_req = PromCounter("bench_requests", "Requests.", ["thing", "result"], registry=theirs)
    for i in range(N_COMPONENTS):
        g_items.labels(f"thing{i}").set(3)
        g_bytes.labels(f"thing{i}").set(72)
        c_req.labels(f"thing{i}", "hit").inc()
        c_req.labels(f"thing{i}", "miss").inc()

    def scrape_ours(n: int) -> None:
        for _ in range(n):
            generate_latest(ours)

    def scrape_theirs(n: int) -> None:
        for _ in range(n):
            generate_latest(theirs)

    scrape_ours.holders = holders  # type: ignore[attr-defined]  # keep them alive
    name = f"scrape: prometheus_client, {N_COMPONENTS} pre-built label sets"
    return [
        Case(name, scrape_theirs),
        Case(f"scrape: memexport, {N_COMPONENTS} components", scrape_ours, name),
    ]


def cases(quick: bool) -> list[Case]:
    return _counter_cases() + _tick_case() + _scrape_cases()
