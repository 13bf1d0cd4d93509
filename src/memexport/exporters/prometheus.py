"""Prometheus exposition: one custom collector over the registry, and the ways to serve it.

``start_http_server`` serves ``/metrics`` (memexport's bounded server, TLS and auth optional,
the arguments of prometheus_client's function) and starts the process collector;
``make_wsgi_app`` and ``make_asgi_app`` mount the same output in an existing web app
(docs/instrumenting.md shows FastAPI/Starlette, Flask and Django).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

import prometheus_client
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from memexport.core.counters import HistogramValue
from memexport.core.forks import after_fork_in_child
from memexport.core.model import Family
from memexport.core.registry import REGISTRY, Registry
from memexport.exporters.encode import asgi_app, wsgi_app
from memexport.exporters.server import (
    ASGIMetricsApp,
    MetricsHTTPServer,
    require_auth,
    routed,
    tls_context,
    validate_auth,
)

__all__ = [
    "MemexportCollector",
    "MetricsServer",
    "collector_for",
    "make_asgi_app",
    "make_wsgi_app",
    "register_collector",
    "start_http_server",
    "to_prometheus",
]

log = logging.getLogger("memexport")

DEFAULT_PORT = 9464
DEFAULT_ADDR = "127.0.0.1"
DEFAULT_MAX_CONNECTIONS = 16
DEFAULT_TIMEOUT = 10.0


def _go_string(value: float) -> str:
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def to_prometheus(family: Family) -> Metric:
    """Translate one neutral family into a prometheus_client metric family."""
    base = family.name.removesuffix("_total") if family.type == "counter" else family.name
    metric = Metric(base, family.help, family.type, family.unit)
    for labels, value in family.samples:
        if isinstance(value, HistogramValue):
            for bound, count in zip(value.bounds, value.cumulative, strict=False):
                metric.add_sample(base + "_bucket", {**labels, "le": _go_string(bound)},
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
        #: Set in a thread that wrote memexport's part itself (``exporters.encode``) while
        #: prometheus_client encodes the rest of its registry.
        self.skip = threading.local()

    def describe(self) -> list[Metric]:
        # Empty: prometheus_client then skips its duplicate-name check, which would
        # otherwise collect (and read every component) at registration time.
        return []

    def collect(self) -> Iterator[Metric]:
        if getattr(self.skip, "active", False):
            return
        self.scrapes += 1
        for family in self.registry.collect():
            if family.samples:
                yield to_prometheus(family)


_registered: weakref.WeakKeyDictionary[Any, MemexportCollector] = weakref.WeakKeyDictionary()
_registered_lock = threading.Lock()


@after_fork_in_child
def _reset_lock() -> None:
    """A fork while another thread registered must not leave the child's lock held."""
    global _registered_lock
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


def collector_for(prom_registry: object) -> MemexportCollector | None:
    """memexport's collector registered in ``prom_registry``, if any."""
    with _registered_lock:
        try:
            return _registered.get(prom_registry)
        except TypeError:  # not weak-referenceable, so never registered here
            return None


def serves_registry(prom_registry: object) -> bool:
    """Whether memexport's collector is registered in ``prom_registry``."""
    with _registered_lock:
        try:
            return prom_registry in _registered
        except TypeError:  # not weak-referenceable, so never registered here
            return False


