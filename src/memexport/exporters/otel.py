"""OpenTelemetry export: the same catalogue as ``/metrics``, as observable instruments.

``use_opentelemetry(meter_provider=None)`` creates one observable instrument per metric family
of ``registry.collect()`` (and for the standard process/GC series) on the user's
``MeterProvider`` -- the global one by default, so every reader configured there (periodic
OTLP over HTTP or gRPC, ``PrometheusMetricReader``, the Prometheus remote-write exporter) and
every ``OTEL_*`` environment variable the SDK honours apply unchanged. Nothing here runs per
event: the application's ``Counter.inc()`` never touches OpenTelemetry; the values are read
from the in-process model when the SDK collects, and the whole model is read once per
collection cycle (the first callback of a cycle calls ``registry.collect()``, the others reuse
that result).

Mapping rules (the full table is in docs/metrics.md, printed by
``python -m memexport.exporters.otel``):

* names: semantic conventions where one exists (``process.memory.usage``, ``cpython.gc.*``,
  ``MetricDef.otel_name`` such as ``db.client.connection.count``); elsewhere
  ``memexport.<rest>`` from the Prometheus name, ``_`` -> ``.``, without ``_total`` and without
  the unit suffix (``memexport_cache_evicted_bytes_total`` -> ``memexport.cache.evicted``);
  a name that was only a unit gets ``memory.usage``/``duration``/``ratio``
  (``memexport_cache_bytes`` -> ``memexport.cache.memory.usage``).
* units (UCUM): ``_bytes`` -> ``By``, ``_seconds`` -> ``s``, ``_ratio`` -> ``1``, counts -> an
  annotation of the counted noun (``{request}``, ``{item}``).
* instruments: gauges -> ``ObservableGauge`` (``ObservableUpDownCounter`` where the semantic
  convention says updowncounter), counters -> ``ObservableCounter``.
* histograms: OpenTelemetry has no asynchronous histogram (specification issue #2713) and the
  Python SDK has no ``MetricProducer`` for pre-aggregated data yet (opentelemetry-python
  #4768), so each histogram is exported in the classic Prometheus shape, as three
  ``ObservableCounter``: ``<name>.bucket`` (cumulative count per bucket, attribute ``le``
  formatted as in Prometheus, ``+Inf`` included), ``<name>.sum`` and ``<name>.count``.
  ``histograms="count_sum"`` leaves the buckets out. Once OpenTelemetry can take a
  pre-aggregated histogram, the semantic-convention histograms (``db.client.connection.
  wait_time``) will be emitted instead; until then those names are left free.
* attributes: the kind label -> ``memexport.<kind>.name``, or the convention's own attribute
  on every instrument of a kind that follows one (``db.client.connection.pool.name`` for
  pools); other labels of a kind -> ``memexport.<kind>.<label>`` (on a semantic-convention
  instrument its attribute: ``db.client.connection.state``, ``in_use`` -> ``used``);
  ``generation`` -> ``cpython.gc.generation`` (an int); any other label ->
  ``memexport.<label>``.

Under ``opentelemetry-instrument`` nothing needs to be written: the ``opentelemetry_instrumentor``
entry point ``memexport`` (``MemexportInstrumentor``) calls ``use_opentelemetry()`` on the
provider the SDK configured from the ``OTEL_*`` variables; ``OTEL_PYTHON_DISABLED_
INSTRUMENTATIONS=memexport`` turns it off.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client.utils import floatToGoString

from memexport.core.counters import HistogramValue
from memexport.core.model import Family, Kind, MetricDef
from memexport.core.registry import REGISTRY, Registry

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

__all__ = [
    "STANDARD",
    "Mapping",
    "MemexportInstrumentor",
    "OpenTelemetryExport",
    "map_family",
    "mapping_table",
    "otel_name_and_unit",
    "use_opentelemetry",
]

log = logging.getLogger("memexport")

#: The collector name under which failures of this exporter are counted.
COLLECTOR = "opentelemetry"
HistogramMode = Literal["buckets", "count_sum"]
InstrumentType = Literal["ObservableGauge", "ObservableCounter", "ObservableUpDownCounter"]

#: A collection that finds the last one older than this re-reads the model even if the
#: cycle detection did not see a new cycle (a safety net; cycles take milliseconds).
_MAX_SNAPSHOT_AGE = 5.0

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
_GENERATION_ATTR = "cpython.gc.generation"


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


class _Attributes:
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
            out = (attr, lambda v, m=values: m.get(v, v))
        elif label == "generation":
            out = (_GENERATION_ATTR, lambda v: int(v) if v.isdigit() else v)
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
    attrs = _Attributes(kind, mdef.otel_name if mdef and type_ != "histogram" else None)
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


# -- the standard series (prometheus_client's process and GC collectors) --------------------


@dataclass
class _Standard:
    """Readings of the series prometheus_client's own collectors expose, for OpenTelemetry."""

    rss: float | None = None
    vms: float | None = None
    cpu: tuple[float, float] | None = None
    fds: float | None = None
    max_fds: float | None = None
    start: float | None = None
    gc: list[dict[str, int]] | None = None


