"""Prometheus -> OpenTelemetry naming: instrument names, UCUM units, attributes.

Pure functions and tables, no SDK import: the exporter uses them at run time, and
``tools/otel_table.py`` prints the docs/metrics.md mapping table from them.

* names: semantic conventions where one exists (``process.memory.usage``, ``cpython.gc.*``,
  ``MetricDef.otel_name`` such as ``db.client.connection.count``); elsewhere
  ``memexport.<rest>`` from the Prometheus name, ``_`` -> ``.``, without ``_total`` and without
  the unit suffix (``memexport_cache_evicted_bytes_total`` -> ``memexport.cache.evicted``);
  a name that was only a unit gets ``memory.usage``/``duration``/``ratio``
  (``memexport_cache_bytes`` -> ``memexport.cache.memory.usage``).
* units (UCUM): ``_bytes`` -> ``By``, ``_seconds`` -> ``s``, ``_ratio`` -> ``1``, counts -> an
  annotation of the counted noun (``{request}``, ``{item}``).
* instruments: gauges -> ``ObservableGauge`` (``ObservableUpDownCounter`` where the semantic
  convention says updowncounter), counters -> ``ObservableCounter``; a histogram -> three
  ``ObservableCounter`` (``.bucket`` with ``le``, ``.sum``, ``.count``).
* attributes: the kind label -> ``memexport.<kind>.name``, or the convention's own attribute
  on every instrument of a kind that follows one (``db.client.connection.pool.name`` for
  pools); other labels of a kind -> ``memexport.<kind>.<label>`` (on a semantic-convention
  instrument its attribute: ``db.client.connection.state``, ``in_use`` -> ``used``);
  ``generation`` -> ``cpython.gc.generation`` (an int); any other label ->
  ``memexport.<label>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from memexport.core.model import Kind, MetricDef

__all__ = [
    "GENERATION_ATTR",
    "SEMCONV",
    "STANDARD",
    "Attributes",
    "HistogramMode",
    "InstrumentType",
    "Mapping",
    "map_family",
    "otel_name_and_unit",
]

HistogramMode = Literal["buckets", "count_sum"]
InstrumentType = Literal["ObservableGauge", "ObservableCounter", "ObservableUpDownCounter"]

_UNIT_SUFFIXES = (("_bytes", "By", ("memory", "usage")), ("_seconds", "s", ("duration",)),
                  ("_ratio", "1", ("ratio",)))
_FAMILY_UNITS = {"bytes": "By", "seconds": "s", "ratio": "1"}
_IRREGULAR = {"series": "series", "status": "status", "bytes": "byte"}

#: Semantic conventions memexport uses: instrument name -> (instrument, unit).
SEMCONV: dict[str, tuple[InstrumentType, str]] = {
    "db.client.connection.count": ("ObservableUpDownCounter", "{connection}"),
    "db.client.connection.idle.max": ("ObservableUpDownCounter", "{connection}"),
    "db.client.connection.idle.min": ("ObservableUpDownCounter", "{connection}"),
    "db.client.connection.max": ("ObservableUpDownCounter", "{connection}"),
    "db.client.connection.pending_requests": ("ObservableUpDownCounter", "{request}"),
    "db.client.connection.timeouts": ("ObservableCounter", "{timeout}"),
}
#: Attribute names and value translations for instruments in a semantic-convention namespace.
_SEMCONV_ATTRS: dict[str, tuple[str, dict[str, tuple[str, dict[str, str]]]]] = {
    # namespace: (attribute for the kind label, {label: (attribute, {value: value})})
    "db.client.connection.": ("db.client.connection.pool.name",
                              {"state": ("db.client.connection.state", {"in_use": "used"})}),
}
GENERATION_ATTR = "cpython.gc.generation"


# -- the mapping ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    """One OpenTelemetry instrument and the Prometheus series it carries."""

    prometheus: str  # the Prometheus family as exposed (``..._total``, histogram base name)
    name: str  # the OpenTelemetry instrument name
    instrument: InstrumentType
    unit: str
    attributes: tuple[str, ...]
    part: str = ""  # histograms: "bucket", "sum" or "count"
    description: str = ""


def _singular(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _count_unit(tokens: Sequence[str]) -> str:
    """A UCUM annotation naming what is counted: the last plural word (``{request}``)."""
    for token in reversed(tokens):
        if token in _IRREGULAR or (token.endswith("s") and not token.endswith("ss")):
            return "{" + _singular(token) + "}"
    return "{" + tokens[-1] + "}" if tokens else ""


def otel_name_and_unit(prom_name: str, type_: str, unit: str = "") -> tuple[str, str]:
    """The derived ``memexport.*`` name and UCUM unit of a Prometheus family name."""
    base = prom_name.removesuffix("_total") if type_ == "counter" else prom_name
    otel_unit = ""
    filler: tuple[str, ...] = ()
    for suffix, ucum, fill in _UNIT_SUFFIXES:
        if base.endswith(suffix):
            base, otel_unit, filler = base[: -len(suffix)], ucum, fill
            break
    else:
        otel_unit = _FAMILY_UNITS.get(unit, unit)
    tokens = [t for t in base.split("_") if t]
    if tokens and tokens[0] == "memexport":
        tokens = tokens[1:]
    if len(tokens) <= 1 and filler:
        tokens += filler
    elif otel_unit == "By" and tokens and tokens[-1] in ("memory", "max", "min"):
        # a name is never also a namespace (memexport.cache.max.items exists): like
        # process.memory.usage, memexport.cache.max.size
        tokens.append("usage" if tokens[-1] == "memory" else "size")
    name = ".".join(["memexport", *tokens])
    if not otel_unit:
        otel_unit = _count_unit(tokens)
    return name, otel_unit


def _semconv_namespace(name: str) -> str | None:
    for ns in _SEMCONV_ATTRS:
        if name.startswith(ns):
            return ns
    return None


def _translate(values: dict[str, str]) -> Callable[[str], Any]:
    """A label-value converter mapping ``values``' keys and passing others through."""
    return lambda v: values.get(v, v)


