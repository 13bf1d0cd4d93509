"""Pools: resources in use and idle, waits, exhaustion and leaked resources, for any pool.

``memexport.pool(obj, name=...)`` recognises, without configuration:

- context-manager pools like the guide's ``ResourcePool`` (``with pool.acquire() as r``), and
  their asyncio twins (``async with pool.acquire() as r``): a proxy times each acquire and
  each hold. An ``acquire`` made with ``contextlib.contextmanager`` is driven directly (the
  user's generator, with contextlib's exact semantics) so that the instrumented call costs
  about what the uninstrumented one does;
- ``queue.Queue`` / ``asyncio.Queue`` used as pools: ``get`` acquires, ``put`` releases (a
  ``put`` of a resource that was never handed out is a created one);
- SQLAlchemy engines and pools (``memexport.integrations.sqlalchemy``: pool events);
- redis-py ``ConnectionPool`` and ``BlockingConnectionPool`` (``memexport.integrations.redis``:
  the pool's own counters read at scrape);
- ``concurrent.futures.ThreadPoolExecutor``: a worker running a task is a resource in use,
  the queued backlog is the pending acquires;
- anything else through explicit arguments (``acquire=``, ``release=``, ``mode=``, ``idle=``,
  ``in_use=``, ``max_size=``, ``size=``, ``exhausted=``); a ``TypeError`` says what to pass
  when it can't tell.

Applied to a class (``@memexport.pool(name=...)``) it instruments every instance: the class's
own ``acquire``/``release`` are replaced once, so instances stay instances of the real class.

Hot path: a ``Counter.inc`` (pending acquires), three clock reads, two ``list.append`` of
raw durations and a ``set.add``/``discard`` of the acquire time (for the oldest use). No lock.
Durations are bucketed when read (at scrape, or every 4,096 acquires in the acquiring thread
so memory stays bounded), which is what keeps the instrumented acquire within a few hundred
nanoseconds of the plain one (``memexport bench --only pool``).

Exhausted: an acquire that raised one of ``exhausted`` (default: ``TimeoutError``,
``queue.Empty``, ``asyncio.QueueEmpty``) or, in asyncio, was cancelled while waiting
(``asyncio.wait_for``/``asyncio.timeout`` cancel the wait). Any other exception is an
acquire error. The exception always propagates unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import queue
import threading
import time
import weakref
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any

from memexport.core.counters import DEFAULT_SECONDS_BUCKETS, Counter, Histogram, HistogramValue
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY, Component, Reader, Registry, validate_name
from memexport.instrument.proxy import Proxy
from memexport.instrument.readers import reader_from

__all__ = [
    "EXHAUSTED",
    "FOLD_MASK",
    "KIND",
    "Durations",
    "PoolProxy",
    "Recorder",
    "SizeDelta",
    "Timings",
    "make_proxy",
    "pool",
    "register",
]

RESOURCES = "memexport_pool_resources"
MAX_RESOURCES = "memexport_pool_max_resources"
PENDING = "memexport_pool_pending_acquires"
ACQUIRES = "memexport_pool_acquires_total"
EXHAUSTED_TOTAL = "memexport_pool_exhausted_total"
ERRORS = "memexport_pool_acquire_errors_total"
WAIT = "memexport_pool_acquire_wait_seconds"
USE = "memexport_pool_use_seconds"
CREATED = "memexport_pool_created_total"
DESTROYED = "memexport_pool_destroyed_total"
OLDEST = "memexport_pool_oldest_use_seconds"

KIND = Kind(
    "pool",
    "pool",
    (
        MetricDef(RESOURCES, "gauge",
                  "Resources of the pool by state: idle (ready in the pool) or in_use "
                  "(acquired and not yet released).", labels=("state",),
                  otel_name="db.client.connection.count"),
        MetricDef(MAX_RESOURCES, "gauge",
                  "The most resources the pool holds at once (its configured size); absent "
                  "when unbounded.", otel_name="db.client.connection.max"),
        MetricDef(PENDING, "gauge", "Acquires waiting for a resource right now.",
                  otel_name="db.client.connection.pending_requests"),
        MetricDef(ACQUIRES, "counter", "Acquires that got a resource."),
        MetricDef(EXHAUSTED_TOTAL, "counter",
                  "Acquires that timed out or were refused because the pool had no resource "
                  "to give.", otel_name="db.client.connection.timeouts"),
        MetricDef(ERRORS, "counter",
                  "Acquires that failed for another reason (the pool's factory or connect "
                  "raised)."),
        MetricDef(WAIT, "histogram",
                  "Time from asking the pool for a resource to getting it.", "seconds",
                  otel_name="db.client.connection.wait_time"),
        MetricDef(USE, "histogram",
                  "Time a resource was held, from acquire to release.", "seconds",
                  otel_name="db.client.connection.use_time"),
        MetricDef(CREATED, "counter",
                  "Resources the pool created (connections opened, clients built, worker "
                  "threads started)."),
        MetricDef(DESTROYED, "counter", "Resources the pool closed or discarded."),
        MetricDef(OLDEST, "gauge",
                  "How long the longest-held resource has been out (0 when none is); a "
                  "leaked resource makes it grow without bound.", "seconds", agg="max"),
    ),
)

#: Exceptions of an acquire that mean "the pool had nothing to give" by default.
EXHAUSTED: tuple[type[BaseException], ...] = (
    TimeoutError, asyncio.TimeoutError, queue.Empty, asyncio.QueueEmpty)

#: Attribute names read, when nothing else says, as the pool's idle store / capacity / size.
IDLE_ATTRS = ("pool", "_pool", "queue", "_queue", "idle", "_idle", "free", "_free",
              "available", "_available")
MAX_ATTRS = ("max_size", "maxsize", "max_connections", "max_resources", "capacity",
             "_max_size", "_maxsize")
SIZE_ATTRS = ("size", "_size", "num_resources", "total")

#: Fold the raw durations every this many acquires (a power of two, minus one).
FOLD_MASK = 4095

_clock = time.perf_counter
_new = object.__new__


def _noop() -> int:
    return 0


# -- the hot-path records -------------------------------------------------------------------


class Durations:
    """One pool's raw durations: ``add(v)`` is a bare ``list.append`` (no lock, no frame).

    ``folded`` counts the values already moved into the group's ``Timings``; with what is
    still queued it is this pool's number of observations. The fold takes the first ``k``
    values with one slice and one ``del`` (appends only ever go to the end, so values added
    meanwhile stay), far cheaper than popping them one by one.
    """

    __slots__ = ("add", "buf", "dead", "folded")

    def __init__(self) -> None:
        self.buf: list[float] = []
        self.add: Callable[[float], None] = self.buf.append
        self.folded = 0
        self.dead = False

    def close(self) -> None:
        """The pool is gone: the group folds what is left and forgets this buffer."""
        self.dead = True


class Timings(Histogram):
    """A group's histogram fed by its pools' ``Durations``, bucketed when read.

    Same buckets and read-out as :class:`memexport.core.counters.Histogram` (the registry reads
    ``value()``), but the hot path pays one C-level append. ``fold()`` counts each bucket
    with a bisect in the pending values, sorted once (not at all when they all fall in the
    first bucket).
    """

    __slots__ = ("_cum", "_fold_lock", "_members", "_total")

    def __init__(self, bounds: Sequence[float] = DEFAULT_SECONDS_BUCKETS) -> None:
        super().__init__(bounds)
        self._members: list[Durations] = []
        self._cum = [0] * (len(self._bounds) + 1)
        self._total = 0.0
        # Re-entrant: a collection triggered while folding may read this histogram.
        self._fold_lock = threading.RLock()

    def member(self) -> Durations:
        """A new buffer for one pool of the group."""
        d = Durations()
        with self._fold_lock:
            self._members.append(d)
        return d

    def observe(self, value: float) -> None:
        with self._fold_lock:
            if not self._members:
                self._members.append(Durations())
            self._members[0].add(value)

    def fold(self) -> None:
        """Move the pending durations of every member into the bucket counts and the sum."""
        with self._fold_lock:
            cum = self._cum
            bounds = self._bounds
            keep = []
            for d in self._members:
                buf = d.buf
                k = len(buf)
                if k:
                    vals = buf[:k]
                    del buf[:k]
                    # Bounds at or above the largest value hold all k: only those below it
                    # need the values sorted (none, when every duration is in the first
                    # bucket, as the waits of a pool with idle resources are).
                    below = bisect_left(bounds, max(vals))
                    if below:
                        vals.sort()
                        for i in range(below):
                            cum[i] += bisect_right(vals, bounds[i])
                    for i in range(below, len(cum)):
                        cum[i] += k
                    self._total += sum(vals)
                    d.folded += k
                if not d.dead or buf:
                    keep.append(d)
            self._members = keep

    def try_fold(self) -> None:
        """Fold unless another thread is at it (the hot path never waits for a lock)."""
        if self._fold_lock.acquire(blocking=False):
            try:
                self.fold()
            finally:
                self._fold_lock.release()

    def count_of(self, d: Durations) -> int:
        """Observations of one member so far (folded or not)."""
        with self._fold_lock:
            return d.folded + len(d.buf)

    def count(self) -> int:
        with self._fold_lock:
            return self._cum[-1] + sum(len(d.buf) for d in self._members)

    def value(self) -> HistogramValue:
        with self._fold_lock:
            self.fold()
            return HistogramValue(self._bounds, tuple(self._cum), self._total, self._cum[-1])


class _CountOf(Counter):
    """A counter that is the number of values a ``Timings`` has seen (acquires = waits)."""

    __slots__ = ("_timings",)

    def __init__(self, timings: Timings) -> None:
        super().__init__()
        self._timings = timings

    def value(self) -> int:
        return self._timings.count()


class Recorder:
    """The hot-path handles of one instrumented pool, and the readers derived from them.

    Counters and histograms belong to the pool's group (every pool of one name shares them,
    as the registry's groups do); what is per pool is read per pool: ``held`` holds the
    acquire time of each resource out through a ``with`` (a float is its own key: two
    acquires never read the same clock value), ``held_ids`` maps ``id(resource)`` to its
    acquire time where resources come back by value (``release(r)``, ``put(r)``), and the
    private counts of started, successful and failed acquires give the pending ones.
    """

    __slots__ = ("_failed", "_started", "_use", "_wait", "created", "destroyed", "errors",
                 "exhausted", "exhausted_types", "held", "held_ids", "started", "use", "wait")

    def __init__(self, comp: Component, exhausted: Iterable[type[BaseException]] = ()) -> None:
        self.exhausted_types = tuple(dict.fromkeys((*EXHAUSTED, *exhausted)))
        self._started = Counter()
        self.started: Callable[[], int] = self._started.inc
        self._failed = Counter()
        self.exhausted: Callable[[], int] = comp.counter(EXHAUSTED_TOTAL).inc
        self.errors: Callable[[], int] = comp.counter(ERRORS).inc
        self._wait = _group_timings(comp, WAIT)
        self._use = _group_timings(comp, USE)
        # This pool's buffers (``wait.add``/``use.add`` on the hot path), closed with it.
        self.wait = self._wait.member()
        self.use = self._use.member()
        obj = comp.ref() if comp.ref is not None else None
        if obj is not None:
            weakref.finalize(obj, _close_all, self.wait, self.use)
        # Pools whose creations memexport sees itself (queues, SQLAlchemy events) count them
        # here once ``count_lifecycle`` is called; others read them (``SizeDelta``) or omit.
        self.created: Callable[[], int] = _noop
        self.destroyed: Callable[[], int] = _noop
        self.held: set[float] = set()
        self.held_ids: dict[int, float] = {}

    def count_lifecycle(self, comp: Component) -> None:
        """Export created/destroyed from events memexport sees (``created()``/``destroyed()``)."""
        self.created = comp.counter(CREATED).inc
        self.destroyed = comp.counter(DESTROYED).inc

    # cold paths

    def failed(self, exc: BaseException | None, cancelled_is_exhausted: bool = False,
               exhausted: bool = False) -> None:
        """Count a failed acquire: exhausted (timed out / refused / cancelled wait: the
        ``exhausted`` types, or ``exhausted=True`` from an integration that knows) or error."""
        self._failed.inc()
        if exhausted or isinstance(exc, self.exhausted_types) or (
                cancelled_is_exhausted and isinstance(exc, asyncio.CancelledError)):
            self.exhausted()
        else:
            self.errors()

    def fold(self) -> None:
        self._wait.try_fold()
        self._use.try_fold()

    # scrape-time readers (they take the pool and ignore it: the numbers are ours)

    def in_use(self, _obj: Any = None) -> int:
        """Resources of this pool acquired through memexport and not yet released."""
        return len(self.held) + len(self.held_ids)

    def pending(self, _obj: Any = None) -> int:
        """Acquires started and not finished (the finishes read first: never negative)."""
        done = self._wait.count_of(self.wait) + self._failed.value()
        return max(0, self._started.value() - done)

    def oldest(self, _obj: Any = None) -> float:
        starts = list(self.held.copy())
        starts.extend(self.held_ids.copy().values())
        if not starts:
            return 0.0
        return max(0.0, _clock() - min(starts))


def _close_all(*durations: Durations) -> None:
    for d in durations:
        d.close()


_install_lock = threading.Lock()


def _group_timings(comp: Component, metric: str) -> Timings:
    """The ``Timings`` of ``metric`` in the component's group (installed on first use, in
    place of the plain histogram: the registry reads its ``value()``). The wait timings also
    back ``memexport_pool_acquires_total``: every acquire that got a resource waited once."""
    group = comp.group
    key = (metric, ())
    with _install_lock:
        timings = group.histograms.get(key)
        if isinstance(timings, Timings):
            return timings
        comp.histogram(metric)  # validates the metric against the kind
        timings = Timings(KIND.by_name[metric].buckets)
        group.histograms[key] = timings
        if metric == WAIT:
            comp.counter(ACQUIRES)
            group.counters[(ACQUIRES, ())] = _CountOf(timings)
        return timings


class SizeDelta:
    """Created/destroyed totals from a pool's own current size, read at scrape.

    For pools that keep a count of their resources (the guide's ``size``, redis-py's
    ``_created_connections``) but no history: increases are creations and decreases
    destructions, as seen between scrapes (a create and destroy inside one scrape interval
    cancel out). The resources present at wrap time count as created.
    """

    __slots__ = ("_created", "_destroyed", "_last", "_lock", "_reader")

    def __init__(self, reader: Reader, obj: Any) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        first = _safe_number(reader, obj)
        self._last = first or 0.0
        self._created = self._last
        self._destroyed = 0.0

    def _update(self, obj: Any) -> None:
        value = self._reader(obj)
        if value is None:
            return
        value = float(value)
        with self._lock:
            delta = value - self._last
            if delta > 0:
                self._created += delta
            elif delta < 0:
                self._destroyed -= delta
            self._last = value

    def created(self, obj: Any) -> float:
        self._update(obj)
        return self._created

    def destroyed(self, obj: Any) -> float:
        self._update(obj)
        return self._destroyed


def _safe_number(reader: Reader, obj: Any) -> float | None:
    try:
        value = reader(obj)
    except Exception:
        return None
    return None if value is None else float(value)


# -- readers --------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _store_reader(obj: Any) -> Reader | None:
    """The idle count of a pool keeping its idle resources in a queue/list attribute."""
    for attr in IDLE_ATTRS:
        try:
            store = inspect.getattr_static(obj, attr)
        except AttributeError:
            continue
        get = attrgetter(attr)
        if isinstance(store, queue.Queue | asyncio.Queue):
            return lambda o, g=get: g(o).qsize()
        if isinstance(store, list | deque | set | frozenset | tuple):
            return lambda o, g=get: len(g(o))
    return None


def _number_reader(obj: Any, names: Iterable[str]) -> Reader | None:
    """A reader of the first plain numeric attribute of ``obj`` among ``names``."""
    for attr in names:
        try:
            value = inspect.getattr_static(obj, attr)
        except AttributeError:
            continue
        if _is_number(value) and value >= 0:
            return attrgetter(attr)
    return None


def _exhausted_types(spec: Any) -> tuple[type[BaseException], ...]:
    if spec is None:
        return ()
    items = (spec,) if isinstance(spec, type) else tuple(spec)
    for t in items:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ValueError(f"exhausted={spec!r}: pass exception classes, e.g. "
                             f"exhausted=(MyPoolEmpty,)")
    return items


# -- proxies --------------------------------------------------------------------------------


class PoolProxy(Proxy):
    """Base of memexport's pool proxies: the wrapped pool in every respect but ``type()``.

    Subclasses are made per proxy with the hot methods as closures over the recorder.
    ``with proxy:`` returns the proxy (not the bare pool), so work done inside is counted.
    """

    # Plain attribute lookup: wrapt's __getattr__ still forwards what the proxy lacks.
    __getattribute__ = object.__getattribute__

    def __enter__(self) -> Any:
        wrapped = self.__wrapped__
        result = wrapped.__enter__()
        return self if result is wrapped else result

    def __exit__(self, *exc: Any) -> Any:
        return self.__wrapped__.__exit__(*exc)

    async def __aenter__(self) -> Any:
        wrapped = self.__wrapped__
        result = await wrapped.__aenter__()
        return self if result is wrapped else result

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc)


def make_proxy(wrapped: Any, methods: dict[str, Any], recorder: Recorder,
                base: type[PoolProxy] = PoolProxy) -> PoolProxy:
    ns: dict[str, Any] = {"__slots__": (), "__module__": __name__, **methods}
    cls = type(base.__name__, (base,), ns)
    proxy = cls(wrapped)
    proxy._self_recorder = recorder
    return proxy


def _clear(cells: list[Any]) -> None:
    for cell in cells:
        cell.cell_contents = None


def _release_on_death(proxy: PoolProxy, functions: Iterable[Any], values: Iterable[Any]) -> None:
    """Empty the closure cells of ``functions`` holding ``values`` (bound methods of the
    pool) when ``proxy`` dies: the per-proxy class holding the functions is a reference
    cycle that may outlive the proxy until the next garbage collection."""
    targets = list(values)
    cells = []
    for fn in functions:
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if any(value is t for t in targets):
                cells.append(cell)
    if cells:
        weakref.finalize(proxy, _clear, cells)


# -- acquire wrappers -----------------------------------------------------------------------

_GCM = getattr(contextlib, "_GeneratorContextManager", None)
_AGCM = getattr(contextlib, "_AsyncGeneratorContextManager", None)


def _probe() -> Any:
    yield


async def _async_probe() -> Any:
    yield


# Every @contextmanager / @asynccontextmanager method shares its helper's code object.
_CM_HELPER_CODE = getattr(contextlib.contextmanager(_probe), "__code__", None)
_ASYNC_CM_HELPER_CODE = getattr(contextlib.asynccontextmanager(_async_probe), "__code__", None)


def _contextlib_exit(gen: Any, typ: Any, value: Any, tb: Any) -> Any:
    """``__exit__`` with an exception, exactly as contextlib's own would run it."""
    cm = _GCM.__new__(_GCM)  # type: ignore[union-attr]
    cm.gen = gen
    return cm.__exit__(typ, value, tb)


