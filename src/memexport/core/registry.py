"""The registry: every component group of the process, read once per scrape.

Groups of (kind, name) and their components are in ``core.component``; the registry creates
groups (capping distinct names per kind), registers components, runs the collector's tick
jobs and reads everything into neutral ``Family`` objects for the exporters.

Nothing here runs on the application's hot path. Registration (cold path) and collection
(scrape) take the registry lock; weakref callbacks only append to a deque, so a collection
that triggers garbage collection cannot deadlock.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from memexport.core import forks, sizing
from memexport.core.checks import shown, validate_name
from memexport.core.component import (
    Component,
    Group,
    Index,
    Key,
    Profile,
    Reader,
    SizeSpec,
    _pulled_state,
    kind_key,
    number,
    profile_now,
    reading_at_death,
    resolve_profile,
)
from memexport.core.errors import ErrorLog
from memexport.core.model import Family, Kind, known_kind
from memexport.core.reading import FamilySink, GroupSnapshot, Sink, read_group

__all__ = [
    "OVERFLOW_NAME",
    "REGISTRY",
    "Component",
    "ErrorLog",
    "Group",
    "Index",
    "Key",
    "Profile",
    "Reader",
    "Registry",
    "SizeSpec",
    "kind_key",
    "profile_now",
    "resolve_profile",
    "validate_name",
]

#: The group name that components fold into once a kind has too many distinct names.
OVERFLOW_NAME = "__overflow__"
DEFAULT_MAX_NAMES = 1000

#: Time one collection may spend taking sizes no collector tick has taken yet.
FIRST_READS_SECONDS = 0.02

#: Collected members are folded at each collection, or by ``register`` past this many.
_DRAIN_AT = 1024
_NO_GROUPS: dict[str, Any] = {}


FamilySource = Callable[[], Iterable[Family]]


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
        self._collect_hooks: list[Callable[[Registry], None]] = []
        self._max_names = DEFAULT_MAX_NAMES
        self.set_max_names(max_names_per_kind)
        self.errors = ErrorLog()
        self.errors.declare("registry")
        me = weakref.ref(self)
        def after_fork() -> None:
            registry = me()
            if registry is not None:
                registry._after_fork()

        forks.after_fork_in_child(after_fork)
        self._durations: dict[str, float] = {}
        self.sizer = sizing.SizerJob(self)
        self.add_tick_job("sizer", self.sizer)
        self._first_reads_until = 0.0

    def _after_fork(self) -> None:
        """A lock held by another thread at fork time stays held forever in the child."""
        self._lock = threading.RLock()
        self._collect_lock = threading.Lock()
        self.errors.after_fork()

    # -- configuration -------------------------------------------------------------------

    def set_max_names(self, limit: int) -> None:
        """Cap distinct names per kind; later names fold into ``__overflow__``."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"max_names_per_kind must be a positive int, got {shown(limit)}")
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

    def add_collect_hook(self, hook: Callable[[Registry], None]) -> None:
        """Call ``hook(registry)`` at the start of every collection (once per hook)."""
        with self._lock:
            if hook not in self._collect_hooks:
                self._collect_hooks.append(hook)

    def add_tick_job(self, name: str, job: Callable[[float], None]) -> None:
        """Run ``job(deadline)`` on every process-collector tick (expensive sampling, such as
        deep sizes, belongs there); ``deadline`` is a ``time.perf_counter()`` value to stop by.
        Replaces a job of the same name; failures are counted under collector ``name``."""
        with self._lock:
            self._tick_jobs[name] = job
            self.errors.declare(name)

    def run_tick_jobs(self, budget_seconds: float = 0.05) -> None:
        """Called by the collector thread: run each tick job within the time budget.

        A job's failure, even ``SystemExit`` raised by user code it sampled, is counted and
        logged once: it must not end the collector thread.
        """
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
                raise ValueError(f"budget kind {shown(kind)} is not a kind with bytes: use "
                                 f"one of {usable}")
            group = self.group(k, validate_name(kind, name))  # the name cap applies
            if group.name == OVERFLOW_NAME:
                return  # counted in memexport_series_overflow_total: no series per name
            self._budgets[(kind, group.name)] = limit_bytes

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

        Kinds keep it to reach the group's shared counters without an object.
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
                        group = groups[OVERFLOW_NAME] = Group(kind, OVERFLOW_NAME, self)
                else:
                    group = groups[name] = Group(kind, name, self)
            return group

    def register(self, obj: Any, kind: Kind, name: str | Group,
                 profile: Profile | None = None, *, index: Index | None = None,
                 key: int | None = None) -> Component:
        """Create the record of ``obj`` in group (kind, name); ``obj`` is held weakly.

        With a ``profile`` (readers built once) and a ``Group`` from ``group()`` instead of a
        name, this is the cheap path for objects created by the thousand (agents,
        conversations): one weak reference and one dict entry. With an ``index``, the
        component is also entered there under ``key`` (default ``id(obj)``) until it dies.
        """
        if isinstance(name, Group):
            group = name
        else:  # lock-free lookup of a known group; the locked path creates and validates
            group = self._groups.get(kind.name, _NO_GROUPS).get(name)  # type: ignore[assignment]
            if group is None or group.kind is not kind:
                group = self.group(kind, name)
        if profile is None:
            profile = _empty_profile(kind)
        gone = group.dead.append if index is None else index.gone
        if profile.death is not None:
            gone = reading_at_death(gone)
        try:
            comp = Component(obj, gone)
        except TypeError:
            raise TypeError(
                f"memexport cannot track a {shown(type(obj).__qualname__)} object: it does not "
                f"support weak references (add '__weakref__' to its __slots__)"
            ) from None
        comp.group = group
        comp.profile = profile
        comp.pulled = _pulled_state(profile) if profile.pulled else None
        comp.size = None
        comp.size_mean = 0.0
        comp.size_cursor = 0
        comp.size_at = 0.0
        comp.state = None
        comp.key = id(obj) if key is None else key
        if index is not None:
            index.entries[comp.key] = comp
        # Keyed by the component's id: the referent may be unhashable. No lock: a dict store
        # is atomic, and collections copy the members under the GIL.
        group.members[id(comp)] = comp
        group.created.inc()
        if len(group.dead) > _DRAIN_AT:
            with self._lock:
                self._drain(group)
        return comp

    def unregister(self, comp: Component, index: Index | None = None) -> None:
        """Retire a live component now (``uninstrument``): its counts stay in the totals,
        those it made since the last scrape included."""
        obj = comp()
        if obj is not None and comp.pulled is not None:
            for i in range(len(comp.profile.pulled)):
                comp.read_pulled(i, obj, self.errors)
        del obj
        with self._lock:
            comp.group.retire(comp)
        if index is not None and index.entries.get(comp.key) is comp:
            index.entries.pop(comp.key, None)

    def _drain(self, group: Group) -> None:
        """Retire the group's members whose objects were collected (registry lock held)."""
        pop = group.dead.popleft
        while True:
            try:
                comp = pop()
            except IndexError:
                return
            group.retire(comp)

    # -- reading -------------------------------------------------------------------------

    def groups(self) -> list[Group]:
        """Every group, dead members folded first (for tick jobs such as the sizer)."""
        with self._lock:
            out = []
            for groups in self._groups.values():
                for group in groups.values():
                    self._drain(group)
                    out.append(group)
            return out

    def collect(self) -> list[Family]:
        """Read every group and source once; failures are counted and skipped."""
        sink = FamilySink()
        self.collect_into(sink)
        return sink.families

    def collect_into(self, sink: Sink) -> None:
        """``collect()`` into ``sink`` (the exposition writes text straight from the rows)."""
        with self._collect_lock:
            start = time.perf_counter()
            with self._lock:
                hooks = list(self._collect_hooks)
            for hook in hooks:
                try:
                    hook(self)
                except Exception as exc:
                    self.errors.record("registry", "collect hook", exc)
            # Sizes no collector tick has taken yet are taken here, within this budget; the
            # rest of a name's members are estimated from those sized (no first-scrape cliff).
            self._first_reads_until = start + FIRST_READS_SECONDS
            self._collect_components(sink)
            with self._lock:
                sources = list(self._sources.items())
            for source_name, source in sources:
                try:
                    families = list(source())
                except Exception as exc:
                    self.errors.record(source_name, source_name, exc)
                    continue
                for fam in families:
                    sink.family(fam)
            self.record_duration("registry", time.perf_counter() - start)
            for fam in self._self_families():
                sink.family(fam)

    def _snapshot(self, group: Group) -> GroupSnapshot:
        """What a collection reads of ``group``, taken under the registry lock."""
        self._drain(group)
        live = []
        for comp in list(group.members.values()):
            obj = comp()
            if obj is None:  # died after the drain: fold it now, not next scrape
                group.retire(comp)
            else:
                live.append((comp, obj))
        return GroupSnapshot(
            group, live, dict(group.retired), list(group.counters.items()),
            list(group.adders.items()), list(group.histograms.items()),
            group.created.value(), group.finalized)

    def _collect_components(self, sink: Sink) -> None:
        kinds = self.kinds()
        for kind in kinds:
            for m in kind.metrics:
                sink.declare(m.name, m.type, m.help, m.unit)
            if kind.bytes_metric:
                sink.declare(kind.budget_metric, "gauge",
                             f"Byte budget set with memexport.budget() for a {kind.name}; "
                             f"compare with {kind.bytes_metric}.", "bytes")
        with self._lock:
            groups = [g for by_name in self._groups.values() for g in by_name.values()]
        # One group at a time: what a group's read allocates is freed before the next, so a
        # scrape of many components leaves the cyclic GC little to do.
        lock, errors, until = self._lock, self.errors, self._first_reads_until
        for group in groups:
            with lock:
                snap = self._snapshot(group)
            read_group(sink, snap, errors, until)
            del snap
        with self._lock:
            budgets = dict(self._budgets)
        for key, limit in budgets.items():
            if key is None:
                continue
            kind_name, name = key
            kind = self._kinds[kind_name]
            sink.row(kind.budget_metric, kind, name, (), limit)

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
        coverage = self.sizer.coverage()
        if coverage is not None:
            out.append(Family("memexport_sizer_coverage_ratio", "gauge",
                              "Share of the components with a sampled size that the collector "
                              "sized in the last minute.", "ratio", [({}, coverage)]))
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
        for kind, _obj, value, _comp in self.bytes_by_object(kinds_seen=out):
            out[kind] += value
        return out

    def bytes_by_object(self, kinds_seen: dict[str, float] | None = None
                        ) -> list[tuple[str, Any, float, Component]]:
        """``(kind, object, bytes, component)`` for each live component whose kind has a
        bytes gauge, read now (for the RSS ledger, which needs objects to find components
        held inside other components): the object's own figure, else its sampled size.
        ``kinds_seen`` gets a 0.0 for every such kind, even if empty."""
        out: list[tuple[str, Any, float, Component]] = []
        for group in self.groups():
            metric = group.kind.bytes_metric
            if metric is None:
                continue
            key: Key = (metric, ())
            name = group.kind.name
            if kinds_seen is not None:
                kinds_seen.setdefault(name, 0.0)
            for comp in list(group.members.values()):
                obj = comp()
                if obj is None:
                    continue
                reader = comp.profile.readers.get(key)
                try:
                    v = reader(obj) if reader is not None else None
                    v = None if v is None else number(v)
                except Exception as exc:
                    self.errors.record(name, comp.source(key), exc)
                    continue
                if v is None:
                    v = comp.size
                if v is not None:
                    out.append((name, obj, float(v), comp))
        return out

    # -- introspection for tests and the demo --------------------------------------------

    def live_components(self) -> int:
        """How many tracked objects are alive now (for tests and the demo's status line)."""
        with self._lock:
            groups = [g for gs in self._groups.values() for g in gs.values()]
        return sum(1 for g in groups for c in list(g.members.values()) if c() is not None)


_EMPTY: dict[str, Profile] = {}


def _empty_profile(kind: Kind) -> Profile:
    p = _EMPTY.get(kind.name)
    if p is None or p.kind is not kind:
        p = _EMPTY[kind.name] = Profile(kind, {})
    return p


REGISTRY = Registry()
