"""OpenTelemetry export through real protocols and servers.

OTLP/HTTP into a receiver that decodes the real protobuf payload (opentelemetry-proto),
OTLP/gRPC into a real gRPC server, ``opentelemetry-instrument`` configured by environment
variables only, the Prometheus remote-write exporter into a real ``prometheus`` started with
``--web.enable-remote-write-receiver``, and ``PrometheusMetricReader`` scraped by a real one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

import memexport
from memexport.core.registry import Registry
from tests.conftest import ROOT, free_port, stop_process
from tests.test_otel import Box, track
from tests.test_otel_support import OtlpHttpReceiver, Prometheus, wait_for

pytestmark = pytest.mark.e2e

EXPORT_MS = 300


@pytest.fixture
def populated() -> Iterator[tuple[Registry, list[Box]]]:
    """A private registry with two widgets named ``llm`` and one ``tools``, with events."""
    reg = Registry()
    boxes = [Box([1, 2, 3]), Box([4]), Box([5, 6])]
    for box, name in zip(boxes, ("llm", "llm", "tools"), strict=True):
        comp = track(reg, box, name)
        comp.counter("memexport_widget_requests_total", "hit").inc()
        comp.histogram("memexport_widget_wait_seconds").observe(0.5)
    comp.counter("memexport_widget_requests_total", "miss").inc()
    comp.adder("memexport_widget_evicted_bytes_total").add(4096)
    yield reg, boxes


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    r = OtlpHttpReceiver()
    yield r
    r.close()


def _point(entry: dict[str, Any], **attrs: Any) -> Any:
    found = [v for a, v in entry["points"] if all(a.get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, (attrs, entry["points"])
    return found[0]


def _assert_catalogue(metrics: dict[str, dict[str, Any]]) -> None:
    """The populated registry's values, as decoded from the wire."""
    items = metrics["memexport.widget.items"]
    assert (items["type"], items["unit"]) == ("gauge", "{item}")
    assert _point(items, **{"memexport.widget.name": "llm"}) == 4
    assert _point(items, **{"memexport.widget.name": "tools"}) == 2
    mem = metrics["memexport.widget.memory.usage"]
    assert (mem["type"], mem["unit"]) == ("gauge", "By")
    assert _point(mem, **{"memexport.widget.name": "llm"}) == 32
    req = metrics["memexport.widget.requests"]
    assert (req["type"], req["unit"], req["monotonic"]) == ("sum", "{request}", True)
    assert _point(req, **{"memexport.widget.name": "llm", "memexport.widget.result": "hit"}) == 2
    assert _point(req, **{"memexport.widget.name": "tools",
                          "memexport.widget.result": "miss"}) == 1
    assert _point(metrics["memexport.widget.evicted"],
                  **{"memexport.widget.name": "tools"}) == 4096
    assert metrics["memexport.widget.evicted"]["unit"] == "By"
    bucket = metrics["memexport.widget.wait.bucket"]
    assert _point(bucket, **{"memexport.widget.name": "llm", "le": "1.0"}) == 2
    assert _point(bucket, **{"memexport.widget.name": "llm", "le": "0.1"}) == 0
    assert _point(metrics["memexport.widget.wait.sum"], **{"memexport.widget.name": "llm"}) == 1
    conn = metrics["db.client.connection.count"]
    assert (conn["type"], conn["unit"], conn["monotonic"]) == ("sum", "{connection}", False)
    assert _point(conn, **{"db.client.connection.pool.name": "llm",
                           "db.client.connection.state": "used"}) == 4
    rss = metrics["process.memory.usage"]
    assert (rss["type"], rss["unit"]) == ("sum", "By")
    assert _point(rss) > 0
    gc_ = metrics["cpython.gc.collections"]
    assert {a["cpython.gc.generation"] for a, _ in gc_["points"]} == {0, 1, 2}
    assert items["scope"] == "memexport"