async def _contextlib_aexit(gen: Any, typ: Any, value: Any, tb: Any) -> Any:
    """``__aexit__`` with an exception, exactly as contextlib's own would run it."""
    cm = _AGCM.__new__(_AGCM)  # type: ignore[union-attr]
    cm.gen = gen
    return await cm.__aexit__(typ, value, tb)


def _generator_of(method: Any) -> tuple[Callable[..., Any] | None, bool]:
    """(generator function, is async) behind a ``@contextlib.contextmanager`` or
    ``@contextlib.asynccontextmanager`` method; (None, False) for anything else."""
    func = getattr(method, "__func__", method)
    code = getattr(func, "__code__", None)
    gen = getattr(func, "__wrapped__", None)
    if code is None or gen is None:
        return None, False
    if _GCM is not None and code is _CM_HELPER_CODE and inspect.isgeneratorfunction(gen):
        return gen, False
    if (_AGCM is not None and code is _ASYNC_CM_HELPER_CODE
            and inspect.isasyncgenfunction(gen)):
        return gen, True
    return None, False


def _acquire_classes(rec: Recorder) -> tuple[type, type, type]:
    """Per-pool ``with``/``async with`` wrappers whose methods close over the recorder.

    The bookkeeping after an acquire and before a release is written out in each method on
    purpose: a shared helper would add a call per acquire and per release, about 3 % of the
    guide pool's acquire+release, whose budget for instrumentation is 10 %.
    """
    clock = _clock
    started = rec.started
    wait_add = rec.wait.add
    use_add = rec.use.add
    hold = rec.held.add
    unhold = rec.held.discard
    held_ids = rec.held_ids
    failed = rec.failed
    fold = rec.fold
    mask = FOLD_MASK

    class GeneratorAcquire:
        """Drives a ``@contextmanager`` acquire's generator, as contextlib would."""

        __slots__ = ("_gen", "_t")

        def __enter__(self) -> Any:
            n = started()
            t0 = clock()
            try:
                resource = next(self._gen)
            except StopIteration:
                failed(None)
                raise RuntimeError("generator didn't yield") from None
            except BaseException as exc:
                failed(exc)
                raise
            t = clock()
            wait_add(t - t0)
            hold(t)
            self._t = t
            if not n & mask:
                fold()
            return resource

        def __exit__(self, typ: Any, value: Any, tb: Any) -> Any:
            t = clock()
            start = self._t
            unhold(start)
            use_add(t - start)
            if typ is None:
                gen = self._gen
                try:
                    next(gen)
                except StopIteration:
                    return False
                try:
                    raise RuntimeError("generator didn't stop")
                finally:
                    gen.close()
            return _contextlib_exit(self._gen, typ, value, tb)

    class AsyncGeneratorAcquire:
        """Drives an ``@asynccontextmanager`` acquire's generator, as contextlib would."""

        __slots__ = ("_gen", "_t")

        async def __aenter__(self) -> Any:
            n = started()
            t0 = clock()
            try:
                resource = await self._gen.__anext__()
            except StopAsyncIteration:
                failed(None)
                raise RuntimeError("generator didn't yield") from None
            except BaseException as exc:
                failed(exc, True)
                raise
            t = clock()
            wait_add(t - t0)
            hold(t)
            self._t = t
            if not n & mask:
                fold()
            return resource

        async def __aexit__(self, typ: Any, value: Any, tb: Any) -> Any:
            t = clock()
            start = self._t
            unhold(start)
            use_add(t - start)
            if typ is None:
                gen = self._gen
                try:
                    await gen.__anext__()
                except StopAsyncIteration:
                    return False
                try:
                    raise RuntimeError("generator didn't stop")
                finally:
                    await gen.aclose()
            return await _contextlib_aexit(self._gen, typ, value, tb)

    class Acquire:
        """Wraps whatever ``acquire()`` returned: ``with``, ``async with`` or ``await``."""

        __slots__ = ("_cm", "_t")

        def __enter__(self) -> Any:
            cm = self._cm
            enter = getattr(cm, "__enter__", None)
            if enter is None:
                raise TypeError(f"acquire() returned a {type(cm).__qualname__}, which does not "
                                f"support 'with' (use 'async with', or pass mode='call' and "
                                f"release= to memexport.pool if it is the resource itself)")
            n = started()
            t0 = clock()
            try:
                resource = enter()
            except BaseException as exc:
                failed(exc)
                raise
            t = clock()
            wait_add(t - t0)
            hold(t)
            self._t = t
            if not n & mask:
                fold()
            return resource

        def __exit__(self, typ: Any, value: Any, tb: Any) -> Any:
            t = clock()
            start = self._t
            unhold(start)
            use_add(t - start)
            return self._cm.__exit__(typ, value, tb)

        async def __aenter__(self) -> Any:
            cm = self._cm
            enter = getattr(cm, "__aenter__", None)
            if enter is None:
                raise TypeError(f"acquire() returned a {type(cm).__qualname__}, which does not "
                                f"support 'async with' (use 'with')")
            n = started()
            t0 = clock()
            try:
                resource = await enter()
            except BaseException as exc:
                failed(exc, True)
                raise
            t = clock()
            wait_add(t - t0)
            hold(t)
            self._t = t
            if not n & mask:
                fold()
            return resource

        async def __aexit__(self, typ: Any, value: Any, tb: Any) -> Any:
            t = clock()
            start = self._t
            unhold(start)
            use_add(t - start)
            return await self._cm.__aexit__(typ, value, tb)

        def __await__(self) -> Any:
            return self._awaited().__await__()

        async def _awaited(self) -> Any:
            # ``r = await pool.acquire()`` then ``pool.release(r)`` (asyncpg style).
            started()
            t0 = clock()
            try:
                resource = await self._cm
            except BaseException as exc:
                failed(exc, True)
                raise
            t = clock()
            wait_add(t - t0)
            held_ids[id(resource)] = t
            return resource

    return GeneratorAcquire, AsyncGeneratorAcquire, Acquire


