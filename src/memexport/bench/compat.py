"""Accessors the bench needs, through the public API where it has them, so the cases built on
them also run against an older memexport (the before/after table of docs/performance.md)."""

from __future__ import annotations

import importlib
import io
import weakref
from collections.abc import Callable
from typing import Any

import memexport

__all__ = ["call_app", "exposition", "guide", "metrics_app", "new_registry", "process_collector",
           "prometheus_registry", "seconds_buckets", "settle_sizes"]

#: The Accept header of the Prometheus server installed here (2.42, captured from a scrape):
#: OpenMetrics 1.0.0 first.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

_apps: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


def new_registry(max_names_per_kind: int = 1000) -> Any:
    """A private registry (``memexport.REGISTRY``'s class), so bench components never reach
    an app's /metrics."""
    return type(memexport.REGISTRY)(max_names_per_kind=max_names_per_kind)


def _first(*modules: str) -> Any:
    for name in modules:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"none of {modules} is importable", name=modules[0])


def prometheus_registry(registry: Any) -> Any:
    """A prometheus_client ``CollectorRegistry`` serving ``registry`` alone."""
    from prometheus_client import CollectorRegistry

    exporter = _first("memexport.exporters.prometheus", "memexport.prometheus")
    prom = CollectorRegistry(auto_describe=False)
    exporter.register_collector(prom, registry)
    return prom


def metrics_app(prom: Any) -> Callable[..., Any]:
    """memexport's ``/metrics`` WSGI app for ``prom`` (what its HTTP server serves), with no
    collector thread started."""
    try:
        app: Callable[..., Any] = memexport.make_wsgi_app(prom, collector=False)
    except TypeError:  # older versions: no collector= argument
        app = memexport.make_wsgi_app(prom)
    return app


def call_app(app: Callable[..., Any], accept: str = "") -> bytes:
    """The body ``app`` answers a ``GET /metrics`` with (``accept``: the Accept header; empty
    as from curl, which gets text 0.0.4)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http"}
    if accept:
        environ["HTTP_ACCEPT"] = accept
    status: list[str] = []

    def start_response(s: str, _headers: Any, _exc: Any = None) -> None:
        status.append(s)

    body = b"".join(app(environ, start_response))
    if not status or not status[0].startswith("200"):
        raise RuntimeError(f"/metrics answered {status[:1]}")
    return body


def exposition(prom: Any, accept: str = "") -> str:
    """One scrape of a prometheus_client registry serving memexport's, through memexport's
    ``/metrics`` app (the serving path), as text."""
    app = _apps.get(prom)
    if app is None:
        app = _apps[prom] = metrics_app(prom)
    return call_app(app, accept).decode()


def process_collector(registry: Any, **options: Any) -> Any:
    """A ``ProcessCollector`` on ``registry`` (not started: ``tick()`` takes a reading)."""
    mod = _first("memexport.process.collector", "memexport.process")
    return mod.ProcessCollector(registry, **options)


def settle_sizes(registry: Any, max_rounds: int = 400) -> tuple[int, float | None]:
    """Run the registry's tick jobs (what each collector tick runs: the sizer) until every
    sampled component has a size, as in an app whose collector has run for a while; returns
    (rounds, coverage). Without a coverage to read (older versions), ten rounds."""
    sizer = getattr(registry, "sizer", None)
    coverage = getattr(sizer, "coverage", None)
    rounds = 0
    while rounds < max_rounds:
        registry.run_tick_jobs()
        rounds += 1
        share = coverage() if coverage is not None else None
        if (share is None and coverage is not None) or (share is not None and share >= 1.0):
            return rounds, share
        if coverage is None and rounds >= 10:
            return rounds, None
    return rounds, coverage() if coverage is not None else None


def seconds_buckets() -> tuple[float, ...]:
    """The histogram buckets memexport uses for seconds (prometheus_client's if unknown)."""
    try:
        from memexport.core.counters import DEFAULT_SECONDS_BUCKETS
    except ImportError:
        from prometheus_client.metrics import Histogram

        return tuple(Histogram.DEFAULT_BUCKETS)
    return tuple(DEFAULT_SECONDS_BUCKETS)


def guide() -> Any:
    """The guide's classes (memory-cleanup-guide.txt), as the package ships them."""
    return _first("memexport.demo.guide")