class MetricsServer:
    """A running ``/metrics`` server; ``close()`` stops it.

    Unpacks like prometheus_client's ``(server, thread)`` tuple: ``httpd, t = start_http_server()``.
    """

    def __init__(self, server: Any, thread: threading.Thread, collector: MemexportCollector,
                 tls: bool = False) -> None:
        self._server = server
        self._thread = thread
        self.collector = collector
        self.tls = tls
        self.addr, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/metrics"

    @property
    def server(self) -> MetricsHTTPServer:
        """The underlying WSGI server (connection counts: ``connections()``)."""
        return cast(MetricsHTTPServer, self._server)

    def __iter__(self) -> Iterator[Any]:
        return iter((self._server, self._thread))

    def mount(self, app: Callable[..., Any], owns: Callable[[str], bool]) -> Callable[[], None]:
        """Serve the paths ``owns(path)`` accepts with the WSGI ``app`` (the actions
        receiver), on this server's TLS and connection limits; returns the undo."""
        base = self._server.get_app()
        self._server.set_app(routed(base, app, owns))
        return lambda: self._server.set_app(base)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _shown(value: object) -> str:
    """A bad value for an error text: its repr, truncated."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _port_from(value: object, what: str) -> int:
    try:
        port = int(str(value).strip(), 10)
    except ValueError:
        raise ValueError(f"{what} must be a port number 0-65535, got {_shown(value)}") from None
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise ValueError(f"{what} must be a port number 0-65535, got {_shown(value)}")
    return port


def _listen_address(value: object, what: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and address to bind; ValueError naming ``what`` if unusable."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a host name or IP address (such as 127.0.0.1 or "
                         f"0.0.0.0), got {_shown(value)}")
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(f"{what} {_shown(value)} is not an address this host can listen on "
                         f"({reason})") from None
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


def _setting(explicit: object, env: str, default: object) -> tuple[object, str]:
    """Explicit argument, else the environment variable, else the default (as OpenTelemetry
    does); returns the value and what to call it in an error."""
    if explicit is not None:
        return explicit, env.removeprefix("MEMEXPORT_").lower()
    raw = os.environ.get(env)
    if raw is not None and raw != "":
        return raw, env
    return default, env.removeprefix("MEMEXPORT_").lower()


def _positive(value: object, what: str, kind: type = float) -> Any:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or (kind is int and not isinstance(value, int))
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{what} must be a positive {kind.__name__}, got {_shown(value)}")
    return value


def start_http_server(
    port: int | None = None,
    addr: str | None = None,
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_cafile: str | None = None,
    client_capath: str | None = None,
    protocol: int = ssl.PROTOCOL_TLS_SERVER,
    client_auth_required: bool = False,
    tls_min_version: ssl.TLSVersion | None = None,
    tls_max_version: ssl.TLSVersion | None = None,
    *,
    collector: bool = True,
    collector_interval: float | None = None,
    basic_auth: tuple[str, str] | None = None,
    bearer_token: str | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    timeout: float = DEFAULT_TIMEOUT,
) -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` and start the process collector thread.

    The positional arguments are prometheus_client's ``start_http_server``'s. ``port`` and
    ``addr``: the argument, else ``MEMEXPORT_PORT`` / ``MEMEXPORT_ADDR``, else 9464 and
    127.0.0.1. ``certfile`` (with ``keyfile``, unless the key is in it) turns on TLS;
    ``client_cafile``/``client_capath`` and ``client_auth_required`` check client
    certificates. ``basic_auth=(user, password)`` and/or ``bearer_token=`` make ``/metrics``
    answer ``401`` without them (use TLS too). ``max_connections`` and ``timeout`` (seconds to
    send a request, and per read or write) bound what clients can hold. ``collector_interval``
    sets the process collector's interval (``None``: keep the one a running collector has,
    else 15 s). A port in use raises ``OSError`` naming it, here, and nothing else is started.
    """
    raw_port, port_name = _setting(port, "MEMEXPORT_PORT", DEFAULT_PORT)
    port_number = _port_from(raw_port, port_name)
    raw_addr, addr_name = _setting(addr, "MEMEXPORT_ADDR", DEFAULT_ADDR)
    family, host = _listen_address(raw_addr, addr_name, port_number)
    _positive(max_connections, "max_connections", int)
    _positive(timeout, "timeout")
    validate_auth(basic_auth, bearer_token)
    if keyfile is not None and certfile is None:
        raise ValueError("keyfile needs certfile: pass the certificate too")
    context = None
    if certfile is not None:
        context = tls_context(certfile, keyfile, protocol, client_cafile, client_capath,
                              client_auth_required, tls_min_version, tls_max_version)
    ours = register_collector(registry)
    app: Any = wsgi_app(registry, collector_for)
    if basic_auth is not None or bearer_token is not None:
        app = require_auth(app, basic_auth, bearer_token)
    try:
        server = MetricsHTTPServer((host, port_number), family, app, ssl_context=context,
                                   max_connections=max_connections, timeout=float(timeout))
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        hint = "pass another port=" if port is not None else "set another MEMEXPORT_PORT"
        raise OSError(exc.errno, f"memexport cannot serve /metrics on {host}:{port_number}: "
                      f"{reason} ({hint})") from exc
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                              name="memexport-http", daemon=True)
    thread.start()
    if collector:
        _start_collector(collector_interval)
    running = MetricsServer(server, thread, ours, tls=context is not None)
    auth = " and ".join(n for n, on in (("basic auth", basic_auth), ("bearer token",
                                        bearer_token)) if on) or "no auth"
    log.info("memexport: serving %s (%s, %s, at most %d connections)", running.url,
             "TLS" if context is not None else "plain HTTP", auth, max_connections)
    if context is None and auth != "no auth" and not _loopback(host):
        _warn_clear_credentials()
    return running


def _loopback(host: str) -> bool:
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _warn_clear_credentials() -> None:
    log.warning("memexport: /metrics checks credentials over plain HTTP, which sends them in "
                "clear: pass certfile= (and keyfile=) to serve TLS")


def _start_collector(interval: float | None) -> None:
    """Start the process collector; ``None`` keeps a running one's interval (else 15 s)."""
    from memexport.process.collector import start_collector

    start_collector(interval)


def make_wsgi_app(
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    *,
    collector: bool = True,
    collector_interval: float | None = None,
    basic_auth: tuple[str, str] | None = None,
    bearer_token: str | None = None,
) -> Callable[..., Any]:
    """A WSGI app serving memexport's metrics (with prometheus_client's) to mount anywhere;
    starts the process collector as ``start_http_server`` does, unless ``collector=False``.
    ``basic_auth``/``bearer_token`` as for ``start_http_server``."""
    validate_auth(basic_auth, bearer_token)
    register_collector(registry)
    if collector:
        _start_collector(collector_interval)
    app: Callable[..., Any] = wsgi_app(registry, collector_for)
    if basic_auth is not None or bearer_token is not None:
        app = require_auth(app, basic_auth, bearer_token)
    return app


def make_asgi_app(
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    *,
    collector: bool = True,
    collector_interval: float | None = None,
    basic_auth: tuple[str, str] | None = None,
    bearer_token: str | None = None,
) -> ASGIMetricsApp:
    """An ASGI app serving memexport's metrics (with prometheus_client's); starts the
    process collector unless ``collector=False``. It is an app object, so Starlette/FastAPI
    serve it at ``/metrics`` itself with ``app.add_route("/metrics", make_asgi_app())`` --
    ``app.mount("/metrics", ...)`` answers ``/metrics`` with a 307 redirect to ``/metrics/``."""
    validate_auth(basic_auth, bearer_token)
    register_collector(registry)
    if collector:
        _start_collector(collector_interval)
    return ASGIMetricsApp(asgi_app(registry, collector_for), basic_auth, bearer_token)