#: ``inner(self, *args, **kwargs)``: the pool's own acquire/release, given the proxy (or,
#: for a decorated class, the instance) as ``self``.
Inner = Callable[..., Any]


def _call_functions(rec: Recorder, inner_acquire: Inner, inner_release: Inner,
                    is_async: bool) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(acquire, release) for pools whose ``acquire()`` returns the resource and
    ``release(r)`` takes it back (``is_async``: ``acquire`` is a coroutine function)."""
    clock = _clock
    started = rec.started
    wait_add = rec.wait.add
    use_add = rec.use.add
    held_ids = rec.held_ids
    pop = held_ids.pop
    failed = rec.failed
    fold = rec.fold
    mask = FOLD_MASK

    def acquire(self: Any, *args: Any, **kwargs: Any) -> Any:
        n = started()
        t0 = clock()
        try:
            resource = inner_acquire(self, *args, **kwargs)
        except BaseException as exc:
            failed(exc)
            raise
        t = clock()
        wait_add(t - t0)
        held_ids[id(resource)] = t
        if not n & mask:
            fold()
        return resource

    async def acquire_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        n = started()
        t0 = clock()
        try:
            resource = await inner_acquire(self, *args, **kwargs)
        except BaseException as exc:
            failed(exc, True)
            raise
        t = clock()
        wait_add(t - t0)
        held_ids[id(resource)] = t
        if not n & mask:
            fold()
        return resource

    def release(self: Any, resource: Any, *args: Any, **kwargs: Any) -> Any:
        start = pop(id(resource), None)
        if start is not None:
            use_add(clock() - start)
        return inner_release(self, resource, *args, **kwargs)

    return (acquire_async if is_async else acquire), release


def _proxied(method_name: str) -> Inner:
    """``inner(proxy, ...)`` calling the wrapped pool's ``method_name``."""

    def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.__wrapped__, method_name)(*args, **kwargs)

    return inner


