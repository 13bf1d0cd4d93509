"""Prometheus exposition: one custom collector over the registry, and the ways to serve it.

``start_http_server`` serves ``/metrics`` from prometheus_client's own server (TLS options
passed through) and starts the process collector; ``make_wsgi_app`` and ``make_asgi_app``
mount the same output in an existing web app.
"""

from __future__ import annotations

import errno
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from memexport.core.counters import HistogramValue
from memexport.core.model import Family
from memexport.core.registry import REGISTRY, Registry

__all__ = [
    "MemexportCollector",
    "MetricsServer",
    "make_asgi_app",
    "make_wsgi_app",
    "register_collector",
    "start_http_server",
    "to_prometheus",
]

DEFAULT_PORT = 9464
DEFAULT_ADDR = "127.0.0.1"


def to_prometheus(family: Family) -> Metric:
    """Translate one neutral family into a prometheus_client metric family."""
    base = family.name.removesuffix("_total") if family.type == "counter" else family.name
    metric = Metric(base, family.help, family.type, family.unit)
    for labels, value in family.samples:
        if isinstance(value, HistogramValue):
            for bound, count in zip(value.bounds, value.cumulative, strict=False):
                metric.add_sample(base + "_bucket", {**labels, "le": floatToGoString(bound)},
                                  count)
            metric.add_sample(base + "_bucket", {**labels, "le": "+Inf"}, value.count)
            metric.add_sample(base + "_count", labels, value.count)
            metric.add_sample(base + "_sum", labels, value.sum)
        elif family.type == "counter":
            metric.add_sample(base + "_total", labels, value)
        else:
            metric.add_sample(base, labels, value)
    return metric


class MemexportCollector:
    """A prometheus_client collector that reads the memexport registry once per scrape."""

    def __init__(self, registry: Registry = REGISTRY) -> None:
        self.registry = registry
        self.scrapes = 0

    def describe(self) -> list[Metric]:
        # Empty: prometheus_client then skips its duplicate-name check, which would
        # otherwise collect (and read every component) at registration time.
        return []

    def collect(self) -> Iterator[Metric]:
        self.scrapes += 1
        for family in self.registry.collect():
            if family.samples:
                yield to_prometheus(family)


_registered: weakref.WeakKeyDictionary[Any, MemexportCollector] = weakref.WeakKeyDictionary()
_registered_lock = threading.Lock()


def register_collector(
    prom_registry: CollectorRegistry = prometheus_client.REGISTRY,
    registry: Registry = REGISTRY,
) -> MemexportCollector:
    """Register memexport's collector in ``prom_registry`` once; return it."""
    with _registered_lock:
        collector = _registered.get(prom_registry)
        if collector is None:
            collector = MemexportCollector(registry)
            prom_registry.register(collector)
            _registered[prom_registry] = collector
        return collector


def serves_registry(prom_registry: object) -> bool:
    """Whether memexport's collector is registered in ``prom_registry``."""
    with _registered_lock:
        try:
            return prom_registry in _registered
        except TypeError:  # not weak-referenceable, so never registered here
            return False


class MetricsServer:
    """A running ``/metrics`` server; ``close()`` stops it."""

    def __init__(self, server: Any, thread: threading.Thread, collector: MemexportCollector):
        self._server = server
        self._thread = thread
        self.collector = collector
        self.addr, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _port_from(value: object, what: str) -> int:
    try:
        port = int(str(value), 10)
    except ValueError:
        raise ValueError(f"{what} must be a port number 0-65535, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise ValueError(f"{what} must be a port number 0-65535, got {value!r}")
    return port


def start_http_server(
    port: int = DEFAULT_PORT,
    addr: str = DEFAULT_ADDR,
    *,
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    collector: bool = True,
    collector_interval: float | None = None,
    **tls: Any,
) -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` and start the process collector thread.

    ``collector_interval`` sets the process collector's interval (``None``: keep the one a
    running collector has, else 15 s). ``MEMEXPORT_PORT`` and ``MEMEXPORT_ADDR`` override
    ``port`` and ``addr``. TLS keyword
    arguments (``certfile``, ``keyfile``, ``client_cafile``, ...) go to prometheus_client.
    A port in use raises ``OSError`` naming it, here, and nothing else is started.
    """
    env_port = os.environ.get("MEMEXPORT_PORT")
    port = _port_from(env_port, "MEMEXPORT_PORT") if env_port else _port_from(port, "port")
    addr = os.environ.get("MEMEXPORT_ADDR") or addr
    if not isinstance(addr, str) or not addr:
        raise ValueError(f"addr must be a host name or address, got {addr!r}")
    ours = register_collector(registry)
    try:
        server, thread = prometheus_client.start_http_server(port, addr, registry, **tls)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise OSError(exc.errno, f"memexport cannot serve /metrics on {addr}:{port}: {reason} "
                      f"(pass another port= or set MEMEXPORT_PORT)") from exc
    if collector:
        _start_collector(collector_interval)
    return MetricsServer(server, thread, ours)


def _start_collector(interval: float | None) -> None:
    """Start the process collector; ``None`` keeps a running one's interval (else 15 s)."""
    from memexport.process.collector import start_collector

    start_collector(interval)


def make_wsgi_app(
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    *,
    collector: bool = True,
    collector_interval: float | None = None,
) -> Callable[..., Any]:
    """A WSGI app serving memexport's metrics (with prometheus_client's) to mount anywhere;
    starts the process collector as ``start_http_server`` does, unless ``collector=False``."""
    register_collector(registry)
    if collector:
        _start_collector(collector_interval)
    return prometheus_client.make_wsgi_app(registry)


def make_asgi_app(
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    *,
    collector: bool = True,
    collector_interval: float | None = None,
) -> Callable[..., Any]:
    """An ASGI app serving memexport's metrics (with prometheus_client's); starts the
    process collector unless ``collector=False``."""
    register_collector(registry)
    if collector:
        _start_collector(collector_interval)
    return prometheus_client.make_asgi_app(registry)
