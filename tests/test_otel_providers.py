"""What memexport does to the user's MeterProvider: export failures counted, a bounded exit
with a dead OTLP endpoint, and no double exposition through PrometheusMetricReader.

Real SDK, real OTLP/HTTP exporter against a closed loopback port, real Prometheus.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import memexport
from memexport.core.registry import Registry
from memexport.exporters import otel
from memexport.exporters.prometheus import register_collector
from tests.conftest import ROOT, free_port
from tests.test_otel import Box, track
from tests.test_otel_support import Prometheus, wait_for


def dead_endpoint() -> str:
    """An OTLP/HTTP endpoint on a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/v1/metrics"


def exposition(prom: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(generate_latest(prom).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_otlp_export_failures_are_counted_from_zero() -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    reg = Registry()
    prom = CollectorRegistry()
    register_collector(prom, reg)
    exporter = OTLPMetricExporter(endpoint=dead_endpoint(), timeout=0.5)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=200)
    provider = MeterProvider(metric_readers=[reader])
    before = otel.export_failures().get("otlp_http", 0)
    try:
        memexport.use_opentelemetry(provider, registry=reg, collector=False, exit_timeout=None)
        series = exposition(prom)[otel.FAILURES_METRIC]
        assert ({"exporter": "otlp_http"}, float(before)) in series  # there before any failure
        wait_for(lambda: otel.export_failures()["otlp_http"] > before, 20,
                 "a failed export to a closed port counted")
        value = dict((tuple(a.items()), v) for a, v in exposition(prom)[otel.FAILURES_METRIC])
        assert value[(("exporter", "otlp_http"),)] > before
        from tests.test_catalogue import OTEL_ONLY, catalogue

        base = otel.FAILURES_METRIC.removesuffix("_total")
        assert catalogue()[base] == "counter" and base in OTEL_ONLY
    finally:
        provider.shutdown(timeout_millis=2000)


def test_a_successful_export_is_not_counted() -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult

    class Ok:
        calls = 0

        def export(self, data: object, timeout_millis: float = 0, **kw: object) -> object:
            Ok.calls += 1
            return MetricExportResult.SUCCESS

    exporter = Ok()
    from memexport.exporters.otel.providers import _exporter_label, _wrap_export

    assert _wrap_export(exporter)
    label = _exporter_label(exporter)
    before = otel.export_failures()[label]
    assert exporter.export(None) is MetricExportResult.SUCCESS
    assert Ok.calls == 1 and otel.export_failures()[label] == before
    InMemoryMetricReader()  # the SDK is importable alongside


def _exit_script(tmp_path: Path, exit_timeout: str) -> Path:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        import memexport

        # an exporter that would retry a dead endpoint for up to a minute at exit
        exporter = OTLPMetricExporter(endpoint={dead_endpoint()!r}, timeout=60)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=600_000)
        provider = MeterProvider(metric_readers=[reader])
        memexport.use_opentelemetry(provider, collector=False, exit_timeout={exit_timeout})
        print("exiting", flush=True)
    """))
    return script


def test_exit_with_a_dead_otlp_endpoint_is_bounded(tmp_path: Path) -> None:
    """The SDK's final export retries the dead endpoint until its 60 s timeout (1+2+4+8+16 s
    of backoff); with memexport's exit bound (0.5 s here) the process is gone well within the
    20 s this test allows."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    res = subprocess.run([sys.executable, str(_exit_script(tmp_path, "0.5"))],
                         capture_output=True, text=True, timeout=20, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "exiting\n"


def test_exit_timeout_none_leaves_the_sdk_alone(tmp_path: Path) -> None:
    """Without the bound the same process is still retrying after 3 s (the SDK's behaviour)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, str(_exit_script(tmp_path, "None"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "exiting\n"
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_bad_exit_timeout_is_a_value_error() -> None:
    for bad in (0, -1, float("nan"), "2", True):
        with pytest.raises(ValueError, match="exit_timeout"):
            memexport.use_opentelemetry(MeterProvider(), registry=Registry(), collector=False,
                                        exit_timeout=bad)  # type: ignore[arg-type]


def test_instrumentor_warning_carries_no_exception_text(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    class Secret:
        def __repr__(self) -> str:
            return "CANARY-SECRET-77"

        get_meter = None  # looks like a provider, fails inside

    inst = otel.MemexportInstrumentor()
    inst.instrument(meter_provider=Secret())
    assert "CANARY" not in caplog.text
    with pytest.raises(ValueError) as info:
        memexport.use_opentelemetry(object(), registry=Registry())  # type: ignore[arg-type]
    assert "object" in str(info.value) and "0x" not in str(info.value)


# -- both exporters in one process -------------------------------------------------------


@pytest.mark.e2e
def test_prometheus_reader_next_to_memexport_exposes_each_series_once(tmp_path: Path) -> None:
    """memexport's /metrics and a PrometheusMetricReader on the same prometheus_client
    registry: memexport's families once (its own names and labels), the app's own
    OpenTelemetry instruments still through the reader, and a one-to-one match that the
    OpenTelemetry copies used to break with many-to-many matching."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import Observation

    reg = Registry()
    boxes = [Box([1, 2, 3]), Box([4, 5])]
    for box, name in zip(boxes, ("llm", "tools"), strict=True):
        track(reg, box, name)
    prom_registry = CollectorRegistry()
    register_collector(prom_registry, reg)  # /metrics serves this private model
    server = memexport.start_http_server(free_port(), "127.0.0.1", prom_registry,
                                         collector=False)
    reader = PrometheusMetricReader(registry=prom_registry)
    provider = MeterProvider(metric_readers=[reader])
    memexport.use_opentelemetry(provider, registry=reg, collector=False, exit_timeout=None)
    provider.get_meter("app").create_observable_gauge(
        "app.queue.depth", callbacks=[lambda options: [Observation(7)]])
    prom = None
    try:
        with urllib.request.urlopen(server.url, timeout=10) as resp:
            text = resp.read().decode()
        assert "app_queue_depth{otel_scope_name=\"app\"" in text  # the app's own, via the reader
        samples = [(s.name, dict(s.labels)) for f in text_string_to_metric_families(text)
                   for s in f.samples if s.name == "memexport_widget_items"]
        assert sorted(s[1]["widget"] for s in samples) == ["llm", "tools"], samples
        assert "memexport_widget_name" not in text and "process_memory_usage" not in text
        prom = Prometheus(tmp_path / "prom", [{"job_name": "both", "static_configs": [
            {"targets": [f"127.0.0.1:{server.port}"]}]}])
        got = wait_for(lambda: prom.values(
            "memexport_widget_items / on(job, instance, widget) memexport_widget_bytes"), 30,
            "a one-to-one match across the two families")
        assert len(got) == 2
        total = prom.values("sum(memexport_widget_items)")
        assert list(total.values()) == [5.0]
    finally:
        if prom is not None:
            prom.close()
        server.close()
        provider.shutdown()


def test_a_prometheus_reader_on_its_own_registry_keeps_memexport() -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reg = Registry()
    box = Box([1, 2])
    track(reg, box, "solo")
    own = CollectorRegistry()  # memexport's collector is not registered here
    reader = PrometheusMetricReader(registry=own)
    provider = MeterProvider(metric_readers=[reader])
    try:
        memexport.use_opentelemetry(provider, registry=reg, collector=False, exit_timeout=None)
        text = generate_latest(own).decode()
        assert 'memexport_widget_items{memexport_widget_name="solo"' in text
    finally:
        provider.shutdown()
