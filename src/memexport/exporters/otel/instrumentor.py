"""Starting the OpenTelemetry export: ``use_opentelemetry()`` and the
``opentelemetry_instrumentor`` entry point ``MemexportInstrumentor``.

``use_opentelemetry(meter_provider=None)`` puts memexport's observable instruments on the
user's ``MeterProvider`` -- the global one by default, so every reader configured there
(periodic OTLP over HTTP or gRPC, ``PrometheusMetricReader``, the Prometheus remote-write
exporter) and every ``OTEL_*`` environment variable the SDK honours apply unchanged. Under
``opentelemetry-instrument`` nothing needs to be written: the entry point ``memexport`` calls
``use_opentelemetry()`` on the provider the SDK configured from the ``OTEL_*`` variables;
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=memexport`` turns it off.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from memexport.core.forks import after_fork_in_child
from memexport.core.registry import REGISTRY, Registry
from memexport.exporters.otel.exporter import OpenTelemetryExport
from memexport.exporters.otel.naming import HistogramMode
from memexport.exporters.otel.providers import DEFAULT_EXIT_TIMEOUT, ProviderHooks

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.metrics import MeterProvider

__all__ = ["MemexportInstrumentor", "use_opentelemetry"]

log = logging.getLogger("memexport")

_exports: dict[Any, OpenTelemetryExport] = {}
# Re-entrant: ``_forget`` runs from a weakref finalizer, which the cyclic GC may call in this
# thread while it holds the lock (a deadlock of the test suite, seen once).
_exports_lock = threading.RLock()
_GLOBAL = object()


def _shown(value: object) -> str:
    """A bad argument for an error text: its repr, truncated."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def use_opentelemetry(
    meter_provider: MeterProvider | None = None,
    *,
    registry: Registry = REGISTRY,
    histograms: HistogramMode = "buckets",
    standard: bool = True,
    collector: bool = True,
    collector_interval: float = 15.0,
    exit_timeout: float | None = DEFAULT_EXIT_TIMEOUT,
) -> OpenTelemetryExport:
    """Export memexport's metrics as OpenTelemetry observable instruments.

    ``meter_provider`` defaults to the global one (configured by the SDK, ``opentelemetry-
    instrument`` or ``metrics.set_meter_provider``; instruments created before it is set are
    forwarded to it). ``histograms="count_sum"`` leaves histogram buckets out; ``standard=False``
    leaves out ``process.*``/``cpython.gc.*`` (when another instrumentation already reports
    them). ``collector`` starts the process collector thread (every ``collector_interval``
    seconds) unless it already runs, as ``start_http_server`` does. ``exit_timeout`` bounds the
    provider's shutdown at interpreter exit (seconds; ``None`` leaves it to the SDK).
    Calling it again for the same provider returns the existing export.
    """
    if histograms not in ("buckets", "count_sum"):
        raise ValueError(f"histograms must be 'buckets' or 'count_sum', got {_shown(histograms)}")
    if not isinstance(standard, bool):
        raise ValueError(f"standard must be True or False, got {_shown(standard)}")
    if exit_timeout is not None and (
            isinstance(exit_timeout, bool) or not isinstance(exit_timeout, int | float)
            or not math.isfinite(exit_timeout) or exit_timeout <= 0):
        raise ValueError(f"exit_timeout must be a positive number of seconds or None, got "
                         f"{_shown(exit_timeout)}")
    try:
        from opentelemetry import metrics
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("memexport.use_opentelemetry needs opentelemetry-api and "
                          "opentelemetry-sdk: pip install 'memexport[otel]'") from exc
    from memexport import __version__

    if meter_provider is not None and not hasattr(meter_provider, "get_meter"):
        raise ValueError(f"meter_provider must be an OpenTelemetry MeterProvider, got a "
                         f"{type(meter_provider).__name__[:60]}")
    key: Any = (_GLOBAL if meter_provider is None else id(meter_provider), id(registry))
    with _exports_lock:
        export = _exports.get(key)
        if export is None:
            meter = (metrics.get_meter("memexport", __version__) if meter_provider is None
                     else meter_provider.get_meter("memexport", __version__))
            hooks = ProviderHooks(meter_provider, registry, exit_timeout)
            export = OpenTelemetryExport(meter, registry, histograms, standard,
                                         on_cycle=hooks.check, on_shutdown=_forget_export)
            _exports[key] = export
            if meter_provider is not None:
                try:
                    weakref.finalize(meter_provider, _forget, key)
                except TypeError:  # not weak-referenceable: kept until shutdown()
                    pass
            try:
                hooks.check()
            except Exception as exc:  # the export works without the hooks
                registry.errors.record("opentelemetry", "provider hooks", exc)
    if collector:
        from memexport.process import collector as process

        running = getattr(process, "_collector", None)
        if running is None or running.registry is not registry or not running.running:
            process.start_collector(collector_interval, registry=registry)
        # else: leave the running collector's interval as start_http_server() set it
    return export


def _forget(key: Any) -> None:
    # A finalizer: it may run inside any lock of this thread, during a GC pass triggered in
    # use_opentelemetry itself. A dict pop is atomic: no lock, no deadlock.
    _exports.pop(key, None)


def _forget_export(export: OpenTelemetryExport) -> None:
    with _exports_lock:
        for key, known in list(_exports.items()):
            if known is export:
                del _exports[key]


@after_fork_in_child
def _after_fork_in_child() -> None:
    """A fork during a collection must not leave the child with a held lock or a stale read."""
    global _exports_lock
    _exports_lock = threading.RLock()
    for export in list(_exports.values()):
        export._after_fork()


class MemexportInstrumentor:
    """The ``opentelemetry_instrumentor`` entry point: ``opentelemetry-instrument`` calls
    ``instrument()`` after configuring the SDK from the ``OTEL_*`` environment variables."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def instrument(self, **kwargs: Any) -> None:
        try:
            use_opentelemetry(kwargs.get("meter_provider"))
        except Exception as exc:  # never break the application's start
            log.warning("memexport: OpenTelemetry export not started (%s)", type(exc).__name__)

    def uninstrument(self, **kwargs: Any) -> None:
        with _exports_lock:
            export = _exports.get((_GLOBAL, id(REGISTRY)))
        if export is not None:
            export.shutdown()
