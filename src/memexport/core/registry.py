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
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from memexport.core.counters import Adder, Counter, Histogram
from memexport.core.model import Family, Kind, LabelValues, known_kind

__all__ = [
    "OVERFLOW_NAME",
    "REGISTRY",
    "Component",
    "ErrorLog",
    "Group",
    "Profile",
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

#: Collected members are folded at each collection, or by ``register`` past this many.
_DRAIN_AT = 1024
_NO_GROUPS: dict[str, Any] = {}

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


class Profile:
    """Scrape-time readers shared by every component of one kind built the same way.

    Built once per class of instrumented object (``registry.profile(kind, {...})``) and passed
    to ``register``, it makes tracking one more object cost a weak reference and two dict
    entries: nothing is validated or copied per object.
    """

    __slots__ = ("kind", "readers")

    def __init__(self, kind: Kind, readers: Mapping[str | Key, Reader]) -> None:
        self.kind = kind
        out: dict[Key, Reader] = {}
        for spec, reader in readers.items():
            metric, labels = (spec, ()) if isinstance(spec, str) else spec
            out[kind_key(kind, metric, tuple(labels), ("gauge",))] = reader
        self.readers = out


def kind_key(kind: Kind, metric: str, labels: LabelValues, types: tuple[str, ...]) -> Key:
    """Validate that ``metric{labels}`` is a per-member metric of ``kind`` of one of ``types``."""
    mdef = kind.by_name.get(metric)
    if mdef is None or mdef.type not in types or mdef.source != "member":
        raise ValueError(f"{metric!r} is not a per-member {'/'.join(types)} of kind "
                         f"{kind.name!r}")
    if len(labels) != len(mdef.labels) or not all(isinstance(v, str) for v in labels):
        raise ValueError(f"{metric!r} takes labels {mdef.labels}, got values {labels!r}")
    return (metric, labels)


class _Pulled:
    """A counter the object keeps itself, with reset detection (see ``pulled_counter``)."""

    __slots__ = ("base", "last", "reader")

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.last = 0.0
        self.base = 0.0

    @property
    def total(self) -> float:
        return self.base + self.last


class Component:
    """The record of one instrumented object: a weak reference, its readers, its group.

    Event counters, adders and histograms belong to the group (every member of one kind and
    name shares them), so an object's counts stay in the totals when it is collected and
    tracking an object allocates no counters. ``state`` is free for the kind module.
    """

    __slots__ = ("group", "pulled", "readers", "ref", "state")

    _NO_READERS: Mapping[Key, Reader] = {}

    def __init__(self, group: Group, profile: Profile | None = None) -> None:
        self.group = group
        self.ref: weakref.ref[Any] | None = None
        self.readers: Mapping[Key, Reader] = (
            profile.readers if profile is not None else self._NO_READERS)
        self.pulled: dict[Key, _Pulled] | None = None
        self.state: Any = None

    def counter(self, metric: str, *labels: str) -> Counter:
        """The group's event counter for ``metric{labels}``; hand its ``inc`` to the hot path."""
        return self.group.counter(metric, *labels)

    def adder(self, metric: str, *labels: str) -> Adder:
        """The group's counter of amounts (bytes, seconds) for ``metric{labels}``."""
        return self.group.adder(metric, *labels)

    def histogram(self, metric: str, *labels: str) -> Histogram:
        """The group's histogram for ``metric{labels}``."""
        return self.group.histogram(metric, *labels)

    def gauge(self, metric: str, reader: Reader, *labels: str) -> None:
        """Read ``metric{labels}`` from this object at each scrape with ``reader(obj)``."""
        key = kind_key(self.group.kind, metric, labels, ("gauge",))
        readers = dict(self.readers)  # copy on write: a profile's readers are shared
        readers[key] = reader
        self.readers = readers

    def pulled_counter(self, metric: str, reader: Reader, *labels: str) -> None:
        """A counter the object keeps itself (``cache_info().hits``), read at scrape time.

        A value lower than the last one is taken as a reset of the object's own counter
        (``cache_clear()``): the exported total carries on from where it was. When the object
        is collected, its last reading stays in the group's total.
        """
        key = kind_key(self.group.kind, metric, labels, ("counter",))
        if self.pulled is None:
            self.pulled = {}
        self.pulled[key] = _Pulled(reader)

    def read_pulled(self, key: Key, obj: Any, errors: ErrorLog) -> float:
        p = self.pulled[key]  # type: ignore[index]
        try:
            raw = p.reader(obj)
        except Exception as exc:
            errors.record(self.group.kind.name, self._source(key), exc)
            return p.total
        if raw is None:
            return p.total
        try:
            raw = float(raw)
        except (TypeError, ValueError) as exc:
            errors.record(self.group.kind.name, self._source(key), exc)
            return p.total
        if raw < p.last:
            p.base += p.last
        p.last = raw
        return p.total

    def _source(self, key: Key) -> str:
        metric, labels = key
        return f"{self.group.kind.name} {self.group.name!r} {metric}{list(labels) or ''}"


class Group:
    """All components of one kind and name: live members, shared counters, retired readings."""

    __slots__ = ("adders", "counters", "created", "dead", "finalized", "histograms", "kind",
                 "members", "name", "retired")

    def __init__(self, kind: Kind, name: str) -> None:
        self.kind = kind
        self.name = name
        self.members: dict[int, Component] = {}  # id(component.ref) -> component
        self.counters: dict[Key, Counter] = {}
        self.adders: dict[Key, Adder] = {}
        self.histograms: dict[Key, Histogram] = {}
        self.retired: dict[Key, float] = {}  # pulled counters of collected members
        # Weak references of collected members, appended by the weakref callback (which may
        # run in any thread, inside any lock) and folded under the registry lock later.
        self.dead: deque[weakref.ref[Any]] = deque()
        self.created = Counter()
        self.finalized = 0

    def counter(self, metric: str, *labels: str) -> Counter:
        c = self.counters.get((metric, labels))
        if c is None:
            key = kind_key(self.kind, metric, labels, ("counter",))
            c = self.counters.setdefault(key, Counter())
        return c

    def adder(self, metric: str, *labels: str) -> Adder:
        a = self.adders.get((metric, labels))
        if a is None:
            key = kind_key(self.kind, metric, labels, ("counter",))
            a = self.adders.setdefault(key, Adder())
        return a

    def histogram(self, metric: str, *labels: str) -> Histogram:
        h = self.histograms.get((metric, labels))
        if h is None:
            key = kind_key(self.kind, metric, labels, ("histogram",))
            h = self.histograms.setdefault(key, Histogram(self.kind.by_name[metric].buckets))
        return h

    def retire(self, comp: Component) -> None:
        """Fold a collected member's last readings into the totals (registry lock held)."""
        ref = comp.ref
        if ref is None or self.members.pop(id(ref), None) is None:
            return  # already retired
        if comp.pulled:
            for key, p in comp.pulled.items():
                self.retired[key] = self.retired.get(key, 0.0) + p.total
        self.finalized += 1


FamilySource = Callable[[], Iterable[Family]]


class _GroupSnapshot(NamedTuple):
    """What a collection reads of one group, taken under the registry lock."""

    group: Group
    live: list[tuple[Component, Any]]
    retired: dict[Key, float]
    counters: list[tuple[Key, Counter]]
    adders: list[tuple[Key, Adder]]
    histograms: list[tuple[Key, Histogram]]
    created: int
    finalized: int


class Registry:
    """All component groups of the process, plus extra family sources (the process collector)."""

    def __init__(self, max_names_per_kind: int = DEFAULT_MAX_NAMES) -> None:
        self._lock = threading.RLock()
        self._collect_lock = threading.Lock()
        self._kinds: dict[str, Kind] = {}
        self._groups: dict[str, dict[str, Group]] = {}
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
            except BaseException as exc:  # SystemExit from sampled user code: the others run
                self.errors.record(name, name, exc)
            self.record_duration(name, time.perf_counter() - start)

    def set_budget(self, limit_bytes: float, kind: str | None, name: str | None) -> None:
        with self._lock:
            if kind is None:
                self._budgets[None] = limit_bytes
                return
            k = self._kinds.get(kind) or known_kind(kind)
            if k is not None and k.bytes_metric is not None:
                self.add_kind(k)
            if k is None or k.bytes_metric is None:
                usable = sorted(n for n, kk in self._kinds.items() if kk.bytes_metric)
                raise ValueError(f"budget kind {kind!r} is not a kind with bytes: use one of "
                                 f"{usable}")
            self._budgets[(kind, validate_name(kind, name))] = limit_bytes

    def clear_budget(self, kind: str | None = None, name: str | None = None) -> None:
        with self._lock:
            self._budgets.pop(None if kind is None else (kind, name or ""), None)

    # -- registration (cold path) --------------------------------------------------------

    @property
    def wiring(self) -> Any:
        """Hold while registering and wiring a component (``with registry.wiring:``) so that
        no scrape sees it half wired; a scrape reads components outside this lock otherwise."""
        return self._lock

    def profile(self, kind: Kind, readers: Mapping[str | Key, Reader]) -> Profile:
        """Validate once a set of gauge readers that many components of ``kind`` share.

        Keys are metric names, or ``(metric, label_values)`` for metrics with labels.
        """
        return Profile(kind, readers)

    def group(self, kind: Kind, name: str) -> Group:
        """The group (kind, name), created on first use; folds into ``__overflow__`` past the cap.

        Kind modules may keep it to reach the group's shared counters without an object.
        """
        with self._lock:
            if self._kinds.get(kind.name) is not kind:
                self.add_kind(kind)
            groups = self._groups[kind.name]
            group = groups.get(name)
            if group is None:
                validate_name(kind.name, name)
                if len(groups) - (OVERFLOW_NAME in groups) >= self._max_names:
                    self._overflow[kind.name] += 1
                    group = groups.get(OVERFLOW_NAME)
                    if group is None:
                        group = groups[OVERFLOW_NAME] = Group(kind, OVERFLOW_NAME)
                else:
                    group = groups[name] = Group(kind, name)
            return group

    def register(self, obj: Any, kind: Kind, name: str | Group,
                 profile: Profile | None = None) -> Component:
        """Create the record of ``obj`` in group (kind, name); ``obj`` is held weakly.

        With a ``profile`` (gauge readers built once) and a ``Group`` from ``group()`` instead
        of a name, this is the cheap path for objects created by the thousand (agents,
        conversations): a weak reference and two dict entries.
        """
        if isinstance(name, Group):
            group = name
        else:  # lock-free lookup of a known group; the locked path creates and validates
            group = self._groups.get(kind.name, _NO_GROUPS).get(name)  # type: ignore[assignment]
            if group is None or group.kind is not kind:
                group = self.group(kind, name)
        comp = Component(group, profile)
        try:
            ref = weakref.ref(obj, group.dead.append)
        except TypeError:
            raise TypeError(
                f"memexport cannot track a {type(obj).__qualname__} object: it does not "
                f"support weak references (add '__weakref__' to its __slots__)"
            ) from None
        comp.ref = ref
        # Keyed by the ref's id, not the ref: the referent may be unhashable. The component
        # holds the ref, so the id stays unique until the component retires. No lock: a dict
        # store is atomic, and collections copy the members under the GIL.
        group.members[id(ref)] = comp
        group.created.inc()
        if len(group.dead) > _DRAIN_AT:
            with self._lock:
                self._drain(group)
        return comp

    def _drain(self, group: Group) -> None:
        """Retire the group's members whose objects were collected (registry lock held)."""
        pop = group.dead.popleft
        members = group.members
        while True:
            try:
                ref = pop()
            except IndexError:
                return
            comp = members.get(id(ref))
            if comp is not None and comp.ref is ref:
                group.retire(comp)

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

    def _snapshot(self) -> list[_GroupSnapshot]:
        out = []
        with self._lock:
            for groups in self._groups.values():
                for group in groups.values():
                    self._drain(group)
                    live = []
                    for comp in list(group.members.values()):
                        obj = comp.ref() if comp.ref is not None else None
                        if obj is None:  # died after the drain: fold it now, not next scrape
                            group.retire(comp)
                        else:
                            live.append((comp, obj))
                    out.append(_GroupSnapshot(
                        group, live, dict(group.retired), list(group.counters.items()),
                        list(group.adders.items()), list(group.histograms.items()),
                        group.created.value(), group.finalized))
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
            self._collect_group(families, snap)
        with self._lock:
            budgets = dict(self._budgets)
        for key, limit in budgets.items():
            if key is None:
                continue
            kind_name, name = key
            kind = self._kinds[kind_name]
            families[kind.budget_metric].add({kind.label: name}, limit)
        return list(families.values())

    def _collect_group(self, families: dict[str, Family], snap: _GroupSnapshot) -> None:
        group, live = snap.group, snap.live
        kind = group.kind
        errors = self.errors
        gauges: dict[Key, list[float]] = {}
        failed: set[Key] = set()
        counters = snap.retired
        for key, c in snap.counters:
            counters[key] = counters.get(key, 0.0) + c.value()
        for key, a in snap.adders:
            counters[key] = counters.get(key, 0.0) + a.value()
        hists = {key: h.value() for key, h in snap.histograms}
        for comp, obj in live:
            for key, reader in comp.readers.items():
                try:
                    v = reader(obj)
                    if v is None:
                        continue
                    v = float(v)  # a reader returning a list or a str fails here, counted
                except Exception as exc:
                    errors.record(kind.name, comp._source(key), exc)
                    failed.add(key)
                    continue
                if not math.isnan(v):
                    gauges.setdefault(key, []).append(v)
            if comp.pulled:
                for key in comp.pulled:
                    counters[key] = counters.get(key, 0.0) + comp.read_pulled(key, obj, errors)
        base = {kind.label: group.name}
        by_name = kind.by_name

        def labels_of(key: Key) -> dict[str, str]:
            return {**base, **dict(zip(by_name[key[0]].labels, key[1], strict=True))}

        for m in kind.metrics:
            if m.source == "live":
                families[m.name].add(base, float(len(live)))
            elif m.source == "created":
                families[m.name].add(base, float(snap.created))
            elif m.source == "finalized":
                families[m.name].add(base, float(snap.finalized))
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

    def bytes_by_kind(self) -> dict[str, float]:
        """Bytes held by the live components of each kind with a bytes gauge, summed now.

        Reads each live member's ``bytes_metric`` reader (the same value a scrape exports),
        for the RSS ledger on the collector thread; failures are counted and skipped.
        """
        out: dict[str, float] = {}
        for kind, _obj, value in self.bytes_by_object(kinds_seen=out):
            out[kind] += value
        return out

    def bytes_by_object(self, kinds_seen: dict[str, float] | None = None
                        ) -> list[tuple[str, Any, float]]:
        """``(kind, object, bytes)`` for each live component whose kind has a bytes gauge,
        read now (for the RSS ledger, which needs objects to find components held inside
        other components); ``kinds_seen`` gets a 0.0 for every such kind, even if empty."""
        out: list[tuple[str, Any, float]] = []
        with self._lock:
            groups = [g for gs in self._groups.values() for g in gs.values()
                      if g.kind.bytes_metric is not None]
        for group in groups:
            key: Key = (group.kind.bytes_metric, ())  # type: ignore[assignment]
            name = group.kind.name
            if kinds_seen is not None:
                kinds_seen.setdefault(name, 0.0)
            for comp in list(group.members.values()):
                obj = comp.ref() if comp.ref is not None else None
                reader = comp.readers.get(key) if obj is not None else None
                if reader is None:
                    continue
                try:
                    v = reader(obj)
                    if v is not None:
                        out.append((name, obj, float(v)))
                except Exception as exc:
                    self.errors.record(name, comp._source(key), exc)
        return out

    # -- introspection for tests and the demo --------------------------------------------

    def live_components(self) -> int:
        """How many tracked objects are alive now (for tests and the demo's status line)."""
        with self._lock:
            groups = [g for gs in self._groups.values() for g in gs.values()]
            return sum(1 for g in groups for c in list(g.members.values())
                       if c.ref is not None and c.ref() is not None)


REGISTRY = Registry()
