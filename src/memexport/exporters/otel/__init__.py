"""OpenTelemetry export: the same catalogue as ``/metrics``, as observable instruments.

Three parts, one concern each: :mod:`.naming` (Prometheus names -> OpenTelemetry names, UCUM
units and attributes), :mod:`.exporter` (the observable instruments and the once-per-cycle
read of the model), :mod:`.instrumentor` (``use_opentelemetry()`` and the
``opentelemetry_instrumentor`` entry point ``MemexportInstrumentor``), plus
:mod:`.providers` (failure counts, bounded exit, no double exposition on the user's provider).
The docs/metrics.md mapping table is printed by ``python tools/otel_table.py``.

Importing this package needs no OpenTelemetry: the SDK is imported when the export starts.
"""

from memexport.exporters.otel.exporter import COLLECTOR, OpenTelemetryExport
from memexport.exporters.otel.instrumentor import MemexportInstrumentor, use_opentelemetry
from memexport.exporters.otel.naming import (
    STANDARD,
    HistogramMode,
    Mapping,
    map_family,
    otel_name_and_unit,
)
from memexport.exporters.otel.providers import FAILURES_METRIC, export_failures

__all__ = [
    "COLLECTOR",
    "FAILURES_METRIC",
    "STANDARD",
    "HistogramMode",
    "Mapping",
    "MemexportInstrumentor",
    "OpenTelemetryExport",
    "export_failures",
    "map_family",
    "otel_name_and_unit",
    "use_opentelemetry",
]