def test_otlp_http_payload_decodes_to_the_catalogue(populated, receiver):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    reg, _ = populated
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=receiver.endpoint),
                                           export_interval_millis=EXPORT_MS)
    provider = MeterProvider(metric_readers=[reader],
                             resource=Resource.create({"service.name": "otlp-http-test"}))
    try:
        memexport.use_opentelemetry(provider, registry=reg, collector=False)
        metrics = wait_for(lambda: (m := receiver.latest()).get("memexport.widget.items")
                           and m, 20, "an OTLP export with memexport's metrics")
        _assert_catalogue(metrics)
        assert metrics["memexport.widget.items"]["resource"]["service.name"] == "otlp-http-test"
    finally:
        provider.shutdown()


def test_otlp_grpc_payload_decodes_to_the_catalogue(populated):
    from concurrent import futures

    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.proto.collector.metrics.v1 import (
        metrics_service_pb2,
        metrics_service_pb2_grpc,
    )

    from tests.test_otel_support import decode_metrics

    received: list[Any] = []

    class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            received.append(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    reg, _ = populated
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"127.0.0.1:{port}", insecure=True),
        export_interval_millis=EXPORT_MS)
    provider = MeterProvider(metric_readers=[reader])
    try:
        memexport.use_opentelemetry(provider, registry=reg, collector=False)

        def decoded() -> dict[str, Any] | None:
            out: dict[str, Any] = {}
            for req in list(received):
                out.update(decode_metrics(req))
            return out if "memexport.widget.items" in out else None

        _assert_catalogue(wait_for(decoded, 20, "an OTLP/gRPC export"))
    finally:
        provider.shutdown()
        server.stop(0)


