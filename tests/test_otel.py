"""OpenTelemetry export: the mapping, one model read per collection, values equal to /metrics.

Uses the real OpenTelemetry SDK with its ``InMemoryMetricReader`` (no network); the tests with
real receivers (OTLP, remote write, Prometheus) are in test_otel_e2e.py.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import memexport
from memexport.core.counters import Counter
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import Registry
from memexport.exporters import otel
from memexport.exporters.prometheus import register_collector
from tests.test_otel_support import wait_for
from tools import otel_table

ROOT = Path(__file__).resolve().parent.parent

WIDGET = Kind(
    "widget",
    "widget",
    (
        MetricDef("memexport_widget_items", "gauge", "Items."),
        MetricDef("memexport_widget_largest_items", "gauge", "Largest.", agg="max"),
        MetricDef("memexport_widget_bytes", "gauge", "Bytes.", "bytes"),
        MetricDef("memexport_widgets", "gauge", "Live widgets.", source="live"),
        MetricDef("memexport_widgets_created_total", "counter", "Created.", source="created"),
        MetricDef("memexport_widget_requests_total", "counter", "Requests.",
                  labels=("result",)),
        MetricDef("memexport_widget_evicted_bytes_total", "counter", "Evicted.", "bytes"),
        MetricDef("memexport_widget_wait_seconds", "histogram", "Wait.", "seconds",
                  buckets=(0.1, 1.0)),
    ),
    bytes_metric="memexport_widget_bytes",
)

#: A kind following the db.client.connection.* semantic conventions, like pools.
TANK = Kind(
    "tank",
    "tank",
    (
        MetricDef("memexport_tank_connections", "gauge", "Connections.",
                  labels=("state",), otel_name="db.client.connection.count"),
        MetricDef("memexport_tank_timeouts_total", "counter", "Timeouts.",
                  otel_name="db.client.connection.timeouts"),
        MetricDef("memexport_tank_acquires_total", "counter", "Acquires."),
    ),
)


class Box(list):
    """A weak-referenceable list standing in for a user's component."""


def track(reg: Registry, box: Box, name: str):
    comp = reg.register(box, WIDGET, name)
    comp.gauge("memexport_widget_items", len)
    comp.gauge("memexport_widget_largest_items", len)
    comp.gauge("memexport_widget_bytes", lambda o: 8 * len(o))
    tank = reg.register(box, TANK, name)
    tank.gauge("memexport_tank_connections", lambda o: 2, "in_use")
    tank.gauge("memexport_tank_connections", lambda o: 1, "idle")
    return comp


def setup(reg: Registry, **kw: Any) -> tuple[InMemoryMetricReader, otel.OpenTelemetryExport,
                                               MeterProvider]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    export = memexport.use_opentelemetry(provider, registry=reg, collector=False, **kw)
    return reader, export, provider


def points(reader: InMemoryMetricReader) -> dict[str, dict[str, Any]]:
    """``{name: {unit, data, points: [(attrs, value)]}}`` of one collection."""
    out: dict[str, dict[str, Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = {"unit": m.unit, "data": type(m.data).__name__,
                               "monotonic": getattr(m.data, "is_monotonic", None),
                               "points": [(dict(p.attributes), p.value)
                                          for p in m.data.data_points]}
    return out


def value(pts: dict[str, dict[str, Any]], name: str, **attrs: Any) -> float:
    matches = [v for a, v in pts[name]["points"] if a == attrs]
    assert len(matches) == 1, (name, attrs, pts[name]["points"])
    return matches[0]


def prometheus_samples(reg: Registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    prom = CollectorRegistry(auto_describe=True)
    register_collector(prom, reg)
    out = {}
    for fam in text_string_to_metric_families(generate_latest(prom).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# -- the mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(("prom", "type_", "unit", "name", "ucum"), [
    ("memexport_cache_items", "gauge", "", "memexport.cache.items", "{item}"),
    ("memexport_cache_bytes", "gauge", "bytes", "memexport.cache.memory.usage", "By"),
    ("memexport_cache_requests_total", "counter", "", "memexport.cache.requests", "{request}"),
    ("memexport_cache_evicted_bytes_total", "counter", "bytes", "memexport.cache.evicted", "By"),
    ("memexport_collector_duration_seconds", "gauge", "seconds",
     "memexport.collector.duration", "s"),
    ("memexport_process_memory_budget_bytes", "gauge", "bytes",
     "memexport.process.memory.budget", "By"),
    ("memexport_system_memory_available_bytes", "gauge", "bytes",
     "memexport.system.memory.available", "By"),
    ("memexport_series_overflow_total", "counter", "", "memexport.series.overflow", "{series}"),
    ("memexport_conversation_entries", "gauge", "", "memexport.conversation.entries", "{entry}"),
    ("memexport_pool_usage_ratio", "gauge", "ratio", "memexport.pool.usage", "1"),
])
def test_derived_names_and_units(prom, type_, unit, name, ucum):
    assert otel.otel_name_and_unit(prom, type_, unit) == (name, ucum)


def test_standard_series_follow_the_semantic_conventions():
    by_prom = {m.prometheus: m for m in otel.STANDARD}
    rss = by_prom["process_resident_memory_bytes"]
    assert (rss.name, rss.instrument, rss.unit) == (
        "process.memory.usage", "ObservableUpDownCounter", "By")
    assert by_prom["process_virtual_memory_bytes"].name == "process.memory.virtual"
    for prom, name in [("python_gc_collections_total", "cpython.gc.collections"),
                       ("python_gc_objects_collected_total", "cpython.gc.collected_objects"),
                       ("python_gc_objects_uncollectable_total",
                        "cpython.gc.uncollectable_objects")]:
        m = by_prom[prom]
        assert (m.name, m.instrument, m.attributes) == (
            name, "ObservableCounter", ("cpython.gc.generation",))


def test_kind_metrics_map_to_instruments_and_attributes():
    reg = Registry()
    box = Box([1, 2, 3])
    comp = track(reg, box, "llm")
    comp.counter("memexport_widget_requests_total", "hit").inc()
    tank = reg.register(box, TANK, "llm")
    tank.counter("memexport_tank_timeouts_total").inc()
    tank.counter("memexport_tank_acquires_total").inc()
    comp.adder("memexport_widget_evicted_bytes_total").add(100)
    reader, _, _ = setup(reg)
    pts = points(reader)
    assert pts["memexport.widget.items"]["data"] == "Gauge"
    assert pts["memexport.widget.items"]["unit"] == "{item}"
    assert value(pts, "memexport.widget.items", **{"memexport.widget.name": "llm"}) == 3
    assert value(pts, "memexport.widget.memory.usage", **{"memexport.widget.name": "llm"}) == 24
    req = pts["memexport.widget.requests"]
    assert (req["data"], req["monotonic"], req["unit"]) == ("Sum", True, "{request}")
    assert value(pts, "memexport.widget.requests",
                 **{"memexport.widget.name": "llm", "memexport.widget.result": "hit"}) == 1
    assert value(pts, "memexport.widget.evicted", **{"memexport.widget.name": "llm"}) == 100
    assert pts["memexport.widget.evicted"]["unit"] == "By"
    # semantic conventions through MetricDef.otel_name, with their attribute names and values
    conns = pts["db.client.connection.count"]
    assert (conns["data"], conns["monotonic"], conns["unit"]) == ("Sum", False, "{connection}")
    assert value(pts, "db.client.connection.count", **{
        "db.client.connection.pool.name": "llm", "db.client.connection.state": "used"}) == 2
    assert value(pts, "db.client.connection.count", **{
        "db.client.connection.pool.name": "llm", "db.client.connection.state": "idle"}) == 1
    assert value(pts, "db.client.connection.timeouts",
                 **{"db.client.connection.pool.name": "llm"}) == 1
    # the kind's other instruments name the pool with the same attribute
    assert value(pts, "memexport.tank.acquires",
                 **{"db.client.connection.pool.name": "llm"}) == 1
    # memexport's own health, without a kind
    assert value(pts, "memexport.collector.errors", **{"memexport.collector": "widget"}) == 0


def test_histograms_are_bucket_sum_and_count_counters():
    reg = Registry()
    box = Box()
    comp = track(reg, box, "w")
    hist = comp.histogram("memexport_widget_wait_seconds")
    for v in (0.05, 0.5, 0.5, 7.0):
        hist.observe(v)
    reader, export, _ = setup(reg)
    pts = points(reader)
    base = {"memexport.widget.name": "w"}
    assert [(a["le"], v) for a, v in pts["memexport.widget.wait.bucket"]["points"]] == [
        ("0.1", 1), ("1.0", 3), ("+Inf", 4)]
    assert pts["memexport.widget.wait.bucket"]["monotonic"] is True
    assert value(pts, "memexport.widget.wait.count", **base) == 4
    assert value(pts, "memexport.widget.wait.sum", **base) == pytest.approx(8.05)
    assert pts["memexport.widget.wait.sum"]["unit"] == "s"
    # the Prometheus exposition of the same registry agrees, bucket by bucket
    prom = prometheus_samples(reg)
    for le, n in [("0.1", 1), ("1.0", 3), ("+Inf", 4)]:
        assert prom[("memexport_widget_wait_seconds_bucket", (("le", le), ("widget", "w")))] == n
    names = {m.name for m in export.instruments()}
    assert "memexport.widget.wait.bucket" in names


def test_count_sum_mode_leaves_buckets_out():
    reg = Registry()
    box = Box()
    track(reg, box, "w").histogram("memexport_widget_wait_seconds").observe(0.5)
    reader, _, _ = setup(reg, histograms="count_sum")
    pts = points(reader)
    assert "memexport.widget.wait.bucket" not in pts
    assert value(pts, "memexport.widget.wait.count", **{"memexport.widget.name": "w"}) == 1


def test_values_equal_the_prometheus_exposition():
    reg = Registry()
    boxes = [Box([1] * i) for i in range(1, 4)]
    for i, b in enumerate(boxes):
        comp = track(reg, b, f"w{i % 2}")
        for _ in range(i + 1):
            comp.counter("memexport_widget_requests_total", "miss").inc()
    reader, _, _ = setup(reg)
    pts = points(reader)
    prom = prometheus_samples(reg)
    for name in ("w0", "w1"):
        attrs = {"memexport.widget.name": name}
        assert value(pts, "memexport.widget.items", **attrs) == prom[
            ("memexport_widget_items", (("widget", name),))]
        assert value(pts, "memexport.widget.largest.items", **attrs) == prom[
            ("memexport_widget_largest_items", (("widget", name),))]
        assert value(pts, "memexport.widgets", **attrs) == prom[
            ("memexport_widgets", (("widget", name),))]
        assert value(pts, "memexport.widgets.created", **attrs) == prom[
            ("memexport_widgets_created_total", (("widget", name),))]
        assert value(pts, "memexport.widget.requests",
                     **attrs, **{"memexport.widget.result": "miss"}) == prom[
            ("memexport_widget_requests_total", (("result", "miss"), ("widget", name)))]


def test_one_registry_read_per_collection_cycle_and_per_reader():
    reg = Registry()
    box = Box([1])
    track(reg, box, "w")
    calls = []
    original = reg.collect

    def counting_collect():
        calls.append(1)
        return original()

    reg.collect = counting_collect  # type: ignore[method-assign]
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first, second])
    memexport.use_opentelemetry(provider, registry=reg, collector=False)
    calls.clear()
    for _ in range(3):
        assert points(first)["memexport.widget.items"]
    assert len(calls) == 3  # one per cycle, though ~20 instruments were observed each time
    points(second)
    assert len(calls) == 4  # the other reader's cycle reads the model afresh


def test_counters_never_go_backwards_when_objects_die():
    reg = Registry()
    keep, drop = Box([1]), Box([1, 2])
    track(reg, keep, "w").counter("memexport_widget_requests_total", "hit").inc()
    c2 = track(reg, drop, "w")
    for _ in range(4):
        c2.counter("memexport_widget_requests_total", "hit").inc()
    reader, _, _ = setup(reg)
    attrs = {"memexport.widget.name": "w", "memexport.widget.result": "hit"}
    assert value(points(reader), "memexport.widget.requests", **attrs) == 5
    del drop, c2
    gc.collect()
    pts = points(reader)
    assert value(pts, "memexport.widget.requests", **attrs) == 5
    assert value(pts, "memexport.widget.items", **{"memexport.widget.name": "w"}) == 1


def test_kinds_declared_later_plug_in_without_code_changes():
    reg = Registry()
    reader, _, _ = setup(reg)
    assert not any(n.startswith("memexport.gadget") for n in points(reader))
    gadget = Kind("gadget", "gadget", (
        MetricDef("memexport_gadget_items", "gauge", "Items."),
        MetricDef("memexport_gadget_turns_total", "counter", "Turns.", labels=("outcome",)),
    ))
    box = Box([1, 2])
    comp = reg.register(box, gadget, "g1")
    comp.gauge("memexport_gadget_items", len)
    comp.counter("memexport_gadget_turns_total", "ok").inc()

    def arrived():
        pts = points(reader)
        return "memexport.gadget.items" in pts and pts

    pts = wait_for(arrived, 10, "the new kind's instruments")
    assert value(pts, "memexport.gadget.items", **{"memexport.gadget.name": "g1"}) == 2
    assert value(pts, "memexport.gadget.turns", **{"memexport.gadget.name": "g1",
                                                   "memexport.gadget.outcome": "ok"}) == 1
    assert pts["memexport.gadget.turns"]["unit"] == "{turn}"


