"""gunicorn settings, push variant: every worker sends its own metrics over OTLP.

No shared files and no /metrics: each worker gets its own MeterProvider after the fork, with a
``service.instance.id`` naming the worker, so its series never collide with its siblings'.
Everything else comes from the standard variables, for example:

    export OTEL_SERVICE_NAME=my-app
    export OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://otel-collector:4318/v1/metrics
    gunicorn -c gunicorn_otlp.conf.py app:app

For Prometheus remote write instead, replace the exporter with
``PrometheusRemoteWriteMetricsExporter(endpoint="http://prometheus:9090/api/v1/write")``.
"""

import os
import socket

bind = "127.0.0.1:8000"
workers = 4


def post_fork(server, worker):
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    import memexport

    resource = Resource.create({  # merged with OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
        "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        "process.pid": os.getpid(),
    })
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())  # OTEL_METRIC_EXPORT_INTERVAL
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], resource=resource))
    memexport.use_opentelemetry()


def worker_exit(server, worker):
    from opentelemetry import metrics

    shutdown = getattr(metrics.get_meter_provider(), "shutdown", None)
    if shutdown is not None:
        shutdown()  # a last export, so the worker's final counts are not lost