def _generation(value: str) -> Any:
    return int(value) if value.isdigit() else value


class Attributes:
    """Translates one family's Prometheus labels into OpenTelemetry attributes."""

    __slots__ = ("_cache", "_kind", "_kind_attr", "_ns", "_sets")

    _MAX_SETS = 20_000

    def __init__(self, kind: Kind | None, otel_name: str | None) -> None:
        self._kind = kind
        self._ns = _semconv_namespace(otel_name) if otel_name else None
        # A kind that follows a semantic convention anywhere (pools: db.client.connection.*)
        # names its components with that convention's attribute on all its instruments.
        self._kind_attr = f"memexport.{kind.name}.name" if kind is not None else ""
        for m in kind.metrics if kind is not None else ():
            ns = _semconv_namespace(m.otel_name) if m.otel_name else None
            if ns is not None:
                self._kind_attr = _SEMCONV_ATTRS[ns][0]
                break
        self._cache: dict[str, tuple[str, Callable[[str], Any]]] = {}
        self._sets: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}

    def key(self, label: str) -> tuple[str, Callable[[str], Any]]:
        hit = self._cache.get(label)
        if hit is not None:
            return hit
        kind = self._kind
        out: tuple[str, Callable[[str], Any]]
        if kind is not None and label == kind.label:
            out = (self._kind_attr, str)
        elif self._ns is not None and label in _SEMCONV_ATTRS[self._ns][1]:
            attr, values = _SEMCONV_ATTRS[self._ns][1][label]
            out = (attr, _translate(values))
        elif label == "generation":
            out = (GENERATION_ATTR, _generation)
        elif label == "le":
            out = ("le", str)
        elif kind is not None:
            out = (f"memexport.{kind.name}.{label}", str)
        else:
            out = (f"memexport.{label}", str)
        self._cache[label] = out
        return out

    def __call__(self, labels: dict[str, str]) -> dict[str, Any]:
        """The attributes of one label set (cached: label sets repeat every collection)."""
        key = tuple(labels.items())
        out = self._sets.get(key)
        if out is None:
            out = {}
            for label, value in key:
                attr, conv = self.key(label)
                out[attr] = conv(value)
            if len(self._sets) >= self._MAX_SETS:
                self._sets.clear()
            self._sets[key] = out
        return out


