"""The OpenTelemetry exporter: observable instruments over the model, one read per cycle.

``OpenTelemetryExport`` creates one observable instrument per metric family of
``registry.collect()`` (and for the standard process/GC series) on a ``Meter``. Nothing here
runs per event: the values are read from the in-process model when the SDK collects, and the
whole model is read once per collection cycle (the first callback of a cycle calls
``registry.collect()``, the others reuse that result). Names, units and attributes come from
:mod:`memexport.exporters.otel.naming`.

Histograms: OpenTelemetry has no asynchronous histogram (specification issue #2713) and the
Python SDK has no ``MetricProducer`` for pre-aggregated data yet (opentelemetry-python #4768),
so each histogram is exported in the classic Prometheus shape, as three ``ObservableCounter``
(``.bucket`` with ``le``, ``.sum``, ``.count``); ``histograms="count_sum"`` leaves the buckets
out.
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.utils import floatToGoString

from memexport.core.counters import HistogramValue
from memexport.core.model import Family, Kind, MetricDef
from memexport.core.registry import REGISTRY, Registry
from memexport.exporters.otel.naming import (
    GENERATION_ATTR,
    STANDARD,
    Attributes,
    HistogramMode,
    Mapping,
    map_family,
)

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["COLLECTOR", "OpenTelemetryExport"]

#: The collector name under which failures of this exporter are counted.
COLLECTOR = "opentelemetry"

#: A collection that finds the last one older than this re-reads the model even if the
#: cycle detection did not see a new cycle (a safety net; cycles take milliseconds).
_MAX_SNAPSHOT_AGE = 5.0

Callback = Callable[["CallbackOptions"], Iterable["Observation"]]


def _go_string(value: float) -> str:
    """Prometheus's formatting of a bucket bound (``le``)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


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
    return [({GENERATION_ATTR: gen}, float(stats.get(key, 0)))
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

    def __init__(self, prom: str, mappings: list[Mapping], attrs: Attributes) -> None:
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
                 histograms: HistogramMode = "buckets", standard: bool = True, *,
                 on_cycle: Callable[[], object] | None = None,
                 on_shutdown: Callable[[OpenTelemetryExport], object] | None = None) -> None:
        self.registry = registry
        self._on_cycle = on_cycle  # run once per collection cycle, outside the lock
        self._on_shutdown = on_shutdown
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
            if self._on_cycle is not None:
                try:
                    self._on_cycle()
                except Exception as exc:  # never raise into the SDK's collection
                    self.registry.errors.record(COLLECTOR, "provider hooks", exc)
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
                attrs = Attributes(kind, mdef.otel_name if mdef and fam.type != "histogram"
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
                                out.append(Observation(n, {**a, "le": _go_string(bound)}))
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
        hook, self._on_shutdown = self._on_shutdown, None
        if hook is not None:
            hook(self)

    def _after_fork(self) -> None:
        """A fork during a collection must not leave the child with a held lock or a stale
        read (called from the one fork-hook list, core/forks.py)."""
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._snapshot = None
        self._served = set()
        self._pending = set()