# -- registration ---------------------------------------------------------------------------

_instrumented: dict[tuple[int, int], tuple[weakref.ref[Any], str]] = {}
_instrumented_lock = threading.Lock()


@contextlib.contextmanager
def claimed(obj: Any, name: str, registry: Registry) -> Any:
    """Refuse to instrument the same object twice in one registry (it would count twice);
    the claim is dropped again if instrumenting fails."""
    key = (id(registry), id(obj))
    with _instrumented_lock:
        known = _instrumented.get(key)
        if known is not None and known[0]() is obj:
            raise ValueError(f"this {type(obj).__qualname__} is already instrumented as pool "
                             f"{known[1]!r}: wrap it once and share the object returned")
        try:
            ref = weakref.ref(obj, lambda _r, k=key: _instrumented.pop(k, None))
        except TypeError:
            ref = None  # the registry raises the helpful error
        if ref is not None:
            _instrumented[key] = (ref, name)
    try:
        yield
    except BaseException:
        with _instrumented_lock:
            _instrumented.pop(key, None)
        raise


def register(target: Any, name: str, registry: Registry, *,
             exhausted: Iterable[type[BaseException]] = (),
             idle: Reader | None = None, in_use: Reader | None = None,
             max_size: Reader | None = None, pending: Reader | None = None,
             size: Reader | None = None, lifecycle: bool = False,
             unwrap: bool = False) -> tuple[Component, Recorder]:
    """Register ``target`` as pool ``name`` and wire its gauges; return the hot handles.

    Readers get the pool (``unwrap``: ``target`` is a proxy and readers get the pool it
    wraps). ``in_use``/``pending`` default to memexport's own counts. Created/destroyed come
    from ``size`` (the pool's current number of resources, through :class:`SizeDelta`), or
    from events the caller reports (``lifecycle``: ``rec.created()``/``rec.destroyed()``),
    or are not exported.
    """
    comp = registry.register(target, KIND, name)
    rec = Recorder(comp, exhausted)

    def wrap(reader: Reader) -> Reader:
        return (lambda p: reader(p.__wrapped__)) if unwrap else reader

    comp.gauge(RESOURCES, wrap(in_use) if in_use is not None else rec.in_use, "in_use")
    if idle is not None:
        comp.gauge(RESOURCES, wrap(idle), "idle")
    if max_size is not None:
        comp.gauge(MAX_RESOURCES, wrap(max_size))
    comp.gauge(PENDING, wrap(pending) if pending is not None else rec.pending)
    comp.gauge(OLDEST, rec.oldest)
    if lifecycle:
        rec.count_lifecycle(comp)
    elif size is not None:
        delta = SizeDelta(wrap(size), target)
        comp.pulled_counter(CREATED, delta.created)
        comp.pulled_counter(DESTROYED, delta.destroyed)
    return comp, rec