def test_a_failing_reader_is_counted_not_raised():
    reg = Registry()
    box = Box([1])
    comp = reg.register(box, WIDGET, "bad")

    def broken(obj: object) -> float:
        raise RuntimeError("boom")

    comp.gauge("memexport_widget_items", broken)
    reader, _, _ = setup(reg)
    pts = points(reader)
    assert all(a.get("memexport.widget.name") != "bad" for a, _ in
               pts.get("memexport.widget.items", {"points": []})["points"])
    assert value(pts, "memexport.collector.errors", **{"memexport.collector": "widget"}) >= 1


def test_a_failing_model_read_never_raises_into_the_sdk():
    reg = Registry()
    reader, _, _ = setup(reg)

    def broken() -> list:
        raise RuntimeError("model gone")

    reg.collect = broken  # type: ignore[method-assign]
    pts = points(reader)  # no exception
    assert "process.memory.usage" in pts
    assert reg.errors.counts()[otel.COLLECTOR] >= 1


def test_standard_series_values():
    import psutil

    reader, _, _ = setup(Registry())
    pts = points(reader)
    rss = value(pts, "process.memory.usage")
    assert rss > 0
    assert abs(rss - psutil.Process().memory_info().rss) < 256 * 2**20
    assert pts["process.memory.usage"]["monotonic"] is False
    gens = sorted(a["cpython.gc.generation"] for a, _ in pts["cpython.gc.collections"]["points"])
    assert gens == [0, 1, 2]
    modes = {a["cpu.mode"] for a, _ in pts["process.cpu.time"]["points"]}
    assert modes == {"user", "system"}
    assert value(pts, "process.uptime") >= 0


def test_standard_false_leaves_process_series_to_others():
    reader, _, _ = setup(Registry(), standard=False)
    assert "process.memory.usage" not in points(reader)


