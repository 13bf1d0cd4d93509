"""Components: the record of one instrumented object (the weak reference to it), the profile
that reads it at scrape time, the group of one kind and name it belongs to, and the index
that hot paths find components in.

A ``Component`` is the weak reference to its object and holds a few slots of per-object
state (pulled-counter readings, a sampled size); components with the same kind and name form
a ``Group``: gauges are summed (or max'ed) over live members, event counters belong to the
group, and a member's pulled counters are folded into the group's totals when its object is
garbage-collected, so counters never go backwards while the process lives.
"""

from __future__ import annotations

import array
import math
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from memexport.core.checks import shown
from memexport.core.counters import Adder, Counter, CountOf, Histogram
from memexport.core.errors import ErrorLog
from memexport.core.model import Kind, LabelValues

if TYPE_CHECKING:  # pragma: no cover
    from memexport.core.registry import Registry

__all__ = ["Component", "Group", "Index", "Key", "Profile", "Reader", "SizeSpec", "kind_key",
           "number", "profile_now", "read_at_death", "reading_at_death", "resolve_profile"]

#: A scrape-time reader: gets the instrumented object, returns a number or None (absent).
#: It must not close over the object itself, or the registry would keep it alive.
Reader = Callable[[Any], "float | int | None"]

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
    """How to walk one shape of collection for its deep size (see ``core.sizing``).

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
    profile; ``size``/``size_mean``/``size_cursor``/``size_at``/``size_len`` the sampled
    deep size (``size_len``: the length it was taken at);
    ``state`` is free for the kind.
    """

    __slots__ = ("group", "key", "profile", "pulled", "size", "size_at", "size_cursor",
                 "size_len", "size_mean", "state")

    group: Group
    key: int
    profile: Profile
    pulled: array.array[float] | None
    size: float | None
    size_mean: float
    size_cursor: int
    size_at: float
    size_len: int
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


def read_at_death(comp: Component) -> None:
    """Fold the readings of ``comp``'s dying object into its pulled counters (called from
    the weak reference's callback, while CPython still holds the object's memory; see
    ``instrument.lru``). Never raises: a callback's exception would be printed."""
    try:  # (all of it: at interpreter exit even the builtins may be gone)
        death = comp.profile.death
        if death is None or comp.pulled is None:
            return
        raw = death(comp)
        if raw is not None:
            for i, value in enumerate(raw[:len(comp.pulled) // 2]):
                comp.fold_reading(i, float(value))
    except BaseException:  # the last scrape's reading stays
        pass


def reading_at_death(then: Callable[[Component], Any]) -> Callable[[Component], None]:
    """A weak-reference callback that reads the dying object (``read_at_death``), then ``then``."""
    read = read_at_death  # bound now: at interpreter exit the module's globals are None

    def gone(comp: Component) -> None:
        read(comp)
        then(comp)
    return gone


class Index:
    """``key -> Component`` for live instrumented objects, read lock-free on hot paths.

    An entry leaves when its object dies, from the weakref callback (any thread, maybe inside
    a GC pass), before the object's id can be reused: a hit needs no liveness check.
    """

    __slots__ = ("entries", "get", "gone", "gone_reading")

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
        #: ``gone`` after reading the dying object (profiles with a death reader), shared
        #: by the index's components: no closure per component.
        self.gone_reading = reading_at_death(gone)


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