def _queue_pool(q: Any, name: str, registry: Registry,
                exhausted: tuple[type[BaseException], ...]) -> PoolProxy:
    """A ``queue.Queue`` / ``asyncio.Queue`` of resources: ``get`` acquires, ``put`` releases."""
    is_async = isinstance(q, asyncio.Queue)
    bounded = q.maxsize > 0
    _comp, rec = register(q, name, registry, exhausted=exhausted, lifecycle=True,
                          idle=lambda o: o.qsize(),
                          max_size=(lambda o: o.maxsize) if bounded else None)
    for _ in range(q.qsize()):  # resources put in before wrapping were created too
        rec.created()
    clock = _clock
    started = rec.started
    wait_add = rec.wait.add
    use_add = rec.use.add
    held_ids = rec.held_ids
    pop = held_ids.pop
    created = rec.created
    failed = rec.failed
    fold = rec.fold
    mask = FOLD_MASK

    # The bodies are written out in each method, over the queue's own bound methods: a
    # shared helper or an attribute lookup per call would be a third of what the
    # instrumentation costs. The proxy empties these closure cells when it dies.
    q_get, q_put, q_get_nowait, q_put_nowait = q.get, q.put, q.get_nowait, q.put_nowait

    def get_nowait(self: Any) -> Any:
        n = started()
        t0 = clock()
        try:
            resource = q_get_nowait()
        except BaseException as exc:
            failed(exc)
            raise
        t = clock()
        wait_add(t - t0)
        held_ids[id(resource)] = t
        if not n & mask:
            fold()
        return resource

    def put_nowait(self: Any, item: Any) -> None:
        q_put_nowait(item)
        start = pop(id(item), None)
        if start is None:
            created()
        else:
            use_add(clock() - start)

    get: Callable[..., Any]
    put: Callable[..., Any]
    if is_async:
        async def get_async(self: Any) -> Any:
            n = started()
            t0 = clock()
            try:
                resource = await q_get()
            except BaseException as exc:
                failed(exc, True)
                raise
            t = clock()
            wait_add(t - t0)
            held_ids[id(resource)] = t
            if not n & mask:
                fold()
            return resource

        async def put_async(self: Any, item: Any) -> None:
            await q_put(item)
            start = pop(id(item), None)
            if start is None:
                created()
            else:
                use_add(clock() - start)

        get, put = get_async, put_async
    else:
        def get_sync(self: Any, block: bool = True, timeout: float | None = None) -> Any:
            n = started()
            t0 = clock()
            try:
                resource = q_get(block, timeout)
            except BaseException as exc:
                failed(exc)
                raise
            t = clock()
            wait_add(t - t0)
            held_ids[id(resource)] = t
            if not n & mask:
                fold()
            return resource

        def put_sync(self: Any, item: Any, block: bool = True,
                     timeout: float | None = None) -> None:
            q_put(item, block, timeout)
            start = pop(id(item), None)
            if start is None:
                created()
            else:
                use_add(clock() - start)

        get, put = get_sync, put_sync
    methods = {"get": get, "put": put, "get_nowait": get_nowait, "put_nowait": put_nowait}
    proxy = make_proxy(q, methods, rec)
    _release_on_death(proxy, methods.values(), (q_get, q_put, q_get_nowait, q_put_nowait))
    return proxy


