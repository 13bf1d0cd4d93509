"""Conversation histories: messages, bytes, summaries, and messages lost without a summary.

``memexport.conversation(obj_or_class, name=...)`` tracks chat histories. Many objects share
one name (one per session is normal): series are per name, never per conversation id. Each
tracked object is one registry component in its name's group (``registry.register(obj, KIND,
group, profile)``): the registry holds it weakly, counts the live, created and finalized
objects of the name, sums (or maxes) the gauge readers of the object's profile over the live
ones at scrape time, and keeps the name's counters, which objects share. The profile (how to
read one class of history) is built once per class and explicit arguments.

Lengths are read at scrape time; only adding a message is an event, counted by a wrapper that
the tracked object's class method is replaced with once (instances that are not tracked pass
straight through it). The wrapper finds the object's bookkeeping (``State``) in a dict keyed
by ``id(obj)``, without a lock. (An attribute on the instance would save about 30 ns of the
lookup, but it would travel with the app's object: into ``pickle`` (a weak reference does
not pickle), ``copy``, ``vars()``, pydantic's ``__dict__``; ``__slots__`` classes have no
room for it.) Bytes are deep sizes sampled on the collector thread by
``memexport.instrument.sizing``; message content is measured, never exported.

Recognised without configuration: deque/list-based managers such as the guide's
``MemoryEfficientConversationManager`` (a history attribute plus ``add_message``; a deque's
``maxlen`` drop is counted as a message dropped without a summary), plain ``deque``/``list``
histories (a tracking subclass is returned), LangChain chat message histories, AutoGen
``ChatCompletionContext`` variants and LangGraph ``InMemorySaver`` (``memexport.integrations``).
The per-object state, name handles and class patching here are shared with ``memexport.agent``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sized
from operator import attrgetter
from types import MemberDescriptorType
from typing import Any, Generic, TypeVar

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY, Group, Profile, Registry, validate_name
from memexport.instrument.sizing import SampledSize, shallow_size, sizer_job

__all__ = ["KIND", "ConversationProfile", "TrackedDeque", "TrackedList", "conversation",
           "tracked_bytes"]

KIND = Kind(
    "conversation",
    "conversation",
    (
        MetricDef("memexport_conversations", "gauge",
                  "Live conversation objects (sessions) tracked under this name.",
                  source="live"),
        MetricDef("memexport_conversations_created_total", "counter",
                  "Conversation objects tracked under this name so far.", source="created"),
        MetricDef("memexport_conversations_finalized_total", "counter",
                  "Tracked conversation objects that were garbage-collected.",
                  source="finalized"),
        MetricDef("memexport_conversation_messages", "gauge",
                  "Messages held by the live histories of this name, summed."),
        MetricDef("memexport_conversation_largest_messages", "gauge",
                  "Messages held by the longest single live history of this name.", agg="max"),
        MetricDef("memexport_conversation_summaries", "gauge",
                  "Summaries held by the live histories of this name, summed."),
        MetricDef("memexport_conversation_bytes", "gauge",
                  "Deep size of the live histories (messages and summaries) of this name, "
                  "sampled on the collector thread.", "bytes"),
        MetricDef("memexport_conversation_checkpoints", "gauge",
                  "Checkpoints held by LangGraph in-memory savers of this name."),
        MetricDef("memexport_conversation_checkpoint_writes", "gauge",
                  "Pending writes held by LangGraph in-memory savers of this name."),
        MetricDef("memexport_conversation_threads", "gauge",
                  "Threads (sessions) held by LangGraph in-memory savers of this name."),
        MetricDef("memexport_conversation_messages_added_total", "counter",
                  "Messages added to histories of this name."),
        MetricDef("memexport_conversation_messages_summarized_total", "counter",
                  "Messages that left a history of this name into a summary."),
        MetricDef("memexport_conversation_messages_dropped_total", "counter",
                  "Messages that left a history of this name without a summary (a deque's "
                  "maxlen pushing the oldest out, a trim)."),
    ),
    bytes_metric="memexport_conversation_bytes",
)

MESSAGES = "memexport_conversation_messages"
LARGEST = "memexport_conversation_largest_messages"
SUMMARIES = "memexport_conversation_summaries"
BYTES = "memexport_conversation_bytes"
ADDED = "memexport_conversation_messages_added_total"
SUMMARIZED = "memexport_conversation_messages_summarized_total"
DROPPED = "memexport_conversation_messages_dropped_total"

T = TypeVar("T")
H = TypeVar("H")

# -- shared with memexport.agent: per-object state, name handles, profiles per class ------------


class State(weakref.ref):  # type: ignore[type-arg]
    """The bookkeeping of one tracked object, and a weak reference to it at the same time.

    A kind keeps its states in an index ``id(obj) -> State`` (see ``Index``) that its
    class-level wrappers read with one lock-free ``dict.get``. Being the weak reference
    itself saves an allocation per tracked object; its callback removes the entry while the
    object is being freed, before its id can be reused, so a hit needs no liveness check.
    ``h`` is the name's handles, ``p`` the object's profile, ``sampled`` its deep-size sampler
    (unset until the first scrape that sees the object, see ``sampled_size``).
    """

    __slots__ = ("h", "key", "p", "sampled")


class Index:
    """``id(obj) -> State`` for the live tracked objects of one kind."""

    def __init__(self) -> None:
        self.states: dict[int, Any] = {}
        states = self.states
        get = states.get
        pop = states.pop

        def gone(st: Any) -> None:  # weakref callback: any thread, maybe inside a GC pass
            if get(st.key) is st:
                pop(st.key, None)

        self.gone = gone

    def live(self) -> list[tuple[Any, Any]]:
        """(state, object) for every live tracked object (copied, then dereferenced)."""
        for _ in range(4):
            try:
                states = list(self.states.values())
                break
            except RuntimeError:  # a callback removed an entry while copying: again
                continue
        else:
            return []
        out = []
        for st in states:
            obj = st()
            if obj is not None:
                out.append((st, obj))
        return out


class NameHandles:
    """One name of a kind in one registry: its group, and hot-path callables taken once.

    Holds the registry weakly (the handles are cached in a dict keyed weakly by registry).
    """

    __slots__ = ("group", "name", "registry")

    def __init__(self, registry: Registry, group: Group) -> None:
        self.registry = weakref.ref(registry)
        self.group = group
        self.name = group.name  # the exported name (``__overflow__`` past the cap)

    def record_error(self, kind: str, source: str, exc: BaseException) -> None:
        reg = self.registry()
        if reg is not None:
            reg.errors.record(kind, f"{kind} {self.name!r} {source}", exc)


K = TypeVar("K")
V = TypeVar("V")

#: Locks of this module's caches, re-created in a forked child (a lock held by another
#: thread at fork time would stay held there forever).
_LOCKS: list[Any] = []


class WeakIdMap(Generic[K, V]):
    """``key -> value`` with the keys held weakly, read with one dict lookup by ``id(key)``.

    ``weakref.WeakKeyDictionary`` makes a weak reference and hashes the key on every read;
    the keys here (registries, classes) are few and read for every tracked object, so an
    entry is ``(weak reference, value)`` under ``id(key)``, checked to still point at the
    key. Entries of dead keys are pruned whenever a key is added, which is rare.
    """

    def __init__(self) -> None:
        #: ``id(key) -> (weak reference to key, value)``; readers in a hurry inline ``get``.
        self.entries: dict[int, tuple[weakref.ref[Any], V]] = {}
        self.lock = threading.Lock()
        _LOCKS.append(self)

    def get(self, key: K) -> V | None:
        entry = self.entries.get(id(key))
        if entry is not None and entry[0]() is key:
            return entry[1]
        return None

    def get_or_add(self, key: K, make: Callable[[], V]) -> V:
        """The value of ``key``, made and added if absent (call with ``self.lock`` held)."""
        value = self.get(key)
        if value is None:
            for k in [k for k, (r, _) in self.entries.items() if r() is None]:
                del self.entries[k]
            value = make()
            self.entries[id(key)] = (weakref.ref(key), value)
        return value


class _PerRegistry:
    """What this module keeps per registry: handles per (kind, name), groups used."""

    __slots__ = ("groups", "handles")

    def __init__(self) -> None:
        self.handles: dict[tuple[str, str], Any] = {}
        self.groups: dict[tuple[str, str], Group] = {}


_registries: WeakIdMap[Registry, _PerRegistry] = WeakIdMap()
_registry_entries = _registries.entries


def handles_for(registry: Registry, kind: Kind, name: str,
                make: Callable[[Registry, Group], H]) -> H:
    """The handles of ``name`` (validated, ValueError naming it) in ``registry``, cached.

    Names past the registry's cap fold into its ``__overflow__`` group; those are not cached,
    so the registry counts each folded call in ``memexport_series_overflow_total``.
    """
    if not isinstance(name, str):
        validate_name(kind.name, name)
    entry = _registry_entries.get(id(registry))
    if entry is not None and entry[0]() is registry:
        h = entry[1].handles.get((kind.name, name))
        if h is not None:
            return h  # type: ignore[no-any-return]
    group = registry.group(kind, name)  # validates the name
    h = make(registry, group)
    with _registries.lock:
        per = _registries.get_or_add(registry, _PerRegistry)
        per.groups.setdefault((kind.name, group.name), group)
        if group.name == name:
            h = per.handles.setdefault((kind.name, name), h)
    return h


def tracked_objects(registry: Registry, kind: Kind) -> list[Any]:
    """The live objects of ``kind`` tracked in ``registry`` through this module's handles
    (read from the registry's groups: objects tracked without a ``State`` included)."""
    with _registries.lock:
        per = _registries.get(registry)
        groups = [] if per is None else [g for (k, _), g in per.groups.items() if k == kind.name]
    out = []
    for group in groups:
        for _ in range(4):
            try:
                comps = list(group.members.values())
                break
            except RuntimeError:  # registered or folded while copying: again
                continue
        else:
            continue
        for comp in comps:
            obj = comp.ref() if comp.ref is not None else None
            if obj is not None:
                out.append(obj)
    return out


def sampled_size(st: Any, obj: Any,
                 make: Callable[[Any, Any], SampledSize | None]) -> SampledSize | None:
    """The object's deep-size sampler, created and handed to the registry's sizer job on
    first use.

    Created at the first scrape (or ``tracked=True`` cleanup) that sees the object alive,
    never at track time: a ``SampledSize`` (a lock and a deque) plus the sizer job's weak
    reference would double the cost of tracking a session or an agent, and the job's list is
    only pruned on collector ticks, so objects created and freed by the thousand between two
    ticks would pile up there. Objects that never live across a scrape never reach the job.
    """
    s = getattr(st, "sampled", None)
    if s is None:
        reg = st.h.registry()
        if reg is None:
            return None
        s = make(st, obj)
        if s is None:
            return None
        st.sampled = s
        sizer_job(reg).track(obj, s)
    return s  # type: ignore[no-any-return]


def explicit_key(args: tuple[Any, ...]) -> Hashable | None:
    """A cache key for explicit arguments, None when one of them is unhashable."""
    for a in args:
        if a is not None:
            break
    else:
        return ()  # nothing explicit: the common case, no hashing
    try:
        hash(args)
    except TypeError:
        return None
    return args


class ClassCache(Generic[V]):
    """Per class (held weakly): profiles by explicit arguments, and what the kind needs."""

    __slots__ = ("bound", "profiles")

    def __init__(self) -> None:
        self.profiles: dict[Hashable, V] = {}
        self.bound: Any = None


def cached_profile(classes: WeakIdMap[type, ClassCache[V]], obj: Any, explicit: tuple[Any, ...],
                   recognise: Callable[[Any, tuple[Any, ...]], V],
                   install: Callable[[type, V], None]) -> V:
    """The profile of ``obj``'s class with these explicit arguments: recognised (and the
    class's methods wrapped) once, then cached while the class lives."""
    cls = type(obj)
    key = explicit_key(explicit)
    entry = classes.entries.get(id(cls))
    if entry is not None and key is not None and entry[0]() is cls:
        cached = entry[1].profiles.get(key)
        if cached is not None:
            return cached
    profile = recognise(obj, explicit)
    install(cls, profile)
    if key is not None:
        with classes.lock:
            cache = classes.get_or_add(cls, ClassCache)
            profile = cache.profiles.setdefault(key, profile)
    return profile


# -- class patching: one wrapper per method, shared by every tracked instance -------------------

_PATCHED = "__memexport_patched__"
_patch_lock = threading.Lock()


def _after_fork() -> None:
    global _patch_lock
    _patch_lock = threading.Lock()
    for m in _LOCKS:
        m.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def patch_method(cls: type, attr: str, factory: Callable[[Callable[..., Any]], Callable[..., Any]],
                 tag: str) -> bool:
    """Replace the method ``attr`` where ``cls`` finds it by ``factory(original)``, once.

    The wrapper looks its instance up in a kind's ``Index`` and passes untracked instances
    straight through, so patching a class affects tracked objects only. Returns whether the
    method is (now) wrapped.
    """
    with _patch_lock:
        owner = next((k for k in cls.__mro__ if attr in k.__dict__), None)
        if owner is None or owner is object:
            return False
        original = owner.__dict__[attr]
        if getattr(original, _PATCHED, None) == tag:
            return True
        if not inspect.isfunction(original):
            return False  # a builtin, staticmethod, property...: leave it alone
        try:
            wrapper = factory(original)
            functools.update_wrapper(wrapper, original)
            setattr(wrapper, _PATCHED, tag)
            setattr(owner, attr, wrapper)
        except (TypeError, AttributeError):  # an immutable (builtin/extension) type
            return False
        return True


def positional_arity(fn: Callable[..., Any]) -> int | None:
    """The number of positional parameters after ``self`` if that is all ``fn`` takes."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
           for p in params):
        return len(params)
    return None


def to_getter(spec: str | Callable[[Any], Any] | None, what: str) -> Callable[[Any], Any] | None:
    """An attribute name or a callable as a reader ``f(obj)``; ValueError for anything else."""
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str) and spec.isidentifier():
        return attrgetter(spec)
    raise ValueError(f"{what} must be an attribute name or a callable, got {spec!r}")


# -- conversations: per-object state and readers ----------------------------------------------


class _Handles(NameHandles):
    """A conversation name's group and its shared counters' hot-path callables."""

    __slots__ = ("added", "added_many", "dropped", "dropped_many", "summarized")

    def __init__(self, registry: Registry, group: Group) -> None:
        super().__init__(registry, group)
        # A counter and an adder of the same metric add up: inc() for one message, add(k)
        # for k at once.
        self.added: Callable[[], object] = group.counter(ADDED).inc
        self.added_many: Callable[[float], None] = group.adder(ADDED).add
        self.dropped: Callable[[], object] = group.counter(DROPPED).inc
        self.dropped_many: Callable[[float], None] = group.adder(DROPPED).add
        self.summarized: Callable[[float], None] = group.adder(SUMMARIZED).add


class _State(State):
    """A tracked conversation: the hot-path handles copied in, and its history's bound.

    ``hist`` is the history getter when the history is a bounded deque (whose ``maxlen``
    drops are counted), else None; ``bound`` its ``maxlen``.
    """

    __slots__ = ("added", "bound", "dropped", "hist")


_INDEX = Index()
_STATES = _INDEX.states


def _length_of(get: Callable[[Any], Any]) -> Callable[[Any], int | None]:
    def length(obj: Any) -> int | None:
        c = get(obj)
        return None if c is None else len(c)

    return length


def _make_sampler(st: Any, obj: Any) -> SampledSize | None:
    sized = st.p.sized
    if sized is None:
        return None
    with_overhead = st.p.sized_overhead

    def entries(o: Any) -> Iterable[Any]:
        return itertools.chain.from_iterable(sized(o))

    def length(o: Any) -> int:
        return sum(len(c) for c in sized(o))

    def overhead(o: Any) -> int:
        return sum(shallow_size(c) for c in sized(o)) if with_overhead else 0

    return SampledSize(entries, length, overhead, collector=KIND.name,
                       source=f"conversation {st.h.name!r} deep size")


def _bytes(obj: Any) -> float | None:
    """Scrape-time reader: the object's sampled deep size."""
    st = _STATES.get(id(obj))
    if st is None:
        return None
    s = sampled_size(st, obj, _make_sampler)
    return None if s is None else s.read(obj)


def tracked_bytes(registry: Registry) -> float:
    """Deep size of every conversation tracked in ``registry``, re-sampled now."""
    total = 0.0
    for st, obj in _INDEX.live():
        if st.h.registry() is not registry:
            continue
        s = sampled_size(st, obj, _make_sampler)
        if s is not None:
            value = s.refresh(obj)
            if value is not None:
                total += value
    return total


class ConversationProfile:
    """How to read one type of conversation object (shared by its instances).

    ``history(obj)`` returns the message container (``len`` = messages), ``summaries(obj)``
    the summaries container, ``gauges`` extra per-object readers (LangGraph savers),
    ``sized(obj)`` the containers whose deep size is the bytes. ``adds`` lists
    ``(method, bulk)``: methods that add one message (or ``len(arg)`` with ``bulk``);
    ``summarize`` the methods whose removals from the history are summaries. ``readers`` is
    the registry profile built from them once: per-object gauge readers, summed per name
    (the largest history: max).
    """

    def __init__(self, *, history: Callable[[Any], Any] | None = None,
                 summaries: Callable[[Any], Any] | None = None,
                 adds: Iterable[tuple[str, bool]] = (), summarize: Iterable[str] = (),
                 gauges: dict[str, Callable[[Any], float]] | None = None,
                 sized: Callable[[Any], list[Any]] | None = None, sized_overhead: bool = True,
                 source: str = "") -> None:
        self.history = history
        self.summaries = summaries
        self.adds = tuple(adds)
        self.summarize = tuple(summarize)
        self.gauges = gauges or {}
        if sized is None and history is not None:
            sized = self._default_sized
        self.sized = sized
        self.sized_overhead = sized_overhead  # count the containers themselves too
        self.source = source
        readers: dict[str, Callable[[Any], Any]] = {}
        if history is not None:
            length = len if history is _identity else _length_of(history)
            readers[MESSAGES] = readers[LARGEST] = length
        if summaries is not None:
            readers[SUMMARIES] = _length_of(summaries)
        if sized is not None:
            readers[BYTES] = _bytes
        readers.update(self.gauges)
        self.readers = Profile(KIND, readers)

    def _default_sized(self, obj: Any) -> list[Any]:
        out = []
        if self.history is not None:
            h = self.history(obj)
            if h is not None:
                out.append(h)
        if self.summaries is not None:
            s = self.summaries(obj)
            if s is not None:
                out.append(s)
        return out


# -- the hot path: wrappers counting messages added, dropped and summarised --------------------


def _free(st: Any, obj: Any, k: int) -> int:
    """Room left in a bounded history before adding ``k`` messages (``k`` when unbounded)."""
    hist = st.hist
    if hist is None:
        return k
    try:
        return int(st.bound - len(hist(obj)))
    except Exception as exc:  # never hurt the app: count, log once, count no drop
        st.h.record_error(KIND.name, "history length", exc)
        return k


def _count(st: Any, k: int, free: int) -> None:
    if k == 1:
        st.added()
    elif k > 1:
        st.h.added_many(k)
    lost = k - free
    if lost == 1:
        st.dropped()
    elif lost > 1:
        st.h.dropped_many(lost)


def _bulk_items(args: tuple[Any, ...], kwargs: dict[str, Any],
                ) -> tuple[tuple[Any, ...], dict[str, Any], int]:
    """The messages argument of a bulk add, a generator materialised once; and its length."""
    items = args[0] if args else next(iter(kwargs.values()), ())
    if not isinstance(items, Sized):
        items = list(items)
        if args:
            args = (items, *args[1:])
        else:
            kwargs = {next(iter(kwargs)): items}
    return args, kwargs, len(items)


def _make_add_wrapper(bulk: bool, is_async: bool,
                      arity: int | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrappers counting added messages, and a bounded deque's drop when it is full.

    The drop check is one ``len`` before the call: appending to a full deque pushes its
    oldest message out, and a message still in the history was never summarised (summaries
    pop what they summarise, see ``_make_summary_wrapper``). Nothing is counted when the
    call raises.
    """
    get = _STATES.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        if is_async:
            async def add_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                st = get(id(self))
                if st is None:
                    return await original(self, *args, **kwargs)
                k = 1
                if bulk:
                    args, kwargs, k = _bulk_items(args, kwargs)
                free = _free(st, self, k)
                result = await original(self, *args, **kwargs)
                _count(st, k, free)
                return result
            return add_async

        if arity == 1 and not bulk:
            def add_one(self: Any, message: Any) -> Any:
                st = get(id(self))
                if st is None:
                    return original(self, message)
                hist = st.hist
                if hist is None:  # unbounded: nothing can be dropped
                    result = original(self, message)
                    st.added()
                    return result
                try:
                    full = len(hist(self)) >= st.bound
                except Exception:
                    full = _free(st, self, 1) < 1  # records the failure
                result = original(self, message)
                if full:
                    st.dropped()
                st.added()
                return result
            return add_one

        def add_any(self: Any, *args: Any, **kwargs: Any) -> Any:
            st = get(id(self))
            if st is None:
                return original(self, *args, **kwargs)
            k = 1
            if bulk:
                args, kwargs, k = _bulk_items(args, kwargs)
            free = _free(st, self, k)
            result = original(self, *args, **kwargs)
            _count(st, k, free)
            return result
        return add_any

    return factory


def _history_length(st: Any, obj: Any) -> int | None:
    hist = st.p.history
    if hist is None:
        return None
    try:
        c = hist(obj)
        return None if c is None else len(c)
    except Exception as exc:  # never hurt the app
        st.h.record_error(KIND.name, "history length", exc)
        return None


def _make_summary_wrapper() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A summarising method: the messages it takes out of the history were summarised."""
    get = _STATES.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def summarize(self: Any, *args: Any, **kwargs: Any) -> Any:
            st = get(id(self))
            if st is None:
                return original(self, *args, **kwargs)
            hist = st.p.history
            try:
                n0: int | None = len(hist(self))
            except Exception:  # None history, or a failing read: recorded, nothing counted
                n0 = _history_length(st, self)
            if n0 is None:
                return original(self, *args, **kwargs)
            try:
                return original(self, *args, **kwargs)
            finally:
                n1 = _history_length(st, self)
                if n1 is not None and n0 > n1:
                    st.h.summarized(n0 - n1)
        return summarize

    return factory


_deque_append = deque.append
_deque_appendleft = deque.appendleft
_list_append = list.append


def _noop(*_: Any) -> None:
    return None


_MISSING: Any = object()


class TrackedDeque(deque):  # type: ignore[type-arg]
    """A ``deque`` that counts what is appended and what its ``maxlen`` pushes out.

    ``memexport.conversation(deque(...), name=...)`` returns one (with the same items and
    maxlen): a plain deque's methods cannot be wrapped in place. Copies (``copy()``,
    ``d + other``) are TrackedDeques too, counting nothing.
    """

    __slots__ = ("_me_added", "_me_bound", "_me_dropped", "_me_h")

    def __init__(self, iterable: Iterable[Any] = (), maxlen: int | None = None) -> None:
        deque.__init__(self, iterable, maxlen)
        self._me_added: Callable[[], object] = _noop
        self._me_dropped: Callable[[], object] = _noop
        self._me_bound = -1 if maxlen is None else maxlen
        self._me_h: _Handles | None = None

    def append(self, message: Any, /) -> None:
        if len(self) == self._me_bound:  # full: the oldest message goes
            _deque_append(self, message)
            self._me_dropped()
        else:
            _deque_append(self, message)
        self._me_added()

    def appendleft(self, message: Any, /) -> None:
        full = len(self) == self._me_bound
        _deque_appendleft(self, message)
        if full:
            self._me_dropped()
        self._me_added()

    def extend(self, messages: Iterable[Any], /) -> None:
        self._me_many(deque.extend, messages)

    def extendleft(self, messages: Iterable[Any], /) -> None:
        self._me_many(deque.extendleft, messages)

    def _me_many(self, op: Callable[[deque[Any], Iterable[Any]], None],  # type: ignore[type-arg]
                 messages: Iterable[Any]) -> None:
        items = messages if isinstance(messages, list | tuple) else list(messages)
        k = len(items)
        bound = self._me_bound
        lost = max(0, len(self) + k - bound) if bound >= 0 else 0
        op(self, items)
        h = self._me_h
        if h is not None:
            h.added_many(k)
            if lost:
                h.dropped_many(lost)

    def __reduce__(self) -> Any:  # pickles as a plain deque
        return (deque, (list(self), self.maxlen))


class TrackedList(list):  # type: ignore[type-arg]
    """A ``list`` that counts what is appended (``memexport.conversation([...], name=...)``)."""

    __slots__ = ("__weakref__", "_me_added", "_me_h")

    def __init__(self, iterable: Iterable[Any] = ()) -> None:
        list.__init__(self, iterable)
        self._me_added: Callable[[], object] = _noop
        self._me_h: _Handles | None = None

    def append(self, message: Any, /) -> None:
        _list_append(self, message)
        self._me_added()

    def extend(self, messages: Iterable[Any], /) -> None:
        items = messages if isinstance(messages, list | tuple) else list(messages)
        list.extend(self, items)
        if self._me_h is not None:
            self._me_h.added_many(len(items))

    def insert(self, index: Any, message: Any, /) -> None:
        list.insert(self, index, message)
        self._me_added()

    def __reduce__(self) -> Any:  # pickles and copies as a plain list
        return (list, (list(self),))


def _identity(obj: Any) -> Any:
    return obj


#: Attributes the generic recogniser looks for, in order.
HISTORY_ATTRS = ("conversation_history", "history", "messages", "chat_history", "_history",
                 "_messages", "buffer")
SUMMARY_ATTRS = ("summaries", "_summaries")
ADD_METHODS = ("add_message", "append_message", "add")
SUMMARIZE_METHODS = ("_create_summary", "create_summary", "_summarize", "summarize")

_INTEGRATIONS = (
    ("langgraph", "memexport.integrations.langgraph"),
    ("langchain_core", "memexport.integrations.langchain"),
    ("autogen_core", "memexport.integrations.autogen"),
)


def instance_attr(obj: Any, name: str) -> Any:
    """``obj.name`` if it is data held by the instance, else None; never runs a property.

    Never reads ``obj.__dict__``: on Python 3.11+ that turns the instance's inline attribute
    values into a dict for good, and every later attribute access of the app's object (its
    ``add_message`` included) gets slower.
    """
    for klass in type(obj).__mro__:
        value = klass.__dict__.get(name, _MISSING)
        if value is not _MISSING:
            if hasattr(type(value), "__get__") and not isinstance(value, MemberDescriptorType):
                return None  # a property, a method, another descriptor: not instance data
            break
    try:
        return getattr(obj, name, None)
    except Exception:  # a __getattr__ that raises something else than AttributeError
        return None


def recognise(obj: Any, *, history: str | Callable[[Any], Any] | None = None,
              summaries: str | Callable[[Any], Any] | None = None,
              add: str | Iterable[str] | None = None,
              summarize: str | Iterable[str] | None = None) -> ConversationProfile:
    """The profile of ``obj``: explicit arguments first, then the integrations, then shapes."""
    if history is None and summaries is None and add is None and summarize is None:
        for module_name, integration in _INTEGRATIONS:
            if module_name in sys.modules:  # an instance of it exists, so it is imported
                try:
                    mod = importlib.import_module(integration)
                except ImportError:
                    continue
                profile = mod.conversation_profile(obj)
                if profile is not None:
                    return profile  # type: ignore[no-any-return]
    hist = to_getter(history, "history")
    summ = to_getter(summaries, "summaries")
    if hist is None:
        for attr in HISTORY_ATTRS:
            if isinstance(instance_attr(obj, attr), list | deque):
                hist = attrgetter(attr)
                break
    if hist is None:
        raise TypeError(
            f"memexport.conversation cannot find the message history of a "
            f"{type(obj).__qualname__}: pass history='attribute' (a list or deque of messages) "
            f"or history=callable, and add='method' naming the method that adds a message "
            f"(looked for {', '.join(HISTORY_ATTRS)})")
    if summ is None and history is None:
        for attr in SUMMARY_ATTRS:
            if isinstance(instance_attr(obj, attr), list | deque):
                summ = attrgetter(attr)
                break
    if add is None:
        names = [n for n in ADD_METHODS if callable(getattr(type(obj), n, None))][:1]
    elif isinstance(add, str):
        names = [add]
    else:
        names = list(add)
    if summarize is None:
        summ_names = [n for n in SUMMARIZE_METHODS if callable(getattr(type(obj), n, None))][:1]
    elif isinstance(summarize, str):
        summ_names = [summarize]
    else:
        summ_names = list(summarize)
    for what, n in [("add", n) for n in names] + [("summarize", n) for n in summ_names]:
        if not callable(getattr(type(obj), n, None)):
            raise ValueError(f"{what}={n!r}: {type(obj).__qualname__} has no method {n!r}")
    return ConversationProfile(history=hist, summaries=summ, adds=[(n, False) for n in names],
                               summarize=summ_names, source=type(obj).__qualname__)


def _install(cls: type, profile: ConversationProfile) -> None:
    """Wrap the class's add and summarise methods (once per class and method)."""
    for method, bulk in profile.adds:
        fn = getattr(cls, method, None)
        is_async = inspect.iscoroutinefunction(fn)
        arity = positional_arity(fn) if fn is not None else None
        patch_method(cls, method, _make_add_wrapper(bulk, is_async, arity),
                     f"conversation-add-{bulk}")
    for method in profile.summarize:
        patch_method(cls, method, _make_summary_wrapper(), "conversation-summarize")


_classes: WeakIdMap[type, ClassCache[ConversationProfile]] = WeakIdMap()


def _recognise(obj: Any, explicit: tuple[Any, ...]) -> ConversationProfile:
    history, summaries, add, summarize = explicit
    return recognise(obj, history=history, summaries=summaries, add=add, summarize=summarize)


def profile_for(obj: Any, explicit: tuple[Any, ...]) -> ConversationProfile:
    """The profile of ``obj``'s class with these explicit arguments (cached per class)."""
    return cached_profile(_classes, obj, explicit, _recognise, _install)


def _track(obj: Any, h: _Handles, profile: ConversationProfile) -> None:
    """One registry component for ``obj``, and its state in the index (once per object)."""
    key = id(obj)
    if key in _STATES:
        return  # already tracked (under the name it was first tracked with)
    reg = h.registry()
    if reg is None:
        return
    hist = profile.history
    container = None if hist is None else hist(obj)
    bounded = isinstance(container, deque) and container.maxlen is not None
    reg.register(obj, KIND, h.group, profile.readers)
    st = _State(obj, _INDEX.gone)
    st.key = key
    st.h = h
    st.p = profile
    st.added = h.added
    st.dropped = h.dropped
    st.hist = hist if bounded else None
    st.bound = container.maxlen if bounded else -1  # type: ignore[union-attr]
    _STATES[key] = st


_BUILTIN = ConversationProfile(history=_identity, source="deque/list")
_TRACKED = (TrackedDeque, TrackedList)


def _wrap_builtin(obj: deque[Any] | list[Any], h: _Handles) -> Any:
    tracked: Any
    if isinstance(obj, deque):
        tracked = TrackedDeque(obj, obj.maxlen)
        tracked._me_dropped = h.dropped
    else:
        tracked = TrackedList(obj)
    tracked._me_added = h.added
    tracked._me_h = h
    _track(tracked, h, _BUILTIN)
    return tracked


def _names(spec: str | Iterable[str] | None) -> str | tuple[str, ...] | None:
    return spec if spec is None or isinstance(spec, str) else tuple(spec)


def conversation(obj_or_class: Any = None, *, name: str,
                 history: str | Callable[[Any], Any] | None = None,
                 summaries: str | Callable[[Any], Any] | None = None,
                 add: str | Iterable[str] | None = None,
                 summarize: str | Iterable[str] | None = None,
                 registry: Registry = REGISTRY) -> Any:
    """Track a conversation history (or every instance of a class) under ``name``.

    ``history = memexport.conversation(MemoryEfficientConversationManager(), name="support")``
    returns the same object, tracked; ``@memexport.conversation(name="support")`` on a class
    (or passing the class) tracks each instance it creates. A plain ``deque`` or ``list``
    comes back as a ``TrackedDeque``/``TrackedList`` holding the same messages: use the
    returned object. For other shapes pass ``history`` (attribute name or callable returning
    the message container), optionally ``summaries`` and ``add`` (the method(s) adding one
    message each) and ``summarize`` (the method(s) moving messages into summaries: what they
    remove from the history counts as summarised). The object is held weakly; nothing it
    contains is ever exported.
    """
    if obj_or_class is None:
        validate_name(KIND.name, name)
        return lambda target: conversation(target, name=name, history=history,
                                           summaries=summaries, add=add, summarize=summarize,
                                           registry=registry)
    if history is not None or summaries is not None:
        to_getter(history, "history")  # ValueError now, at the call that caused it
        to_getter(summaries, "summaries")
    h = handles_for(registry, KIND, name, _Handles)
    explicit = (history, summaries, _names(add), _names(summarize))
    if isinstance(obj_or_class, type):
        return _track_class(obj_or_class, h, explicit)
    obj = obj_or_class
    if type(obj) in (deque, list) and history is None:
        return _wrap_builtin(obj, h)
    if isinstance(obj, _TRACKED) or id(obj) in _STATES:
        return obj
    _track(obj, h, profile_for(obj, explicit))
    return obj


def _track_class(cls: type[T], h: _Handles, explicit: tuple[Any, ...]) -> type[T]:
    """Patch ``cls.__init__`` so every instance is tracked under ``h`` once constructed."""
    profiles: dict[type, ConversationProfile] = {}
    original = cls.__dict__.get("__init__")
    base_init = original if original is not None else cls.__init__

    @functools.wraps(base_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        try:
            profile = profiles.get(type(self))
            if profile is None:
                profile = profiles[type(self)] = profile_for(self, explicit)
            _track(self, h, profile)
        except Exception as exc:  # never hurt the app: count, log once, go on untracked
            h.record_error(KIND.name, type(self).__qualname__, exc)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls
