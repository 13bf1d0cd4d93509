"""The in-process model: component records grouped by (kind, name), read once per scrape.

A ``Component`` is the record of one instrumented object and, at the same time, the weak
reference to it: its group, the profile of readers that turn the object into gauge values at
scrape time, and a few slots of per-object state (pulled-counter readings, a sampled size).
Components with the same kind and name form a ``Group``: gauges are summed (or max'ed) over
live members, event counters belong to the group, and a member's pulled counters are folded
into the group's totals when its object is garbage-collected, so counters never go backwards
while the process lives.

Nothing here runs on the application's hot path except ``Counter.inc`` and friends, which
the kinds bind once per group. Registration (cold path) and collection (scrape) take the
registry lock; weakref callbacks only append to a deque, so a collection that triggers
garbage collection cannot deadlock.
"""

from __future__ import annotations

import array
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from memexport.core import forks, sizing
from memexport.core.checks import shown, validate_name
from memexport.core.counters import Adder, Counter, CountOf, Histogram
from memexport.core.errors import ErrorLog
from memexport.core.model import Family, Kind, LabelValues, known_kind

__all__ = [
    "OVERFLOW_NAME",
    "REGISTRY",
    "Component",
    "ErrorLog",
    "Group",
    "Index",
    "Profile",
    "Reader",
    "Registry",
    "SizeSpec",
    "profile_now",
    "resolve_profile",
    "validate_name",
]

#: The group name that components fold into once a kind has too many distinct names.
OVERFLOW_NAME = "__overflow__"
DEFAULT_MAX_NAMES = 1000

#: A scrape-time reader: gets the instrumented object, returns a number or None (absent).
#: It must not close over the object itself, or the registry would keep it alive.
Reader = Callable[[Any], "float | int | None"]

#: Time one collection may spend taking sizes no collector tick has taken yet.
FIRST_READS_SECONDS = 0.02

#: Collected members are folded at each collection, or by ``register`` past this many.
_DRAIN_AT = 1024
_NO_GROUPS: dict[str, Any] = {}

Key = tuple[str, LabelValues]


def number(value: Any) -> float:
    """A reader's result as a float: a number (or anything with ``__float__``), never a
    string that happens to parse, never negative or infinite (every gauge and counter of a
    kind counts or measures something); NaN is "unknown" (absent). Errors name the type."""
    if isinstance(value, str | bytes | bytearray):
        raise TypeError(f"a reader returned a {type(value).__name__}, not a number")
    v = float(value)
    if v < 0 or v == math.inf:
        raise ValueError("a reader returned a negative or infinite number")
    return v


def kind_key(kind: Kind, metric: str, labels: LabelValues, types: tuple[str, ...],
             sources: tuple[str, ...] = ("member",)) -> Key:
    """Validate that ``metric{labels}`` is a metric of ``kind`` of one of ``types``."""
    mdef = kind.by_name.get(metric)
    if mdef is None or mdef.type not in types or mdef.source not in sources:
        raise ValueError(f"{shown(metric)} is not a per-member {'/'.join(types)} of kind "
                         f"{kind.name!r}")
    if len(labels) != len(mdef.labels) or not all(isinstance(v, str) for v in labels):
        raise ValueError(f"{metric!r} takes labels {mdef.labels}, got values "
                         f"{shown(labels)}")
    return (metric, labels)


class SizeSpec(NamedTuple):
    """How to walk one shape of collection for its deep size (see ``instrument.sizing``).

    ``entries(obj)`` iterates the entries (``pairs``: each is a ``(key, value)`` made on the
    fly, the tuple itself not counted), ``length(obj)`` counts them, ``overhead(obj)`` is the
    bytes of the container itself.
    """

    entries: Callable[[Any], Iterable[Any]]
    length: Callable[[Any], int]
    overhead: Callable[[Any], int]
    pairs: bool = False


class Profile:
    """Scrape-time readers shared by every component of one kind built the same way.

    Built once per shape of instrumented object (``Profile(kind, {...})``) and passed to
    ``register``, it makes tracking one more object cost its component: nothing is validated
    or copied per object. ``pulled`` are counters the object keeps itself (``cache_info()``),
    ``size`` how to sample its deep size into the kind's ``bytes_metric``, ``death`` reads
    pulled counters as the object dies, where a shape can: it is called with the component
    from the weak reference's callback and returns raw readings in ``pulled`` order (see
    ``read_at_death``).
    """

    __slots__ = ("death", "extra", "kind", "pulled", "readers", "resolve", "size", "with_comp")

    def __init__(self, kind: Kind, readers: Mapping[str | Key, Reader],
                 pulled: Mapping[str | Key, Reader] | None = None,
                 size: SizeSpec | None = None,
                 death: Callable[[Component], list[float] | None] | None = None,
                 extra: Any = None,
                 resolve: Callable[[Any], Profile] | None = None,
                 with_comp: Mapping[str | Key, Callable[[Any, Component], Any]] | None = None
                 ) -> None:
        self.kind = kind
        self.readers: dict[Key, Reader] = {
            kind_key(kind, *_split(spec), ("gauge",)): r for spec, r in readers.items()}
        self.pulled: tuple[tuple[Key, Reader], ...] = tuple(
            (kind_key(kind, *_split(spec), ("counter",)), r)
            for spec, r in (pulled or {}).items())
        if size is not None and kind.bytes_metric is None:
            raise ValueError(f"kind {kind.name!r} has no bytes metric to sample a size into")
        self.size = size
        self.death = death
        #: What the kind's hot path needs of this shape (a history getter, a cleanup name).
        self.extra = extra
        #: Gauge readers called ``reader(obj, component)``: for what the component keeps
        #: (when memexport saw a cleanup run, the sampled size against a limit).
        self.with_comp: dict[Key, Callable[[Any, Component], Any]] = {
            kind_key(kind, *_split(spec), ("gauge",)): r
            for spec, r in (with_comp or {}).items()}
        #: Set on a placeholder profile: ``resolve(obj)`` gives the real one, found from the
        #: first instance read (instances of a decorated class are registered in ``__new__``,
        #: before their attributes exist).
        self.resolve = resolve

    def with_reader(self, key: Key, reader: Reader) -> Profile:
        p = self._copy()
        p.readers = {**self.readers, key: reader}
        return p

    def _copy(self) -> Profile:
        p = Profile.__new__(Profile)
        for attr in Profile.__slots__:
            setattr(p, attr, getattr(self, attr))
        return p

    def with_pulled(self, key: Key, reader: Reader) -> Profile:
        p = self._copy()
        p.pulled = (*self.pulled, (key, reader))
        return p


def _split(spec: str | Key) -> tuple[str, LabelValues]:
    return (spec, ()) if isinstance(spec, str) else (spec[0], tuple(spec[1]))


class Component(weakref.ref):  # type: ignore[type-arg]
    """The record of one instrumented object, and the weak reference to it.

    Event counters belong to the group (every member of one kind and name shares them), so
    an object's counts stay in the totals when it is collected and tracking an object
    allocates no counters. ``pulled`` holds ``[last, base]`` per pulled counter of the
    profile; ``size``/``size_mean``/``size_cursor``/``size_at`` the sampled deep size;
    ``state`` is free for the kind.
    """

    __slots__ = ("group", "key", "profile", "pulled", "size", "size_at", "size_cursor",
                 "size_mean", "state")

    group: Group
    key: int
    profile: Profile
    pulled: array.array[float] | None
    size: float | None
    size_mean: float
    size_cursor: int
    size_at: float
    state: Any

    @property
    def readers(self) -> Mapping[Key, Reader]:
        return self.profile.readers

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
        """Read ``metric{labels}`` from this object at each scrape (copy on write)."""
        key = kind_key(self.group.kind, metric, labels, ("gauge",))
        self.profile = self.profile.with_reader(key, reader)

    def pulled_counter(self, metric: str, reader: Reader, *labels: str) -> None:
        """A counter the object keeps itself (``cache_info().hits``), read at scrape time.

        A value lower than the last one is taken as a reset of the object's own counter
        (``cache_clear()``): the exported total carries on from where it was. When the object
        is collected, its last reading stays in the group's total.
        """
        key = kind_key(self.group.kind, metric, labels, ("counter",))
        self.profile = self.profile.with_pulled(key, reader)
        self.pulled = _pulled_state(self.profile, self.pulled)

    def read_pulled(self, i: int, obj: Any, errors: ErrorLog) -> float:
        """Pulled counter ``i`` of the profile, read now: its total (reset-proof)."""
        state = self.pulled
        assert state is not None
        key, reader = self.profile.pulled[i]
        try:
            raw = reader(obj)
            value = None if raw is None else number(raw)
        except (Exception, SystemExit) as exc:  # user code: never ends a scrape
            errors.record(self.group.kind.name, self.source(key), exc)
            return state[2 * i] + state[2 * i + 1]
        return self.fold_reading(i, value)

    def fold_reading(self, i: int, value: float | None) -> float:
        """Take ``value`` as the object's own count ``i`` now; return its total."""
        state = self.pulled
        assert state is not None
        last, base = state[2 * i], state[2 * i + 1]
        if value is None or math.isnan(value):
            return last + base
        if value < last:
            base += last
            state[2 * i + 1] = base
        state[2 * i] = value
        return value + base

    def pulled_totals(self) -> list[float]:
        """The last total of each pulled counter (what stays in the group at death)."""
        state = self.pulled
        if state is None:
            return []
        return [state[2 * i] + state[2 * i + 1] for i in range(len(state) // 2)]

    def source(self, key: Key) -> str:
        """Where a failed read came from, for the error log (no user data: names only)."""
        metric, labels = key
        return f"{self.group.kind.name} {self.group.name!r} {metric}{list(labels) or ''}"


def _pulled_state(profile: Profile, old: array.array[float] | None = None
                  ) -> array.array[float] | None:
    n = len(profile.pulled)
    if not n:
        return None
    state = array.array("d", bytes(16 * n))
    if old is not None:
        state[:len(old)] = old
    return state


class Group:
    """All components of one kind and name: live members, shared counters, retired readings."""

    __slots__ = ("adders", "counters", "created", "dead", "finalized", "gauges", "handles",
                 "histograms", "kind", "members", "name", "owner", "retired")

    def __init__(self, kind: Kind, name: str, owner: Registry | None = None) -> None:
        self.kind = kind
        self.name = name
        #: The registry holding this group (weakly).
        self.owner: Callable[[], Registry | None] = (
            weakref.ref(owner) if owner is not None else (lambda: None))
        self.members: dict[int, Component] = {}  # id(component) -> component
        self.counters: dict[Key, Counter] = {}
        self.adders: dict[Key, Adder] = {}
        self.histograms: dict[Key, Histogram] = {}
        #: Gauges of the group as a whole (pending acquires of every pool of a name).
        self.gauges: dict[Key, Callable[[], float | None]] = {}
        self.retired: dict[Key, float] = {}  # pulled counters of collected members
        # Components of collected members, appended by the weakref callback (which may run
        # in any thread, inside any lock) and folded under the registry lock later.
        self.dead: deque[Component] = deque()
        self.created = Counter()
        self.finalized = 0
        #: The kind's hot-path handles for this name (bound once, see ``instrument.events``).
        self.handles: Any = None

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

    def count_of(self, metric: str, histogram: Histogram, *labels: str) -> None:
        """Export counter ``metric`` as the number of values ``histogram`` has seen."""
        key = kind_key(self.kind, metric, labels, ("counter",))
        self.counters.setdefault(key, CountOf(histogram))

    def gauge(self, metric: str, read: Callable[[], float | None], *labels: str) -> None:
        """A gauge of the whole group, read once per scrape (not summed over members)."""
        key = kind_key(self.kind, metric, labels, ("gauge",), ("group",))
        self.gauges[key] = read

    def retire(self, comp: Component) -> None:
        """Fold a collected member's last readings into the totals (registry lock held)."""
        if self.members.pop(id(comp), None) is None:
            return  # already retired
        if comp.pulled is not None:
            # Readings taken as the object died (``read_at_death``) are in these already.
            totals = comp.pulled_totals()
            for (key, _reader), total in zip(comp.profile.pulled, totals, strict=False):
                self.retired[key] = self.retired.get(key, 0.0) + total
        self.finalized += 1


class Index:
    """``key -> Component`` for live instrumented objects, read lock-free on hot paths.

    An entry leaves when its object dies, from the weakref callback (any thread, maybe inside
    a GC pass), before the object's id can be reused: a hit needs no liveness check.
    """

    __slots__ = ("entries", "get", "gone")

    def __init__(self) -> None:
        self.entries: dict[int, Component] = {}
        entries = self.entries
        get = entries.get
        pop = entries.pop
        self.get = get

        def gone(comp: Component) -> None:
            comp.group.dead.append(comp)
            if get(comp.key) is comp:
                pop(comp.key, None)

        self.gone = gone


def read_at_death(comp: Component) -> None:
    """Fold the readings of ``comp``'s dying object into its pulled counters (called from
    the weak reference's callback, while CPython still holds the object's memory; see
    ``instrument.lru``). Never raises: a callback's exception would be printed."""
    death = comp.profile.death
    if death is None or comp.pulled is None:
        return
    try:
        raw = death(comp)
        if raw is not None:
            for i, value in enumerate(raw[:len(comp.pulled) // 2]):
                comp.fold_reading(i, float(value))
    except BaseException:  # the last scrape's reading stays
        pass


def _reading_at_death(then: Callable[[Component], Any]) -> Callable[[Component], None]:
    def gone(comp: Component) -> None:
        read_at_death(comp)
        then(comp)
    return gone


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
        self._collect_hooks: list[Callable[[Registry], None]] = []
        self._max_names = DEFAULT_MAX_NAMES
        self.set_max_names(max_names_per_kind)
        self.errors = ErrorLog()
        self.errors.declare("registry")
        me = weakref.ref(self)
        forks.after_fork_in_child(lambda: (r := me()) and r._after_fork())
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
            except BaseException as exc:
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
            gone = _reading_at_death(gone)
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
                        obj = comp()
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
        bytes_key: Key | None = (kind.bytes_metric, ()) if kind.bytes_metric else None
        sized: list[float] = []
        unsized = 0
        for comp, obj in live:
            if comp.profile.resolve is not None:
                resolve_profile(comp, obj, errors)
            own_bytes = False
            for key, reader in comp.profile.readers.items():
                try:
                    v = reader(obj)
                    if v is None:
                        continue
                    v = number(v)  # a reader returning a list or a str fails here, counted
                except (Exception, SystemExit) as exc:
                    errors.record(kind.name, comp.source(key), exc)
                    failed.add(key)
                    continue
                if math.isfinite(v):
                    gauges.setdefault(key, []).append(v)
                    own_bytes = own_bytes or key == bytes_key
            if comp.profile.size is not None and not own_bytes:
                size = comp.size
                if size is None and time.perf_counter() < self._first_reads_until:
                    try:
                        size = sizing.refresh(comp, obj, self._first_reads_until)
                    except (Exception, SystemExit) as exc:
                        errors.record(kind.name, comp.source(bytes_key or ("", ())), exc)
                        failed.add(bytes_key)  # type: ignore[arg-type]
                if size is None:
                    unsized += 1
                else:
                    sized.append(size)
            for key, creader in comp.profile.with_comp.items():
                try:
                    v = creader(obj, comp)
                    if v is None:
                        continue
                    v = number(v)
                except (Exception, SystemExit) as exc:
                    errors.record(kind.name, comp.source(key), exc)
                    failed.add(key)
                    continue
                if math.isfinite(v):
                    gauges.setdefault(key, []).append(v)
            pulled = comp.profile.pulled
            for i in range(len(pulled)):
                key = pulled[i][0]
                counters[key] = counters.get(key, 0.0) + comp.read_pulled(i, obj, errors)
        if bytes_key is not None and sized:
            if unsized:  # members not sized yet: as big as the sized ones, on average
                sized.append(sum(sized) / len(sized) * unsized)
            gauges.setdefault(bytes_key, []).extend(sized)
        for key, read in list(group.gauges.items()):
            try:
                v = read()
            except Exception as exc:
                errors.record(kind.name, f"{kind.name} {group.name!r} {key[0]}", exc)
                continue
            if v is not None and math.isfinite(v):
                gauges[key] = [float(v)]
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
        for group in self.groups():
            metric = group.kind.bytes_metric
            if metric is None:
                continue
            key: Key = (metric, ())
            total = out.setdefault(group.kind.name, 0.0)
            for comp in list(group.members.values()):
                obj = comp()
                reader = comp.profile.readers.get(key) if obj is not None else None
                if reader is None:
                    continue
                try:
                    v = reader(obj)
                    if v is not None:
                        total += number(v)
                except Exception as exc:
                    self.errors.record(group.kind.name, comp.source(key), exc)
            out[group.kind.name] = total
        return out

    # -- introspection for tests and the demo --------------------------------------------

    def live_components(self) -> int:
        """How many tracked objects are alive now (for tests and the demo's status line)."""
        with self._lock:
            groups = [g for gs in self._groups.values() for g in gs.values()]
        return sum(1 for g in groups for c in list(g.members.values()) if c() is not None)


def resolve_profile(comp: Component, obj: Any, errors: ErrorLog) -> Profile:
    """Replace a component's placeholder profile by the one its object calls for."""
    placeholder = comp.profile
    resolve = placeholder.resolve
    if resolve is None:
        return placeholder
    try:
        profile = resolve(obj)
    except Exception as exc:  # recognition failed: counted, the placeholder stays
        errors.record(comp.group.kind.name, f"{comp.group.kind.name} {comp.group.name!r} "
                      f"({type(obj).__qualname__} instance)", exc)
        return placeholder
    comp.profile = profile
    comp.pulled = _pulled_state(profile) if profile.pulled else None
    return profile


def profile_now(comp: Component, obj: Any) -> Profile:
    """The component's profile, resolved first if it is a placeholder (hot paths of a
    decorated class's instance, before any scrape saw it)."""
    profile = comp.profile
    if profile.resolve is None:
        return profile
    registry = comp.group.owner()
    return resolve_profile(comp, obj, registry.errors if registry is not None else ErrorLog())


_EMPTY: dict[str, Profile] = {}


def _empty_profile(kind: Kind) -> Profile:
    p = _EMPTY.get(kind.name)
    if p is None or p.kind is not kind:
        p = _EMPTY[kind.name] = Profile(kind, {})
    return p


REGISTRY = Registry()