def _executor_pool(ex: concurrent.futures.ThreadPoolExecutor, name: str,
                   registry: Registry) -> PoolProxy:
    """A thread pool: a worker running a task is in use; queued tasks are pending.

    Wait is the time a task spent queued, use the time it ran. Workers are read from the
    executor at scrape: created = threads started, destroyed = threads that ended.
    """

    def threads(o: Any) -> list[threading.Thread]:
        return list(getattr(o, "_threads", ()))

    running: list[Callable[[Any], int]] = []
    submitted = Counter()

    def idle(o: Any) -> int:
        alive = sum(1 for t in threads(o) if t.is_alive())
        return max(0, alive - running[0](o))

    def pending(o: Any) -> int:
        # Two upper bounds of the backlog: tasks submitted and not started (cancelled ones
        # never start), and the work queue's length (shutdown adds a sentinel to it).
        not_started = submitted.value() - rec_started.value()
        work = getattr(o, "_work_queue", None)
        if work is None:
            return max(0, not_started)
        return max(0, min(not_started, work.qsize()))

    comp, rec = register(ex, name, registry, idle=idle, pending=pending,
                         max_size=_number_reader(ex, ("_max_workers",)))
    running.append(rec.in_use)
    rec_started = rec._started
    submit_inc = submitted.inc
    comp.pulled_counter(CREATED, lambda o: len(threads(o)))
    comp.pulled_counter(DESTROYED, lambda o: sum(1 for t in threads(o) if not t.is_alive()))
    clock = _clock
    started = rec.started
    wait_add = rec.wait.add
    use_add = rec.use.add
    hold = rec.held.add
    unhold = rec.held.discard
    fold = rec.fold
    mask = FOLD_MASK

    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        submitted = clock()
        submit_inc()

        def run() -> Any:
            n = started()
            t = clock()
            wait_add(t - submitted)
            hold(t)
            try:
                return fn(*args, **kwargs)
            finally:
                unhold(t)
                use_add(clock() - t)
                if not n & mask:
                    fold()

        return self.__wrapped__.submit(run)

    def map(self: Any, fn: Callable[..., Any], *iterables: Any, **kwargs: Any) -> Any:
        # Executor.map with this proxy as ``self`` submits through submit() above.
        return concurrent.futures.Executor.map(self, fn, *iterables, **kwargs)

    return make_proxy(ex, {"submit": submit, "map": map}, rec)


class _How:
    """How a user's pool hands out resources (from its class, before any instance exists)."""

    __slots__ = ("acquire", "gen_async", "gen_fn", "is_async", "mode", "release")

    def __init__(self, owner: Any, label: str, acquire: str | None, release: str | None,
                 mode: str | None) -> None:
        if mode not in (None, "context", "call"):
            raise ValueError(f"mode={mode!r}: use 'context' (with pool.acquire() as r) or "
                             f"'call' (r = pool.acquire(); pool.release(r))")
        for what, attr in (("acquire", acquire), ("release", release)):
            if attr is not None and (not isinstance(attr, str) or not attr.isidentifier()):
                raise ValueError(f"{what}={attr!r} is not a method name")
        self.acquire = acquire or "acquire"
        method = getattr(owner, self.acquire, None)
        if not callable(method):
            if acquire is not None:
                raise ValueError(f"acquire={acquire!r}: {label} has no method {acquire!r}")
            raise TypeError(_cannot_tell(label))
        if release is not None and not callable(getattr(owner, release, None)):
            raise ValueError(f"release={release!r}: {label} has no method {release!r}")
        self.gen_fn, self.gen_async = _generator_of(method) if mode != "call" else (None, False)
        is_cm = self.gen_fn is not None
        self.is_async = inspect.iscoroutinefunction(method)
        if mode is None:
            if is_cm:
                mode = "context"
            elif release is not None or self.is_async:
                mode = "call"
            elif callable(getattr(owner, "release", None)):
                raise TypeError(
                    f"memexport.pool cannot tell how {label}.{self.acquire}() hands out "
                    f"resources: pass mode='context' if it returns a context manager ('with "
                    f"pool.{self.acquire}() as r'), or mode='call' if it returns the resource "
                    f"that pool.release(r) takes back")
            else:
                mode = "context"
        self.mode = mode
        self.release = release
        if mode == "call":
            self.release = release or "release"
            if not callable(getattr(owner, self.release, None)):
                raise TypeError(f"memexport.kinds.pool: with mode='call', {label} needs a method "
                                f"taking resources back: pass release='<method name>'")
        else:
            self.is_async = False


def _readers(obj: Any, *, idle: Any, in_use: Any, max_size: Any, size: Any
             ) -> dict[str, Reader | None]:
    """Explicit readers, else what the pool keeps: a queue of idle resources, a max size
    attribute, a current-size attribute."""
    return {
        "idle": reader_from(idle, "idle") or _store_reader(obj),
        "in_use": reader_from(in_use, "in_use"),
        "max_size": reader_from(max_size, "max_size") or _number_reader(obj, MAX_ATTRS),
        "size": reader_from(size, "size") or _number_reader(obj, SIZE_ATTRS),
    }


def _check_readers(idle: Any, in_use: Any, max_size: Any, size: Any) -> None:
    for what, spec in (("idle", idle), ("in_use", in_use), ("max_size", max_size),
                       ("size", size)):
        reader_from(spec, what)


