"""OpenTelemetry cases: one collection of 1,000 components against one Prometheus scrape of the
same registry, and the cost per event with the OpenTelemetry export on and off.

The event cases time the very same ``Counter.inc`` (a component's event counter) in a
registry exported to OpenTelemetry and in one that is not: events never reach OpenTelemetry,
so the two must cost the same (ratio ~1.0).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from memexport.bench import Case
from memexport.bench.core import BENCH_KIND, N_COMPONENTS, REQUESTS, _Holder, populated
from memexport.core.registry import Registry
from memexport.exporters.prometheus import register_collector


def cases(quick: bool) -> list[Case]:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:  # the otel extra is not installed
        return []
    from memexport.exporters.otel import use_opentelemetry

    reg, holders = populated()
    prom = CollectorRegistry(auto_describe=False)
    register_collector(prom, reg)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    use_opentelemetry(provider, registry=reg, standard=False, collector=False)
    reader.get_metrics_data()  # instruments settled

    def scrape(n: int) -> None:
        for _ in range(n):
            generate_latest(prom)

    def collect(n: int) -> None:
        for _ in range(n):
            reader.get_metrics_data()

    # the same kind of component counter, in a registry exported to OpenTelemetry or not
    plain_reg = Registry()
    plain_holder = _Holder()
    inc_off = plain_reg.register(plain_holder, BENCH_KIND, "off").counter(
        REQUESTS, "hit").inc
    inc_on = reg.register(holders[0], BENCH_KIND, "on").counter(
        REQUESTS, "hit").inc

    def events_off(n: int) -> None:
        for _ in range(n):
            inc_off()

    def events_on(n: int) -> None:
        for _ in range(n):
            inc_on()

    scrape.keep = (holders, provider, plain_holder)  # type: ignore[attr-defined]
    scrape_name = f"otel: Prometheus scrape, {N_COMPONENTS} components"
    off_name = "otel: Counter.inc(), OpenTelemetry export off"
    return [
        Case(scrape_name, scrape),
        Case(f"otel: one OpenTelemetry collection, {N_COMPONENTS} components", collect,
             scrape_name),
        Case(off_name, events_off),
        Case("otel: Counter.inc(), OpenTelemetry export on", events_on, off_name,
             target="= off (events never touch OpenTelemetry)"),
    ]