#: The standard series, mapped to the semantic conventions (``process.*``, ``cpython.gc.*``).
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
            "{collection}", (_GENERATION_ATTR,), "collections",
            "Times each generation was collected."),
    Mapping("python_gc_objects_collected_total", "cpython.gc.collected_objects",
            "ObservableCounter", "{object}", (_GENERATION_ATTR,), "collected",
            "Objects collected by the garbage collector, by generation."),
    Mapping("python_gc_objects_uncollectable_total", "cpython.gc.uncollectable_objects",
            "ObservableCounter", "{object}", (_GENERATION_ATTR,), "uncollectable",
            "Uncollectable objects found by the garbage collector, by generation."),
)


class _StandardReader:
    """Reads RSS, CPU, descriptors and GC statistics with psutil and ``gc`` (fork-aware)."""

    def __init__(self, errors: Any) -> None:
        self._errors = errors
        self._pid = -1
        self._proc: Any = None

    def _read(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            self._errors.record(COLLECTOR, what, exc)
            return None

    def read(self) -> _Standard:
        import psutil

        pid = os.getpid()
        if pid != self._pid or self._proc is None:
            self._proc = psutil.Process(pid)
            self._pid = pid
        proc = self._proc
        out = _Standard()
        with proc.oneshot():
            mem = self._read("psutil memory_info()", proc.memory_info)
            if mem is not None:
                out.rss, out.vms = float(mem.rss), float(mem.vms)
            cpu = self._read("psutil cpu_times()", proc.cpu_times)
            if cpu is not None:
                out.cpu = (float(cpu.user), float(cpu.system))
            if hasattr(proc, "num_fds"):
                out.fds = self._read("psutil num_fds()", lambda: float(proc.num_fds()))
            out.start = self._read("psutil create_time()", lambda: float(proc.create_time()))
        try:
            import resource

            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            out.max_fds = float(soft) if soft != resource.RLIM_INFINITY else None
        except (ImportError, OSError, ValueError):
            pass
        out.gc = self._read("gc.get_stats()", gc.get_stats)
        return out


def _standard_observations(part: str, std: _Standard) -> list[tuple[dict[str, Any], float]]:
    if part in ("rss", "vms", "fds", "max_fds"):
        value = getattr(std, part)
        return [] if value is None else [({}, value)]
    if part == "cpu":
        return [] if std.cpu is None else [({"cpu.mode": "user"}, std.cpu[0]),
                                           ({"cpu.mode": "system"}, std.cpu[1])]
    if part == "uptime":
        return [] if std.start is None else [({}, max(0.0, time.time() - std.start))]
    key = {"collections": "collections", "collected": "collected",
           "uncollectable": "uncollectable"}[part]
    return [({_GENERATION_ATTR: gen}, float(stats.get(key, 0)))
            for gen, stats in enumerate(std.gc or [])]


# -- the exporter --------------------------------------------------------------------------


@dataclass
class _Snapshot:
    at: float
    families: dict[str, Family]
    standard: _Standard | None


class _FamilyInstruments:
    """The instruments of one family and how its samples become observations."""

    __slots__ = ("attrs", "mappings", "prom")

    def __init__(self, prom: str, mappings: list[Mapping], attrs: _Attributes) -> None:
        self.prom = prom
        self.mappings = mappings
        self.attrs = attrs


def _finite(value: float) -> bool:
    return math.isfinite(value)


class OpenTelemetryExport:
    """memexport's observable instruments on one ``MeterProvider``; ``shutdown()`` mutes them.

    Created by ``use_opentelemetry()``. Families that appear after creation (a kind declared
    later, the process collector started later) get their instruments right after the
    collection that first sees them, and report from the next one on.
    """

    def __init__(self, meter: Meter, registry: Registry = REGISTRY,
                 histograms: HistogramMode = "buckets", standard: bool = True) -> None:
        self.registry = registry
        self.histograms = histograms
        self.collections = 0  # registry.collect() calls made for OpenTelemetry
        self._meter = meter
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._families: dict[str, _FamilyInstruments] = {}
        self._otel_names: dict[str, str] = {}  # otel name -> prometheus family
        self._snapshot: _Snapshot | None = None
        self._served: set[str] = set()
        self._pending: set[str] = set()
        self._closed = False
        self._kind_index: dict[str, tuple[Kind, MetricDef | None]] = {}
        self._kinds_seen = -1
        self._standard = _StandardReader(registry.errors) if standard else None
        registry.errors.declare(COLLECTOR)
        if standard:
            for m in STANDARD:
                self._create(m, self._standard_callback(m))
        families = self._collect()
        self._sync(families)

    # -- reading, once per collection cycle ----------------------------------------------

    def _collect(self) -> list[Family]:
        try:
            families = self.registry.collect()
        except Exception as exc:  # never raise into the SDK's collection
            self.registry.errors.record(COLLECTOR, "registry.collect()", exc)
            return []
        self.collections += 1
        return families

    def _read(self, key: str) -> _Snapshot:
        """The model as read for this collection cycle: the first callback of a cycle reads
        it (a callback that was already served in the cached cycle starts a new one)."""
        new: list[Family] | None = None
        with self._lock:
            snap = self._snapshot
            if (snap is None or key in self._served
                    or time.monotonic() - snap.at > _MAX_SNAPSHOT_AGE):
                new = self._collect()
                std = self._standard.read() if self._standard is not None else None
                snap = self._snapshot = _Snapshot(time.monotonic(),
                                                  {f.name: f for f in new}, std)
                self._served = set()
            self._served.add(key)
        if new is not None:
            self._schedule_new(new)
        return snap

    def _schedule_new(self, families: list[Family]) -> None:
        """Create instruments for families seen for the first time -- after this
        collection, on a short-lived thread: the SDK holds its lock while it collects."""
        with self._lock:
            missing = [f for f in families if f.name not in self._families
                       and f.name not in self._pending]
            if not missing or self._closed:
                return
            self._pending.update(f.name for f in missing)
        threading.Thread(target=self._sync, args=(missing,), name="memexport-otel-sync",
                         daemon=True).start()

    # -- instruments ---------------------------------------------------------------------

    def _kinds(self) -> dict[str, tuple[Kind, MetricDef | None]]:
        kinds = self.registry.kinds()
        if len(kinds) != self._kinds_seen:
            index: dict[str, tuple[Kind, MetricDef | None]] = {}
            for kind in kinds:
                for m in kind.metrics:
                    index[m.name] = (kind, m)
                if kind.bytes_metric:
                    index[kind.budget_metric] = (kind, None)
            self._kind_index, self._kinds_seen = index, len(kinds)
        return self._kind_index

    def _sync(self, families: Iterable[Family]) -> None:
        with self._create_lock:
            index = self._kinds()
            for fam in families:
                with self._lock:
                    self._pending.discard(fam.name)
                if fam.name in self._families:
                    continue
                kind, mdef = index.get(fam.name, (None, None))
                if kind is not None:
                    labels = [kind.label, *(mdef.labels if mdef else ())]
                else:
                    labels = sorted({k for lab, _ in fam.samples for k in lab})
                try:
                    mappings = map_family(fam.name, fam.type, fam.unit, labels, kind, mdef,
                                          self.histograms, fam.help)
                except Exception as exc:
                    self.registry.errors.record(COLLECTOR, f"mapping {fam.name}", exc)
                    continue
                taken = [m.name for m in mappings if m.name in self._otel_names]
                if taken:
                    self.registry.errors.record(
                        COLLECTOR, f"mapping {fam.name}",
                        ValueError(f"OpenTelemetry name {taken[0]!r} of {fam.name!r} is "
                                   f"already used by {self._otel_names[taken[0]]!r}"))
                    continue
                attrs = _Attributes(kind, mdef.otel_name if mdef and fam.type != "histogram"
                                    else None)
                fi = _FamilyInstruments(fam.name, mappings, attrs)
                self._families[fam.name] = fi
                for m in mappings:
                    try:
                        self._create(m, self._family_callback(fi, m))
                    except Exception as exc:
                        self.registry.errors.record(COLLECTOR, f"instrument {m.name}", exc)

    def _create(self, m: Mapping, callback: Callable[[CallbackOptions], Iterable[Observation]]
                ) -> None:
        factory = {
            "ObservableGauge": self._meter.create_observable_gauge,
            "ObservableCounter": self._meter.create_observable_counter,
            "ObservableUpDownCounter": self._meter.create_observable_up_down_counter,
        }[m.instrument]
        factory(m.name, callbacks=[callback], unit=m.unit, description=m.description)
        self._otel_names[m.name] = m.prometheus

    def _family_callback(self, fi: _FamilyInstruments, m: Mapping
                         ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        from opentelemetry.metrics import Observation

        key = m.name
        part = m.part

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            if self._closed:
                return []
            try:
                fam = self._read(key).families.get(fi.prom)
                if fam is None:
                    return []
                out: list[Observation] = []
                attrs = fi.attrs
                for labels, value in fam.samples:
                    a = attrs(labels)
                    if isinstance(value, HistogramValue):
                        if part == "sum":
                            if _finite(value.sum):
                                out.append(Observation(value.sum, a))
                        elif part == "count":
                            out.append(Observation(value.count, a))
                        else:
                            for bound, n in zip(value.bounds, value.cumulative, strict=False):
                                out.append(Observation(n, {**a, "le": floatToGoString(bound)}))
                            out.append(Observation(value.count, {**a, "le": "+Inf"}))
                    elif _finite(value):
                        out.append(Observation(value, a))
                return out
            except Exception as exc:
                self.registry.errors.record(COLLECTOR, f"observing {key}", exc)
                return []

        return callback

    def _standard_callback(self, m: Mapping
                           ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        from opentelemetry.metrics import Observation

        key = m.name

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            if self._closed:
                return []
            try:
                std = self._read(key).standard
                if std is None:
                    return []
                return [Observation(v, a) for a, v in _standard_observations(m.part, std)
                        if _finite(v)]
            except Exception as exc:
                self.registry.errors.record(COLLECTOR, f"observing {key}", exc)
                return []

        return callback

    # -- introspection -------------------------------------------------------------------

    def instruments(self) -> list[Mapping]:
        """Every instrument created so far (standard series first)."""
        out = list(STANDARD) if self._standard is not None else []
        with self._create_lock:
            for fi in self._families.values():
                out.extend(fi.mappings)
        return out

    def shutdown(self) -> None:
        """Mute the instruments (OpenTelemetry cannot remove them) and forget this provider."""
        self._closed = True
        with _exports_lock:
            for key, export in list(_exports.items()):
                if export is self:
                    del _exports[key]


_exports: dict[Any, OpenTelemetryExport] = {}
_exports_lock = threading.Lock()
_GLOBAL = object()


def use_opentelemetry(
    meter_provider: MeterProvider | None = None,
    *,
    registry: Registry = REGISTRY,
    histograms: HistogramMode = "buckets",
    standard: bool = True,
    collector: bool = True,
    collector_interval: float = 15.0,
) -> OpenTelemetryExport:
    """Export memexport's metrics as OpenTelemetry observable instruments.

    ``meter_provider`` defaults to the global one (configured by the SDK, ``opentelemetry-
    instrument`` or ``metrics.set_meter_provider``; instruments created before it is set are
    forwarded to it). ``histograms="count_sum"`` leaves histogram buckets out; ``standard=False``
    leaves out ``process.*``/``cpython.gc.*`` (when another instrumentation already reports
    them). ``collector`` starts the process collector thread (every ``collector_interval``
    seconds) unless it already runs, as ``start_http_server`` does.
    Calling it again for the same provider returns the existing export.
    """
    if histograms not in ("buckets", "count_sum"):
        raise ValueError(f"histograms must be 'buckets' or 'count_sum', got {histograms!r}")
    if not isinstance(standard, bool):
        raise ValueError(f"standard must be True or False, got {standard!r}")
    try:
        from opentelemetry import metrics
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("memexport.use_opentelemetry needs opentelemetry-api and "
                          "opentelemetry-sdk: pip install 'memexport[otel]'") from exc
    from memexport import __version__

    if meter_provider is not None and not hasattr(meter_provider, "get_meter"):
        raise ValueError(f"meter_provider must be an OpenTelemetry MeterProvider, got "
                         f"{meter_provider!r}")
    key: Any = (_GLOBAL if meter_provider is None else id(meter_provider), id(registry))
    with _exports_lock:
        export = _exports.get(key)
        if export is None:
            meter = (metrics.get_meter("memexport", __version__) if meter_provider is None
                     else meter_provider.get_meter("memexport", __version__))
            export = OpenTelemetryExport(meter, registry, histograms, standard)
            _exports[key] = export
            if meter_provider is not None:
                try:
                    weakref.finalize(meter_provider, _forget, key)
                except TypeError:  # not weak-referenceable: kept until shutdown()
                    pass
    if collector:
        from memexport.process import collector as process

        running = getattr(process, "_collector", None)
        if running is None or running.registry is not registry or not running.running:
            process.start_collector(collector_interval, registry=registry)
        # else: leave the running collector's interval as start_http_server() set it
    return export


def _forget(key: Any) -> None:
    with _exports_lock:
        _exports.pop(key, None)


def _after_fork_in_child() -> None:
    """A fork during a collection must not leave the child with a held lock or a stale read."""
    global _exports_lock
    _exports_lock = threading.Lock()
    for export in list(_exports.values()):
        export._lock = threading.Lock()
        export._create_lock = threading.Lock()
        export._snapshot = None
        export._served = set()
        export._pending = set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class MemexportInstrumentor:
    """The ``opentelemetry_instrumentor`` entry point: ``opentelemetry-instrument`` calls
    ``instrument()`` after configuring the SDK from the ``OTEL_*`` environment variables."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def instrument(self, **kwargs: Any) -> None:
        try:
            use_opentelemetry(kwargs.get("meter_provider"))
        except Exception as exc:  # never break the application's start
            log.warning("memexport: OpenTelemetry export not started (%s: %s)",
                        type(exc).__name__, exc)

    def uninstrument(self, **kwargs: Any) -> None:
        with _exports_lock:
            export = _exports.get((_GLOBAL, id(REGISTRY)))
        if export is not None:
            export.shutdown()


# -- documentation -------------------------------------------------------------------------


def _catalogue_rows(text: str) -> list[tuple[str, str, str, list[str]]]:
    """``(name, type, unit, labels)`` of every metric row of docs/metrics.md's kind tables."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        if not name.replace("_", "").replace(":", "").isalnum():
            continue
        labels = [c.strip().strip("`") for c in cells[3].split(",") if c.strip().strip("`")]
        rows.append((name, cells[1], cells[2], labels))
    return rows


def _known_kinds() -> list[Kind]:
    """Every ``Kind`` declared by a module of the memexport package (for the docs table)."""
    import importlib
    import pkgutil

    import memexport

    kinds: dict[str, Kind] = {}
    for info in pkgutil.walk_packages(memexport.__path__, "memexport."):
        if info.name.startswith(("memexport.bench", "memexport.demo", "memexport.cli")):
            continue
        try:
            mod = importlib.import_module(info.name)
        except Exception:  # an optional integration whose library is missing
            continue
        for value in vars(mod).values():
            if isinstance(value, Kind):
                kinds.setdefault(value.name, value)
    return [kinds[name] for name in sorted(kinds)]


#: Prometheus series with no OpenTelemetry instrument, and where their information goes.
NOT_EXPORTED = {
    "python_info": "resource attributes `process.runtime.name`, `process.runtime.version` "
                   "(SDK process resource detector)",
}


def mapping_table(catalogue: str, histograms: HistogramMode = "buckets") -> str:
    """The markdown table of docs/metrics.md's ``## OpenTelemetry mapping`` section: the
    standard series, the catalogue's series outside any kind, then every kind declared by a
    memexport module (sorted by kind), each metric followed by its budget."""
    kinds = _known_kinds()
    kind_metrics = {m.name for k in kinds for m in k.metrics} | {
        k.budget_metric for k in kinds if k.bytes_metric}
    lines = ["| Prometheus name | OpenTelemetry name | instrument | unit | attributes |",
             "|---|---|---|---|---|"]
    seen: set[str] = set()

    def rows(name: str, type_: str, unit: str, labels: Sequence[str], kind: Kind | None = None,
             mdef: MetricDef | None = None) -> None:
        if name in seen:
            return
        seen.add(name)
        if name in NOT_EXPORTED:
            lines.append(f"| `{name}` | — | — | — | {NOT_EXPORTED[name]} |")
            return
        for m in map_family(name, type_, unit, labels, kind, mdef, histograms):
            prom = f"{name}_{m.part}" if m.part else m.prometheus
            attrs = ", ".join(f"`{a}`" for a in m.attributes)
            lines.append(f"| `{prom}` | `{m.name}` | {m.instrument} | `{m.unit}` | {attrs} |")

    for m in STANDARD:
        seen.add(m.prometheus)
        attrs = ", ".join(f"`{a}`" for a in m.attributes)
        lines.append(f"| `{m.prometheus}` | `{m.name}` | {m.instrument} | `{m.unit}` | "
                     f"{attrs} |")
    for name, type_, unit, labels in _catalogue_rows(catalogue):
        if name not in kind_metrics and type_ in ("gauge", "counter", "histogram", "info"):
            rows(name, type_, unit, labels)
    for kind in kinds:
        for mdef in kind.metrics:
            rows(mdef.name, mdef.type, mdef.unit, [kind.label, *mdef.labels], kind, mdef)
        if kind.bytes_metric:
            rows(kind.budget_metric, "gauge", "bytes", [kind.label], kind)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m memexport.exporters.otel [docs/metrics.md]``: print the OpenTelemetry
    mapping table."""
    import sys
    from pathlib import Path

    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "docs/metrics.md"
    sys.stdout.write(mapping_table(path.read_text()) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