def _cannot_tell(label: str) -> str:
    return (f"memexport.pool cannot tell how a {label} hands out resources: pass "
            f"acquire='<method>' (a method returning a context manager, or returning the "
            f"resource together with release='<method>'), and optionally idle=, in_use=, "
            f"max_size=, size= (numbers, attribute names or callables); or wrap a supported "
            f"pool: a class with a contextmanager acquire(), queue.Queue, asyncio.Queue, a "
            f"SQLAlchemy engine or pool, a redis-py ConnectionPool, a ThreadPoolExecutor")


_P = inspect.Parameter
_GENERIC_CALL = ("*args, **kwargs", "*args, **kwargs", {})


def _forwarding(fn: Any, skip_first: bool) -> tuple[str, str, dict[str, Any]]:
    """(parameters, call arguments, defaults) copying ``fn``'s signature, so a wrapper passes
    its arguments on as they came: ``*args, **kwargs`` forwarding alone costs more than all
    of the instrumentation. Falls back to ``*args, **kwargs`` for signatures it can't copy.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return _GENERIC_CALL
    if skip_first:
        if not params or params[0].kind not in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
            return _GENERIC_CALL
        params = params[1:]
    out: list[str] = []
    call: list[str] = []
    ns: dict[str, Any] = {}
    last_pos_only = max((i for i, p in enumerate(params) if p.kind is _P.POSITIONAL_ONLY),
                        default=-1)
    star = False
    for i, p in enumerate(params):
        if not p.name.isidentifier() or p.name.startswith("_mx_"):
            return _GENERIC_CALL
        if p.kind is _P.VAR_POSITIONAL:
            out.append("*" + p.name)
            call.append("*" + p.name)
            star = True
            continue
        if p.kind is _P.VAR_KEYWORD:
            out.append("**" + p.name)
            call.append("**" + p.name)
            continue
        if p.kind is _P.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        piece = p.name
        if p.default is not _P.empty:
            ns[f"_mx_d{i}"] = p.default
            piece += f"=_mx_d{i}"
        out.append(piece)
        call.append(f"{p.name}={p.name}" if p.kind is _P.KEYWORD_ONLY else p.name)
        if i == last_pos_only:
            out.append("/")
    return ", ".join(out), ", ".join(call), ns


def _compile(template: Any, signature_of: Any, skip_first: bool, body: Sequence[str],
             ns: dict[str, Any]) -> Callable[..., Any]:
    """``def <name>(_mx_self, <template's parameters>): <body>``, ``{call}`` in ``body``
    standing for the arguments passed on; named and documented like ``template``."""
    params, call, defaults = _forwarding(signature_of, skip_first)
    fn_name = getattr(template, "__name__", "acquire")
    if not fn_name.isidentifier():
        fn_name = "acquire"
    lines = "".join(f"    {line.format(call=call)}\n" for line in body)
    src = f"def {fn_name}(_mx_self, {params}):\n{lines}"
    scope = {**ns, **defaults}
    exec(compile(src, f"<memexport.pool {fn_name}>", "exec"), scope)
    fn = scope[fn_name]
    for meta in ("__qualname__", "__doc__", "__module__"):
        with contextlib.suppress(AttributeError, TypeError):
            setattr(fn, meta, getattr(template, meta))
    fn.__wrapped__ = template
    return fn


def _proxy_methods(obj: Any, rec: Recorder, how: _How) -> dict[str, Any]:
    """The instrumented acquire (and release) of a proxy of a user's pool."""
    method = getattr(obj, how.acquire)
    if how.mode == "call":
        assert how.release is not None
        acquire, release = _call_functions(rec, _proxied(how.acquire), _proxied(how.release),
                                           how.is_async)
        return {how.acquire: acquire, how.release: release}
    generator_cls, async_generator_cls, acquire_cls = _acquire_classes(rec)
    ns: dict[str, Any] = {"_mx_new": _new}
    if how.gen_fn is not None:
        ns.update(_mx_cls=async_generator_cls if how.gen_async else generator_cls,
                  _mx_gen=how.gen_fn)
        body = ["_mx_a = _mx_new(_mx_cls)",
                "_mx_a._gen = _mx_gen(_mx_self.__wrapped__, {call})",
                "return _mx_a"]
        fn = _compile(method, how.gen_fn, True, body, ns)
    else:
        ns.update(_mx_cls=acquire_cls)
        body = ["_mx_a = _mx_new(_mx_cls)",
                f"_mx_a._cm = _mx_self.__wrapped__.{how.acquire}({{call}})",
                "return _mx_a"]
        fn = _compile(method, method, False, body, ns)
    methods: dict[str, Any] = {how.acquire: fn}
    if how.release is not None:
        # ``r = await pool.acquire()`` then ``pool.release(r)``: the await path holds by id.
        methods[how.release] = _call_functions(rec, _proxied(how.acquire),
                                               _proxied(how.release), False)[1]
    return methods


def _generic_pool(obj: Any, name: str, registry: Registry, how: _How, *, idle: Any,
                  in_use: Any, max_size: Any, size: Any,
                  exhausted: tuple[type[BaseException], ...]) -> PoolProxy:
    """A user's pool: ``acquire()`` giving a context manager, or acquire/release by value."""
    readers = _readers(obj, idle=idle, in_use=in_use, max_size=max_size, size=size)
    _comp, rec = register(obj, name, registry, exhausted=exhausted, **readers)
    return make_proxy(obj, _proxy_methods(obj, rec, how), rec)


# -- class decoration -----------------------------------------------------------------------

#: Instance attribute of a decorated class: (acquire class, call-mode acquire, release).
_STATE = "_memexport_pool_state"


def _instance_state(rec: Recorder, how: _How, original_acquire: Any,
                    original_release: Any) -> tuple[Any, Any, Any]:
    release = None
    if how.release is not None:
        acquire, release = _call_functions(rec, original_acquire, original_release,
                                           how.is_async)
        if how.mode == "call":
            return None, acquire, release
    generator_cls, async_generator_cls, acquire_cls = _acquire_classes(rec)
    if how.gen_fn is None:
        return acquire_cls, None, release
    return (async_generator_cls if how.gen_async else generator_cls), None, release


def _instrument_class(cls: type, name: str, registry: Registry, how: _How, *, idle: Any,
                      in_use: Any, max_size: Any, size: Any,
                      exhausted: tuple[type[BaseException], ...]) -> type:
    """Replace ``cls``'s acquire (and release) once; register every instance at __init__.

    Instances keep their class; each gets its own counters (stored on it). An instance
    whose registration failed (counted in the collector errors) behaves exactly as before.
    """
    if "__memexport_pool__" in vars(cls):
        raise ValueError(f"class {cls.__qualname__} is already instrumented as pool "
                         f"{vars(cls)['__memexport_pool__']!r}")
    original_init = cls.__init__
    original_acquire = getattr(cls, how.acquire)
    original_release = getattr(cls, how.release) if how.release else None
    explicit = {"idle": idle, "in_use": in_use, "max_size": max_size, "size": size}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        try:
            readers = _readers(self, **explicit)
            _comp, rec = register(self, name, registry, exhausted=exhausted, **readers)
            state = _instance_state(rec, how, original_acquire, original_release)
            object.__setattr__(self, _STATE, state)
        except Exception as exc:  # never break the app's constructor
            registry.errors.record("pool", f"pool {name!r} ({cls.__qualname__} instance)", exc)

    ns: dict[str, Any] = {"_mx_new": _new, "_mx_key": _STATE, "_mx_orig": original_acquire}
    if how.mode == "call":
        def acquire(self: Any, *args: Any, **kwargs: Any) -> Any:
            state = getattr(self, _STATE, None)
            if state is None:
                return original_acquire(self, *args, **kwargs)
            return state[1](self, *args, **kwargs)
    elif how.gen_fn is not None:
        ns["_mx_gen"] = how.gen_fn
        acquire = _compile(original_acquire, how.gen_fn, True, [
            "_mx_st = getattr(_mx_self, _mx_key, None)",
            "if _mx_st is None:",
            "    return _mx_orig(_mx_self, {call})",
            "_mx_a = _mx_new(_mx_st[0])",
            "_mx_a._gen = _mx_gen(_mx_self, {call})",
            "return _mx_a"], ns)
    else:
        acquire = _compile(original_acquire, original_acquire, True, [
            "_mx_st = getattr(_mx_self, _mx_key, None)",
            "if _mx_st is None:",
            "    return _mx_orig(_mx_self, {call})",
            "_mx_a = _mx_new(_mx_st[0])",
            "_mx_a._cm = _mx_orig(_mx_self, {call})",
            "return _mx_a"], ns)

    def release(self: Any, resource: Any, *args: Any, **kwargs: Any) -> Any:
        state = getattr(self, _STATE, None)
        if state is None:
            return original_release(self, resource, *args, **kwargs)  # type: ignore[misc]
        return state[2](self, resource, *args, **kwargs)

    replaced: list[tuple[str, Any, Any]] = [("__init__", __init__, original_init)]
    if how.mode == "call":
        replaced.append((how.acquire, acquire, original_acquire))
    else:
        setattr(cls, how.acquire, acquire)
    if how.release is not None:
        replaced.append((how.release, release, original_release))
    for attr, fn, orig in replaced:
        for meta in ("__name__", "__qualname__", "__doc__", "__module__"):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(fn, meta, getattr(orig, meta))
        fn.__wrapped__ = orig
        setattr(cls, attr, fn)
    cls.__memexport_pool__ = name  # type: ignore[attr-defined]
    return cls


# -- the public entry point -----------------------------------------------------------------


def pool(obj: Any = None, name: str | None = None, *, acquire: str | None = None,
         release: str | None = None, mode: str | None = None, idle: Any = None,
         in_use: Any = None, max_size: Any = None, size: Any = None,
         exhausted: Any = None, registry: Registry = REGISTRY) -> Any:
    """Instrument a pool as ``memexport_pool_*{pool=name}``; use what it returns.

    Returns a proxy (context-manager pools, queues, executors, redis-py pools: use it in
    place of the pool), the SQLAlchemy engine/pool itself (instrumented through its events),
    or, for a class, the class itself with every future instance instrumented. Without
    ``obj`` it returns a class decorator. Explicit arguments:

    - ``acquire``/``release``: method names; ``mode``: ``"context"`` (``acquire()`` returns a
      context manager) or ``"call"`` (it returns the resource, ``release(r)`` takes it back);
    - ``idle``, ``in_use``, ``max_size``, ``size`` (current number of resources, for
      created/destroyed): a number, an attribute name or dotted path (a method at the end is
      called), or a callable taking the pool;
    - ``exhausted``: exception classes meaning "no resource to give", besides the defaults
      (``TimeoutError``, ``queue.Empty``, ``asyncio.QueueEmpty``).
    """
    exhausted_types = _exhausted_types(exhausted)
    _check_readers(idle, in_use, max_size, size)
    if obj is None:
        def decorate(target: Any) -> Any:
            return pool(target, name, acquire=acquire, release=release, mode=mode, idle=idle,
                        in_use=in_use, max_size=max_size, size=size, exhausted=exhausted,
                        registry=registry)

        return decorate
    name = validate_name("pool", name)
    if isinstance(obj, PoolProxy):
        raise ValueError(f"this {type(obj.__wrapped__).__qualname__} is already an "
                         f"instrumented pool: wrap the pool once")
    if isinstance(obj, type):
        how = _How(obj, obj.__qualname__, acquire, release, mode)
        return _instrument_class(obj, name, registry, how, idle=idle, in_use=in_use,
                                 max_size=max_size, size=size, exhausted=exhausted_types)
    module = type(obj).__module__ or ""
    explicit = acquire is not None or release is not None or mode is not None
    with claimed(obj, name, registry):
        if not explicit and module.startswith("sqlalchemy"):
            from memexport.integrations import sqlalchemy as sa_integration

            if sa_integration.supports(obj):
                return sa_integration.instrument(obj, name, registry,
                                                 exhausted=exhausted_types)
        if not explicit and module.startswith("redis"):
            from memexport.integrations import redis as redis_integration

            if redis_integration.supports(obj):
                return redis_integration.instrument(obj, name, registry,
                                                    exhausted=exhausted_types)
        if not explicit and isinstance(obj, concurrent.futures.ThreadPoolExecutor):
            return _executor_pool(obj, name, registry)
        if not explicit and isinstance(obj, queue.Queue | asyncio.Queue):
            return _queue_pool(obj, name, registry, exhausted_types)
        how = _How(obj, type(obj).__qualname__, acquire, release, mode)
        return _generic_pool(obj, name, registry, how, idle=idle, in_use=in_use,
                             max_size=max_size, size=size, exhausted=exhausted_types)