def test_the_hot_path_never_touches_opentelemetry():
    reg = Registry()
    box = Box()
    comp = track(reg, box, "w")
    counter = comp.counter("memexport_widget_requests_total", "hit")
    inc_before = counter.inc
    reader, _, provider = setup(reg)
    assert counter.inc is inc_before  # the same C-level itertools.count.__next__
    assert type(counter.inc).__name__ == "method-wrapper"
    # Every instrument is observable: nothing records per event.
    meter = provider.get_meter("memexport", memexport.__version__)
    sync = [i for i in vars(meter).get("_instrument_id_instrument", {}).values()
            if not type(i).__name__.startswith("_Observable")]
    assert sync == []
    for _ in range(1000):
        counter.inc()
    assert isinstance(counter, Counter) and counter.value() == 1000
    assert value(points(reader), "memexport.widget.requests",
                 **{"memexport.widget.name": "w", "memexport.widget.result": "hit"}) == 1000


def test_use_opentelemetry_is_idempotent_and_validates():
    reg = Registry()
    reader, export, provider = setup(reg)
    assert memexport.use_opentelemetry(provider, registry=reg, collector=False) is export
    with pytest.raises(ValueError, match="'histogram'"):
        memexport.use_opentelemetry(provider, registry=reg, histograms="histogram")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'yes'"):
        memexport.use_opentelemetry(provider, registry=reg, standard="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="meter_provider"):
        memexport.use_opentelemetry(object(), registry=reg)  # type: ignore[arg-type]
    export.shutdown()
    assert points(reader) == {}  # muted: observable instruments cannot be removed
    assert memexport.use_opentelemetry(provider, registry=reg, collector=False) is not export


def test_export_keeps_no_component_alive():
    reg = Registry()
    box = Box([1])
    track(reg, box, "w")
    reader, _, _ = setup(reg)
    points(reader)
    ref = weakref.ref(box)
    del box
    gc.collect()
    assert ref() is None
    items = points(reader).get("memexport.widget.items", {"points": []})
    assert not any(a.get("memexport.widget.name") == "w" for a, _ in items["points"])


def test_instrumentor_uses_the_configured_provider():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    inst = otel.MemexportInstrumentor()
    assert list(inst.instrumentation_dependencies()) == []
    inst.instrument(meter_provider=provider, skip_dep_check=True)
    try:
        assert "process.memory.usage" in points(reader)
    finally:
        memexport.use_opentelemetry(provider, collector=False).shutdown()


def test_memexport_imports_without_opentelemetry():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'opentelemetry' or name.startswith('opentelemetry.'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import memexport\n"
        "try:\n"
        "    memexport.use_opentelemetry()\n"
        "except ImportError as exc:\n"
        "    print('hint:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT,
                         env={**os.environ,
                              "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])})
    assert out.returncode == 0, out.stderr
    assert "pip install 'memexport[otel]'" in out.stdout


def test_entry_point_for_opentelemetry_instrument_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.entry-points.opentelemetry_instrumentor]' in text
    assert 'memexport = "memexport.exporters.otel:MemexportInstrumentor"' in text


# -- documentation -------------------------------------------------------------------------


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start: end if end != -1 else len(text)]


def test_docs_mapping_table_is_current():
    """docs/metrics.md's table is what ``python tools/otel_table.py`` prints for the
    catalogue (regenerate it with that command when a kind adds metrics)."""
    text = (ROOT / "docs/metrics.md").read_text()
    section = _section(text, "## OpenTelemetry mapping")
    expected = otel_table.mapping_table(text)
    assert expected in section, (
        "docs/metrics.md's OpenTelemetry mapping is stale: replace its table with the output "
        "of `python tools/otel_table.py`")


def test_catalogue_maps_to_distinct_otel_names():
    text = (ROOT / "docs/metrics.md").read_text()
    rows = [line for line in otel_table.mapping_table(text).splitlines()[2:]]
    names = [r.split("|")[2].strip().strip("`") for r in rows]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    catalogue = {name for name, *_ in otel_table.catalogue_rows(_section(text, "# Metric catalogue")
                                                              .split("## OpenTelemetry")[0])}
    mapped = {r.split("|")[1].strip().strip("`") for r in rows}
    missing = {n for n in catalogue
               if n not in mapped and f"{n}_bucket" not in mapped}
    assert not missing, missing