def map_family(
    name: str,
    type_: str,
    unit: str = "",
    labels: Sequence[str] = (),
    kind: Kind | None = None,
    mdef: MetricDef | None = None,
    histograms: HistogramMode = "buckets",
    description: str = "",
) -> list[Mapping]:
    """The OpenTelemetry instrument(s) for one Prometheus family (several for a histogram)."""
    attrs = Attributes(kind, mdef.otel_name if mdef and type_ != "histogram" else None)
    keys = tuple(attrs.key(label)[0] for label in labels)
    if type_ == "histogram":
        base, ucum = otel_name_and_unit(name, "gauge", unit)
        out = []
        if histograms == "buckets":
            out.append(Mapping(name, base + ".bucket", "ObservableCounter", "{observation}",
                               (*keys, "le"), "bucket", description))
        out.append(Mapping(name, base + ".sum", "ObservableCounter", ucum, keys, "sum",
                           description))
        out.append(Mapping(name, base + ".count", "ObservableCounter", "{observation}", keys,
                           "count", description))
        return out
    prom = name if type_ != "counter" or name.endswith("_total") else name + "_total"
    if mdef is not None and mdef.otel_name:
        otel = mdef.otel_name
        instrument, ucum = SEMCONV.get(otel, (None, None))  # type: ignore[assignment]
        if instrument is None:
            instrument = "ObservableCounter" if type_ == "counter" else "ObservableGauge"
            ucum = otel_name_and_unit(name, type_, unit)[1]
        return [Mapping(prom, otel, instrument, ucum, keys, "", description)]
    otel, ucum = otel_name_and_unit(name, type_, unit)
    instrument = "ObservableCounter" if type_ == "counter" else "ObservableGauge"
    return [Mapping(prom, otel, instrument, ucum, keys, "", description)]


#: The standard series (prometheus_client's process and GC collectors), mapped to the
#: semantic conventions (``process.*``, ``cpython.gc.*``); ``part`` names the reading.
STANDARD: tuple[Mapping, ...] = (
    Mapping("process_resident_memory_bytes", "process.memory.usage", "ObservableUpDownCounter",
            "By", (), "rss", "The amount of physical memory in use (resident set size)."),
    Mapping("process_virtual_memory_bytes", "process.memory.virtual", "ObservableUpDownCounter",
            "By", (), "vms", "The amount of committed virtual memory."),
    Mapping("process_cpu_seconds_total", "process.cpu.time", "ObservableCounter", "s",
            ("cpu.mode",), "cpu", "Total CPU seconds broken down by CPU mode (user, system)."),
    Mapping("process_open_fds", "process.unix.file_descriptor.count", "ObservableUpDownCounter",
            "{file_descriptor}", (), "fds", "Number of UNIX file descriptors in use."),
    Mapping("process_max_fds", "memexport.process.file_descriptor.limit", "ObservableGauge",
            "{file_descriptor}", (), "max_fds", "Soft limit of open file descriptors."),
    Mapping("process_start_time_seconds", "process.uptime", "ObservableGauge", "s", (),
            "uptime", "The time the process has been running (from its start time)."),
    Mapping("python_gc_collections_total", "cpython.gc.collections", "ObservableCounter",
            "{collection}", (GENERATION_ATTR,), "collections",
            "Times each generation was collected."),
    Mapping("python_gc_objects_collected_total", "cpython.gc.collected_objects",
            "ObservableCounter", "{object}", (GENERATION_ATTR,), "collected",
            "Objects collected by the garbage collector, by generation."),
    Mapping("python_gc_objects_uncollectable_total", "cpython.gc.uncollectable_objects",
            "ObservableCounter", "{object}", (GENERATION_ATTR,), "uncollectable",
            "Uncollectable objects found by the garbage collector, by generation."),
)

