"""What memexport adds to the user's SDK ``MeterProvider``: failure counts, a bounded exit,
and no double exposition through ``PrometheusMetricReader``.

* **Export failures are counted.** The exporter of each ``PeriodicExportingMetricReader`` (OTLP
  over HTTP or gRPC, remote write) gets its ``export()`` wrapped: a ``FAILURE`` result or an
  exception adds one to ``memexport_opentelemetry_export_failures_total{exporter}``; the result
  and the exception are passed on unchanged.
* **Exit is bounded.** The SDK shuts every provider down at exit, and the final export to a
  dead endpoint retries for up to the exporter's timeout (10 s by default; 7-12 s measured).
  memexport's exit hook runs first and shuts those providers down with ``exit_timeout``
  seconds; the SDK's own hook then has nothing left to do. A provider made with
  ``shutdown_on_exit=False`` is left alone.
* **One exposition per process.** A ``PrometheusMetricReader`` on the same prometheus_client
  registry as memexport's own collector would serve every memexport family twice (its
  OpenTelemetry-named copy differs by labels such as ``memexport_source``, so rules fail with
  many-to-many matching). Such a reader is given the user's own instruments only: memexport's
  scope is left out of what it receives while memexport's collector serves that registry.

The SDK offers no public way to reach a provider's readers or a reader's exporter, so these
use the SDK's attributes guardedly: when they are missing (another SDK version) the feature is
skipped, never the export.
"""

from __future__ import annotations

import atexit
import dataclasses
import threading
import weakref
from collections.abc import Callable
from typing import Any

from memexport.core.forks import after_fork_in_child
from memexport.core.model import Family
from memexport.core.registry import Registry

__all__ = [
    "DEFAULT_EXIT_TIMEOUT",
    "FAILURES_METRIC",
    "ProviderHooks",
    "export_failures",
]

DEFAULT_EXIT_TIMEOUT = 2.0
FAILURES_METRIC = "memexport_opentelemetry_export_failures_total"
SCOPE = "memexport"

_lock = threading.Lock()
_failures: dict[str, int] = {}
_seen: weakref.WeakSet[Any] = weakref.WeakSet()  # readers and exporters already hooked
_providers: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


@after_fork_in_child
def _reset_lock() -> None:
    global _lock
    _lock = threading.Lock()


def export_failures() -> dict[str, int]:
    """Failed exports so far, by exporter (``otlp_http``, ``otlp_grpc``, ...)."""
    with _lock:
        return dict(_failures)


def _failures_family() -> list[Family]:
    fam = Family(FAILURES_METRIC, "counter",
                 "OpenTelemetry exports that failed (the exporter returned FAILURE or raised), "
                 "by exporter.")
    for exporter, n in sorted(export_failures().items()):
        fam.add({"exporter": exporter}, float(n))
    return [fam]


def _exporter_label(exporter: object) -> str:
    """A bounded name for an exporter: its protocol for the known ones, else its class."""
    module = type(exporter).__module__
    for part, label in ((".otlp.proto.http", "otlp_http"), (".otlp.proto.grpc", "otlp_grpc"),
                        ("prometheus_remote_write", "prometheus_remote_write")):
        if part in module:
            return label
    return type(exporter).__name__[:64]


def _count(label: str) -> None:
    with _lock:
        _failures[label] = _failures.get(label, 0) + 1


