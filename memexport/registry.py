"""The in-process model: component records grouped by (kind, name), read once per scrape.

A ``Component`` is the record of one instrumented object: a weak reference to it, its event
counters, and the readers that turn it into gauge values at scrape time. Components with the
same kind and name form a ``Group``: gauges are summed (or max'ed) over live members, and a
member's counters are folded into the group's totals when its object is garbage-collected,
so counters never go backwards while the process lives.

Nothing here runs on the application's hot path except ``Counter.inc`` and friends, which
the kind modules hand to their proxies. Registration (cold path) and collection (scrape)
take the registry lock; weakref callbacks only append to a deque, so a collection that
triggers garbage collection cannot deadlock.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from memexport.counters import Adder, Counter, Histogram, HistogramValue
from memexport.model import Family, Kind, LabelValues

__all__ = [
    "OVERFLOW_NAME",
    "REGISTRY",
    "Component",
    "ErrorLog",
    "Group",
    "Reader",
    "Registry",
    "validate_name",
]

log = logging.getLogger("memexport")

#: The group name that components fold into once a kind has too many distinct names.
OVERFLOW_NAME = "__overflow__"
DEFAULT_MAX_NAMES = 1000

#: A scrape-time reader: gets the instrumented object, returns a number or None (absent).
#: It must not close over the object itself, or the registry would keep it alive.
Reader = Callable[[Any], "float | int | None"]

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")

Key = tuple[str, LabelValues]


def validate_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid component name, else raise ``ValueError`` naming it."""
    if not isinstance(name, str):
        raise ValueError(f"{kind} name must be a str, got {name!r}")
    if name.startswith("__"):
        raise ValueError(f"{kind} name {name!r} is reserved: names starting with '__' are ours")
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-128 characters from A-Z a-z 0-9 _ . : / -"
        )
    return name