def _instrumented_app(tmp_path: Path, receiver: OtlpHttpReceiver, **env: str
                      ) -> subprocess.Popen[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import time
        import memexport
        from memexport.core.model import Kind, MetricDef

        KIND = Kind("envapp", "envapp", (MetricDef("memexport_envapp_items", "gauge", "Items."),))

        class Box(list):
            pass

        box = Box([1, 2, 3])
        comp = memexport.REGISTRY.register(box, KIND, "main")
        comp.gauge("memexport_envapp_items", len)
        from opentelemetry import metrics
        from opentelemetry.metrics import Observation

        metrics.get_meter("app").create_observable_gauge(
            "app.alive", callbacks=[lambda options: [Observation(1)]])
        print("app ready", flush=True)
        time.sleep(60)
    """))
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "OTEL_SERVICE_NAME": "env-only-app",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": str(EXPORT_MS),
        **env,
    }
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    cmd = [str(instrument)] if instrument.exists() else ["opentelemetry-instrument"]
    return subprocess.Popen([*cmd, sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=environ)


def test_opentelemetry_instrument_with_environment_variables_only(tmp_path, receiver):
    """No memexport call in the app: the entry point hooks in under opentelemetry-instrument."""
    proc = _instrumented_app(tmp_path, receiver)
    try:
        metrics = wait_for(lambda: (m := receiver.latest()).get("memexport.envapp.items")
                           and m, 40, "memexport's metrics from the instrumented app")
    finally:
        out = stop_process(proc)
    items = metrics["memexport.envapp.items"]
    assert _point(items, **{"memexport.envapp.name": "main"}) == 3, out
    assert items["resource"]["service.name"] == "env-only-app"
    assert "process.memory.usage" in metrics


def test_opentelemetry_instrument_respects_disabled_instrumentations(tmp_path, receiver):
    proc = _instrumented_app(tmp_path, receiver,
                             OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="memexport")
    try:
        # The app's own instrument exports; memexport's never appear.
        wait_for(lambda: "app.alive" in receiver.latest() and len(receiver.requests) >= 3, 40,
                 "three exports from the instrumented app")
    finally:
        out = stop_process(proc)
    assert not any(n.startswith("memexport.") for n in receiver.latest()), out


def _rw_name(name: str, unit: str) -> str:
    """The series name opentelemetry-exporter-prometheus-remote-write gives an instrument."""
    return re.sub(r"^\d|[^\w:]", "_", f"{name}_{unit}" if unit else name)


def test_remote_write_into_a_real_prometheus(populated, tmp_path):
    from opentelemetry.exporter.prometheus_remote_write import (
        PrometheusRemoteWriteMetricsExporter,
    )

    reg, _ = populated
    prom = Prometheus(tmp_path / "prom", remote_write_receiver=True)
    reader = PeriodicExportingMetricReader(
        PrometheusRemoteWriteMetricsExporter(endpoint=prom.remote_write_url),
        export_interval_millis=500)
    provider = MeterProvider(metric_readers=[reader],
                             resource=Resource.create({"service.name": "rw-test"}))
    try:
        memexport.use_opentelemetry(provider, registry=reg, collector=False)
        items = _rw_name("memexport.widget.items", "{item}")
        assert items == "memexport_widget_items__item_"  # the exporter appends the raw unit
        got = wait_for(lambda: prom.values(f'{items}{{service_name="rw-test"}}'), 30,
                       f"{items} written into Prometheus")
        by_name = {dict(k)["memexport_widget_name"]: v for k, v in got.items()}
        assert by_name == {"llm": 4.0, "tools": 2.0}
        req = prom.values(_rw_name("memexport.widget.requests", "{request}"))
        assert {(dict(k)["memexport_widget_name"], dict(k)["memexport_widget_result"]): v
                for k, v in req.items()} == {("llm", "hit"): 2.0, ("tools", "hit"): 1.0,
                                             ("tools", "miss"): 1.0}
        conn = prom.values(_rw_name("db.client.connection.count", "{connection}"))
        assert {(dict(k)["db_client_connection_pool_name"],
                 dict(k)["db_client_connection_state"]): v for k, v in conn.items()} == {
            ("llm", "used"): 4.0, ("llm", "idle"): 2.0, ("tools", "used"): 2.0,
            ("tools", "idle"): 1.0}
        bucket = prom.values(_rw_name("memexport.widget.wait.bucket", "{observation}")
                             + '{le="1.0"}')
        assert {dict(k)["memexport_widget_name"]: v for k, v in bucket.items()} == {
            "llm": 2.0, "tools": 1.0}
        rss = prom.values(_rw_name("process.memory.usage", "By"))
        assert len(rss) == 1 and next(iter(rss.values())) > 0
        gens = prom.values(_rw_name("cpython.gc.collections", "{collection}"))
        assert {dict(k)["cpython_gc_generation"] for k in gens} == {"0", "1", "2"}
    finally:
        provider.shutdown()
        prom.close()


def test_prometheus_metric_reader_scraped_by_a_real_prometheus(populated, tmp_path):
    import prometheus_client
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reg, _ = populated
    prom_registry = prometheus_client.CollectorRegistry()
    reader = PrometheusMetricReader(registry=prom_registry)
    provider = MeterProvider(metric_readers=[reader])
    memexport.use_opentelemetry(provider, registry=reg, collector=False)
    port = free_port()
    server, _thread = prometheus_client.start_http_server(port, "127.0.0.1", prom_registry)
    prom = Prometheus(tmp_path / "prom", [{"job_name": "otel-reader",
                                           "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}])
    try:
        got = wait_for(lambda: prom.values("memexport_widget_items"), 30,
                       "memexport_widget_items scraped")
        assert {dict(k)["memexport_widget_name"]: v for k, v in got.items()} == {
            "llm": 4.0, "tools": 2.0}
        assert all(dict(k)["job"] == "otel-reader" for k in got)
        # counters round-trip to the same Prometheus names as memexport's own /metrics
        req = prom.values('memexport_widget_requests_total{memexport_widget_result="hit"}')
        assert sorted(req.values()) == [1.0, 2.0]
        assert prom.values("memexport_widget_memory_usage_bytes")
        assert next(iter(prom.values("process_memory_usage_bytes").values())) > 0
        # the bucket counters keep histogram_quantile working
        q = prom.values('histogram_quantile(0.5, sum by (le, memexport_widget_name) '
                        '(memexport_widget_wait_bucket_total))')
        assert {dict(k)["memexport_widget_name"]: v for k, v in q.items()} == {
            "llm": pytest.approx(0.55), "tools": pytest.approx(0.55)}
    finally:
        prom.close()
        server.shutdown()
        server.server_close()
        provider.shutdown()