def _wrap_export(exporter: Any) -> bool:
    """Count the failures of ``exporter.export`` (per instance; the result is unchanged)."""
    inner = getattr(exporter, "export", None)
    if not callable(inner):
        return False
    from opentelemetry.sdk.metrics.export import MetricExportResult

    label = _exporter_label(exporter)

    def export(metrics_data: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = inner(metrics_data, *args, **kwargs)
        except BaseException:
            _count(label)
            raise
        if result is MetricExportResult.FAILURE:
            _count(label)
        return result

    try:
        exporter.export = export
    except (AttributeError, TypeError):  # slots or a read-only attribute: not counted
        return False
    with _lock:
        _failures.setdefault(label, 0)
    return True


def _served_by_memexport(reader: Any) -> bool:
    """Whether memexport's own collector serves the registry this reader writes into."""
    import prometheus_client

    from memexport.exporters.prometheus import serves_registry

    return serves_registry(getattr(reader, "_registry", prometheus_client.REGISTRY))


def _without_memexport(metrics_data: Any) -> Any:
    """``metrics_data`` minus memexport's instrumentation scope."""
    resources = []
    for rm in metrics_data.resource_metrics:
        scopes = [sm for sm in rm.scope_metrics if sm.scope.name != SCOPE]
        if len(scopes) != len(rm.scope_metrics):
            rm = dataclasses.replace(rm, scope_metrics=scopes)
        resources.append(rm)
    return dataclasses.replace(metrics_data, resource_metrics=resources)


def _filter_prometheus_reader(reader: Any) -> bool:
    inner = getattr(reader, "_receive_metrics", None)
    if not callable(inner):
        return False

    def receive(metrics_data: Any, *args: Any, **kwargs: Any) -> Any:
        if metrics_data is not None:
            try:
                if _served_by_memexport(reader):
                    metrics_data = _without_memexport(metrics_data)
            except Exception:  # never lose the user's metrics over this filter
                pass
        return inner(metrics_data, *args, **kwargs)

    try:
        reader._receive_metrics = receive
    except (AttributeError, TypeError):
        return False
    return True


def _readers(provider: Any) -> list[Any]:
    config = getattr(provider, "_sdk_config", None)
    readers = list(getattr(config, "metric_readers", ()) or ())
    for reader in getattr(provider, "_metric_readers", ()) or ():
        if reader not in readers:
            readers.append(reader)
    return readers


def _at_exit() -> None:
    """Shut down, within their bound, the providers the SDK would shut down at exit."""
    with _lock:
        providers = list(_providers.items())
    for provider, timeout in providers:
        if getattr(provider, "_atexit_handler", None) is None:
            continue  # shutdown_on_exit=False, or already shut down
        try:
            provider.shutdown(timeout_millis=timeout * 1000.0)
        except Exception:  # a reader that failed to shut down: nothing to do at exit
            pass


def _move_exit_hook_last() -> None:
    """atexit runs the last registered first: run before every provider's own hook."""
    atexit.unregister(_at_exit)
    atexit.register(_at_exit)


class ProviderHooks:
    """Hooks one provider's readers once each; ``check()`` runs once per collection cycle
    (cheap when nothing is new), so a global provider set after ``use_opentelemetry()`` is
    hooked at its first collection."""

    def __init__(self, provider: Any | None, registry: Registry,
                 exit_timeout: float | None = DEFAULT_EXIT_TIMEOUT) -> None:
        self._get: Callable[[], Any] = _global_provider
        if provider is not None:
            try:
                self._get = weakref.ref(provider)
            except TypeError:  # not weak-referenceable: held as long as the export
                self._get = lambda: provider
        self._exit_timeout = exit_timeout
        self._done: weakref.WeakSet[Any] = weakref.WeakSet()
        registry.add_source("opentelemetry", _failures_family)

    def check(self) -> None:
        provider = self._get()
        if provider is None or provider in self._done:
            return
        try:
            from opentelemetry.sdk.metrics import MeterProvider
        except ImportError:  # pragma: no cover - the API without the SDK
            return
        if not isinstance(provider, MeterProvider):
            return  # the API's proxy or no-op provider: try again next cycle
        self._hook_readers(provider)
        if self._exit_timeout is not None:
            with _lock:
                _providers[provider] = self._exit_timeout
            _move_exit_hook_last()
        self._done.add(provider)

    def _hook_readers(self, provider: Any) -> None:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
        except ImportError:
            prometheus_reader: type | None = None
        else:
            prometheus_reader = PrometheusMetricReader
        for reader in _readers(provider):
            with _lock:
                if reader in _seen:
                    continue
                _seen.add(reader)
            if isinstance(reader, PeriodicExportingMetricReader):
                exporter = getattr(reader, "_exporter", None)
                if exporter is not None:
                    _wrap_export(exporter)
            elif prometheus_reader is not None and isinstance(reader, prometheus_reader):
                _filter_prometheus_reader(reader)


def _global_provider() -> Any:
    from opentelemetry import metrics

    return metrics.get_meter_provider()