class ErrorLog:
    """Counts failed reads per collector and logs each failing source once."""

    _MAX_LOGGED = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._logged: set[tuple[str, str]] = set()

    def declare(self, collector: str) -> None:
        """Make ``collector`` appear with 0 errors, so rate() works from the first failure."""
        with self._lock:
            self._counts.setdefault(collector, 0)

    def record(self, collector: str, source: str, exc: BaseException) -> None:
        with self._lock:
            self._counts[collector] = self._counts.get(collector, 0) + 1
            key = (collector, source)
            first = key not in self._logged and len(self._logged) < self._MAX_LOGGED
            if first:
                self._logged.add(key)
        if first:
            log.warning(
                "memexport: reading %s failed (%s: %s); skipped, counted in "
                "memexport_collector_errors_total{collector=%r}, logged once",
                source, type(exc).__name__, exc, collector,
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Component:
    """The record of one instrumented object. Kind modules fill it right after ``register``."""

    __slots__ = (
        "adders",
        "counters",
        "group",
        "histograms",
        "pulled",
        "pulled_base",
        "pulled_last",
        "readers",
        "ref",
    )

    def __init__(self, group: Group) -> None:
        self.group = group
        self.ref: weakref.ref[Any] | None = None
        self.counters: dict[Key, Counter] = {}
        self.adders: dict[Key, Adder] = {}
        self.histograms: dict[Key, Histogram] = {}
        self.readers: dict[Key, Reader] = {}
        self.pulled: dict[Key, Reader] = {}
        self.pulled_last: dict[Key, float] = {}
        self.pulled_base: dict[Key, float] = {}

    def _key(self, metric: str, labels: LabelValues, *types: str) -> Key:
        mdef = self.group.kind.by_name.get(metric)
        if mdef is None or mdef.type not in types or mdef.source != "member":
            raise ValueError(f"{metric!r} is not a per-member {'/'.join(types)} of kind "
                             f"{self.group.kind.name!r}")
        if len(labels) != len(mdef.labels):
            raise ValueError(f"{metric!r} takes labels {mdef.labels}, got values {labels!r}")
        return (metric, labels)

    def counter(self, metric: str, *labels: str) -> Counter:
        """The event counter for ``metric{labels}``; hand its ``inc`` to the hot path."""
        key = self._key(metric, labels, "counter")
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = Counter()
        return c

    def adder(self, metric: str, *labels: str) -> Adder:
        """A counter of amounts (bytes, seconds) for ``metric{labels}``."""
        key = self._key(metric, labels, "counter")
        a = self.adders.get(key)
        if a is None:
            a = self.adders[key] = Adder()
        return a

    def histogram(self, metric: str, *labels: str) -> Histogram:
        key = self._key(metric, labels, "histogram")
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = Histogram(self.group.kind.by_name[metric].buckets)
        return h

    def gauge(self, metric: str, reader: Reader, *labels: str) -> None:
        """Read ``metric{labels}`` from the object at each scrape with ``reader(obj)``."""
        self.readers[self._key(metric, labels, "gauge")] = reader

    def pulled_counter(self, metric: str, reader: Reader, *labels: str) -> None:
        """A counter the object keeps itself (``cache_info().hits``), read at scrape time.

        A value lower than the last one is taken as a reset of the object's own counter
        (``cache_clear()``): the exported total carries on from where it was.
        """
        key = self._key(metric, labels, "counter")
        self.pulled[key] = reader
        self.pulled_last[key] = 0.0
        self.pulled_base[key] = 0.0

    def read_pulled(self, key: Key, obj: Any, errors: ErrorLog) -> float:
        last = self.pulled_last[key]
        try:
            raw = self.pulled[key](obj)
        except Exception as exc:
            errors.record(self.group.kind.name, self._source(key), exc)
            return self.pulled_base[key] + last
        if raw is None:
            return self.pulled_base[key] + last
        raw = float(raw)
        if raw < last:
            self.pulled_base[key] += last
        self.pulled_last[key] = raw
        return self.pulled_base[key] + raw

    def counter_totals(self) -> dict[Key, float]:
        """Every counter's current value; pulled ones as last read (for folding at death)."""
        out: dict[Key, float] = {k: float(c.value()) for k, c in self.counters.items()}
        for k, a in self.adders.items():
            out[k] = out.get(k, 0.0) + a.value()
        for k in self.pulled:
            out[k] = out.get(k, 0.0) + self.pulled_base[k] + self.pulled_last[k]
        return out

    def _source(self, key: Key) -> str:
        metric, labels = key
        return f"{self.group.kind.name} {self.group.name!r} {metric}{list(labels) or ''}"


class Group:
    """All components of one kind and name: live members plus the totals of finalized ones."""

    __slots__ = ("created", "finalized", "kind", "members", "name", "retired", "retired_hist")

    def __init__(self, kind: Kind, name: str) -> None:
        self.kind = kind
        self.name = name
        self.members: dict[int, Component] = {}  # id(component.ref) -> component
        self.retired: dict[Key, float] = {}
        self.retired_hist: dict[Key, HistogramValue] = {}
        self.created = 0
        self.finalized = 0

    def retire(self, comp: Component) -> None:
        for key, value in comp.counter_totals().items():
            self.retired[key] = self.retired.get(key, 0.0) + value
        for key, hist in comp.histograms.items():
            value = hist.value()
            old = self.retired_hist.get(key)
            self.retired_hist[key] = value if old is None else old.merged(value)
        self.finalized += 1


FamilySource = Callable[[], Iterable[Family]]


class Registry:
    """All component groups of the process, plus extra family sources (the process collector)."""

    def __init__(self, max_names_per_kind: int = DEFAULT_MAX_NAMES) -> None:
        self._lock = threading.RLock()
        self._collect_lock = threading.Lock()
        self._kinds: dict[str, Kind] = {}
        self._groups: dict[str, dict[str, Group]] = {}
        self._by_ref: dict[int, Component] = {}  # id(component.ref) -> component
        self._dead: deque[weakref.ref[Any]] = deque()
        self._overflow: dict[str, int] = {}
        self._budgets: dict[tuple[str, str] | None, float] = {}
        self._sources: dict[str, FamilySource] = {}
        self._tick_jobs: dict[str, Callable[[float], None]] = {}
        self._max_names = DEFAULT_MAX_NAMES
        self.set_max_names(max_names_per_kind)
        self.errors = ErrorLog()
        self.errors.declare("registry")
        if hasattr(os, "register_at_fork"):
            me = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (r := me()) and r._after_fork())
        self._durations: dict[str, float] = {}

    def _after_fork(self) -> None:
        """A lock held by another thread at fork time stays held forever in the child."""
        self._lock = threading.RLock()
        self._collect_lock = threading.Lock()
        self.errors._lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------

    def set_max_names(self, limit: int) -> None:
        """Cap distinct names per kind; later names fold into ``__overflow__``."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"max_names_per_kind must be a positive int, got {limit!r}")
        self._max_names = limit

    def add_kind(self, kind: Kind) -> Kind:
        """Declare a component kind; declaring the same kind again is a no-op."""
        with self._lock:
            known = self._kinds.get(kind.name)
            if known is not None:
                if known != kind:
                    raise ValueError(f"kind {kind.name!r} is already declared differently")
                return known
            self._kinds[kind.name] = kind
            self._groups[kind.name] = {}
            self._overflow[kind.name] = 0
            self.errors.declare(kind.name)
            return kind

    def kinds(self) -> list[Kind]:
        with self._lock:
            return list(self._kinds.values())

    def add_source(self, name: str, source: FamilySource) -> None:
        """Add a callable whose families join every collection (replaces one of that name)."""
        with self._lock:
            self._sources[name] = source
            self.errors.declare(name)

    def add_tick_job(self, name: str, job: Callable[[float], None]) -> None:
        """Run ``job(deadline)`` on every process-collector tick (expensive sampling, such as
        deep sizes, belongs there); ``deadline`` is a ``time.perf_counter()`` value to stop by.
        Replaces a job of the same name; failures are counted under collector ``name``."""
        with self._lock:
            self._tick_jobs[name] = job
            self.errors.declare(name)

    def run_tick_jobs(self, budget_seconds: float = 0.05) -> None:
        """Called by the collector thread: run each tick job within the time budget."""
        with self._lock:
            jobs = list(self._tick_jobs.items())
        for name, job in jobs:
            start = time.perf_counter()
            try:
                job(start + budget_seconds)
            except Exception as exc:
                self.errors.record(name, name, exc)
            self.record_duration(name, time.perf_counter() - start)

    def set_budget(self, limit_bytes: float, kind: str | None, name: str | None) -> None:
        with self._lock:
            if kind is None:
                self._budgets[None] = limit_bytes
                return
            k = self._kinds.get(kind)
            if k is None or k.bytes_metric is None:
                usable = sorted(n for n, kk in self._kinds.items() if kk.bytes_metric)
                raise ValueError(f"budget kind {kind!r} is not a kind with bytes: use one of "
                                 f"{usable}")
            self._budgets[(kind, validate_name(kind, name))] = limit_bytes

    def clear_budget(self, kind: str | None = None, name: str | None = None) -> None:
        with self._lock:
            self._budgets.pop(None if kind is None else (kind, name or ""), None)

    # -- registration (cold path) --------------------------------------------------------

    def register(self, obj: Any, kind: Kind, name: str) -> Component:
        """Create the record of ``obj`` in group (kind, name); ``obj`` is held weakly."""
        validate_name(kind.name, name)
        with self._lock:
            if self._kinds.get(kind.name) is not kind:
                self.add_kind(kind)
            self._drain()
            groups = self._groups[kind.name]
            group = groups.get(name)
            if group is None:
                if len(groups) - (OVERFLOW_NAME in groups) >= self._max_names:
                    self._overflow[kind.name] += 1
                    name = OVERFLOW_NAME
                    group = groups.get(name)
                if group is None:
                    group = groups[name] = Group(kind, name)
            comp = Component(group)
            try:
                ref = weakref.ref(obj, self._dead.append)
            except TypeError:
                raise TypeError(
                    f"memexport cannot track a {type(obj).__qualname__} object: it does not "
                    f"support weak references (add '__weakref__' to its __slots__)"
                ) from None
            # Keyed by the ref's id, not the ref: the referent may be unhashable. The
            # component holds the ref, so the id stays unique until the component retires.
            comp.ref = ref
            group.members[id(ref)] = comp
            self._by_ref[id(ref)] = comp
            group.created += 1
            return comp

    def _retire(self, comp: Component) -> None:
        ref = comp.ref
        if ref is None or self._by_ref.pop(id(ref), None) is None:
            return
        comp.group.members.pop(id(ref), None)
        comp.group.retire(comp)

    def _drain(self) -> None:
        pop = self._dead.popleft
        while True:
            try:
                ref = pop()
            except IndexError:
                return
            comp = self._by_ref.get(id(ref))
            if comp is not None and comp.ref is ref:
                self._retire(comp)

    # -- collection (scrape) -------------------------------------------------------------

    def collect(self) -> list[Family]:
        """Read every group and source once; failures are counted and skipped."""
        with self._collect_lock:
            start = time.perf_counter()
            families = self._collect_components()
            with self._lock:
                sources = list(self._sources.items())
            for source_name, source in sources:
                try:
                    families.extend(source())
                except Exception as exc:
                    self.errors.record(source_name, source_name, exc)
            self.record_duration("registry", time.perf_counter() - start)
            families.extend(self._self_families())
            return families

    def _snapshot(self) -> list[tuple[Group, list[tuple[Component, Any]], dict[Key, float],
                                     dict[Key, HistogramValue], int, int]]:
        out = []
        with self._lock:
            self._drain()
            for groups in self._groups.values():
                for group in groups.values():
                    live = []
                    for comp in list(group.members.values()):
                        obj = comp.ref() if comp.ref is not None else None
                        if obj is None:  # died after the drain: fold it now, not next scrape
                            self._retire(comp)
                        else:
                            live.append((comp, obj))
                    out.append((group, live, dict(group.retired), dict(group.retired_hist),
                                group.created, group.finalized))
        return out

    def _collect_components(self) -> list[Family]:
        families: dict[str, Family] = {}
        for kind in self.kinds():
            for m in kind.metrics:
                families[m.name] = Family(m.name, m.type, m.help, m.unit)
            if kind.bytes_metric:
                families[kind.budget_metric] = Family(
                    kind.budget_metric, "gauge",
                    f"Byte budget set with memexport.budget() for a {kind.name}; compare with "
                    f"{kind.bytes_metric}.", "bytes")
        for snap in self._snapshot():
            self._collect_group(families, *snap)
        with self._lock:
            budgets = dict(self._budgets)
        for key, limit in budgets.items():
            if key is None:
                continue
            kind_name, name = key
            kind = self._kinds[kind_name]
            families[kind.budget_metric].add({kind.label: name}, limit)
        return list(families.values())

    def _collect_group(self, families: dict[str, Family], group: Group,
                       live: list[tuple[Component, Any]], retired: dict[Key, float],
                       retired_hist: dict[Key, HistogramValue], created: int,
                       finalized: int) -> None:
        kind = group.kind
        errors = self.errors
        gauges: dict[Key, list[float]] = {}
        failed: set[Key] = set()
        counters = retired
        hists = retired_hist
        for comp, obj in live:
            for key, reader in comp.readers.items():
                try:
                    v = reader(obj)
                except Exception as exc:
                    errors.record(kind.name, comp._source(key), exc)
                    failed.add(key)
                    continue
                if v is None:
                    continue
                v = float(v)
                if not math.isnan(v):
                    gauges.setdefault(key, []).append(v)
            for key, c in comp.counters.items():
                counters[key] = counters.get(key, 0.0) + c.value()
            for key, a in comp.adders.items():
                counters[key] = counters.get(key, 0.0) + a.value()
            for key in comp.pulled:
                counters[key] = counters.get(key, 0.0) + comp.read_pulled(key, obj, errors)
            for key, h in comp.histograms.items():
                old = hists.get(key)
                hists[key] = h.value() if old is None else old.merged(h.value())
        base = {kind.label: group.name}
        by_name = kind.by_name

        def labels_of(key: Key) -> dict[str, str]:
            return {**base, **dict(zip(by_name[key[0]].labels, key[1], strict=True))}

        for m in kind.metrics:
            if m.source == "live":
                families[m.name].add(base, float(len(live)))
            elif m.source == "created":
                families[m.name].add(base, float(created))
            elif m.source == "finalized":
                families[m.name].add(base, float(finalized))
        for key, vs in sorted(gauges.items()):
            if key in failed:  # a partial sum would be a made-up value: leave it absent
                continue
            agg = sum(vs) if by_name[key[0]].agg == "sum" else max(vs)
            families[key[0]].add(labels_of(key), agg)
        for key, v in sorted(counters.items()):
            families[key[0]].add(labels_of(key), v)
        for key, hv in sorted(hists.items(), key=lambda kv: kv[0]):
            families[key[0]].add(labels_of(key), hv)

    def _self_families(self) -> list[Family]:
        overflow = Family("memexport_series_overflow_total", "counter",
                          "Components whose name was folded into the __overflow__ series "
                          "because their kind reached its cap of distinct names.")
        with self._lock:
            for kind, n in sorted(self._overflow.items()):
                overflow.add({"kind": kind}, float(n))
            budget = self._budgets.get(None)
        errors = Family("memexport_collector_errors_total", "counter",
                        "Reads that failed at scrape or collector time and were skipped.")
        for collector, n in sorted(self.errors.counts().items()):
            errors.add({"collector": collector}, float(n))
        durations = Family("memexport_collector_duration_seconds", "gauge",
                           "Time the last run of each memexport collector took.", "seconds")
        with self._lock:
            for collector, seconds in sorted(self._durations.items()):
                durations.add({"collector": collector}, seconds)
        out = [overflow, errors, durations]
        if budget is not None:
            out.append(Family("memexport_process_memory_budget_bytes", "gauge",
                              "Memory budget of the whole process set with memexport.budget(); "
                              "compare with process_resident_memory_bytes.", "bytes",
                              [({}, budget)]))
        return out

    def record_duration(self, collector: str, seconds: float) -> None:
        """Publish a collector's last run time (``memexport_collector_duration_seconds``)."""
        with self._lock:
            self._durations[collector] = seconds

    # -- introspection for tests and the demo --------------------------------------------

    def live_components(self) -> int:
        with self._lock:
            self._drain()
            return sum(1 for c in self._by_ref.values()
                       if c.ref is not None and c.ref() is not None)


REGISTRY = Registry()
