"""The shapes of pool memexport recognises: user pools, queues, thread pool executors.

- a user's pool like the guide's ``ResourcePool`` (``with pool.acquire() as r``), its asyncio
  twin, or acquire/release by value (``mode='call'``): a proxy times each acquire and hold.
  An ``acquire`` made with ``contextlib.contextmanager`` is driven directly (the user's
  generator, with contextlib's exact semantics), so the instrumented call costs about what
  the uninstrumented one does;
- ``queue.Queue`` / ``asyncio.Queue`` used as pools: ``get`` acquires, ``put`` releases (a
  ``put`` of a resource that was never handed out is a created one);
- ``concurrent.futures.ThreadPoolExecutor``: a worker running a task is a resource in use,
  the queued backlog is the pending acquires.

Readers never take the pool's own locks: a lock another thread held at ``fork()`` stays held
in the child, and a scrape there would hang (a queue's idle resources are ``len(q.queue)``,
not ``q.qsize()``).
"""

from __future__ import annotations

import inspect
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, NamedTuple

from memexport.core.checks import shown
from memexport.core.counters import FOLD_MASK
from memexport.core.model import Kind
from memexport.core.registry import Index, Profile
from memexport.instrument.kind import Shape, on_target
from memexport.instrument.proxy import proxy_base
from memexport.instrument.readers import is_number, len_of
from memexport.instrument.templates import compile_functions, forwarding
from memexport.instrument.timing import (
    acquire_classes,
    call_functions,
    generator_of,
    handle_names,
)
from memexport.kinds.pool.table import (
    CREATED,
    DESTROYED,
    MAX_RESOURCES,
    OLDEST,
    RESOURCES,
    PoolOptions,
    PoolState,
    asyncio_loaded,
)

__all__ = ["ContextShape", "ExecutorShape", "How", "how_of", "is_async_queue", "pool_readers",
           "proxy_state"]

#: Attribute names read, when nothing else says, as the pool's idle store / capacity / size.
IDLE_ATTRS = ("pool", "_pool", "queue", "_queue", "idle", "_idle", "free", "_free",
              "available", "_available")
MAX_ATTRS = ("max_size", "maxsize", "max_connections", "max_resources", "capacity",
             "_max_size", "_maxsize")
SIZE_ATTRS = ("size", "_size", "num_resources", "total")

_new = object.__new__
Reader = Callable[[Any], Any]


def is_async_queue(obj: Any) -> bool:
    aio = asyncio_loaded()
    return aio is not None and isinstance(obj, aio.Queue)


def proxy_state(proxy: Any) -> PoolState:
    return proxy._self_state  # type: ignore[no-any-return]


def _store_reader(obj: Any) -> Reader | None:
    """The idle count of a pool keeping its idle resources in a queue/list attribute."""
    for attr in IDLE_ATTRS:
        try:
            store = inspect.getattr_static(obj, attr)
        except AttributeError:
            continue
        if isinstance(store, queue.Queue):  # not qsize(): it takes the queue's lock
            return len_of(attrgetter(f"{attr}.queue"))
        if is_async_queue(store):
            return len_of(attrgetter(f"{attr}._queue"))
        if isinstance(store, list | deque | set | frozenset | tuple):
            return len_of(attrgetter(attr))
    return None


def _number_reader(obj: Any, names: Iterable[str]) -> Reader | None:
    """A reader of the first plain numeric attribute of ``obj`` among ``names``."""
    for attr in names:
        try:
            value = inspect.getattr_static(obj, attr)
        except AttributeError:
            continue
        if is_number(value) and value >= 0:
            return attrgetter(attr)
    return None


def pool_readers(state_of: Callable[[Any], PoolState], *, idle: Reader | None = None,
                 in_use: Reader | None = None, max_size: Reader | None = None,
                 size: Reader | None = None) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """(gauge readers, pulled counters) of a pool: what it keeps, else memexport's counts.

    ``state_of(registered object)`` is the pool's ``PoolState``; the other readers get the
    pool itself. ``size`` (its current number of resources) gives created/destroyed.
    """
    readers: dict[Any, Any] = {
        (RESOURCES, ("in_use",)): in_use if in_use is not None else on_target(
            lambda o: state_of(o).in_use()),
        OLDEST: on_target(lambda o: state_of(o).oldest()),
    }
    if idle is not None:
        readers[(RESOURCES, ("idle",))] = idle
    if max_size is not None:
        readers[MAX_RESOURCES] = max_size
    pulled: dict[Any, Any] = {}
    if size is not None:
        def created(target: Any, _size: Reader = size) -> float:
            st = state_of(target)
            st.size_delta(_size(getattr(target, "__wrapped__", target)))
            return st.created

        def destroyed(target: Any) -> float:
            return state_of(target).destroyed

        pulled[CREATED] = on_target(created)
        pulled[DESTROYED] = on_target(destroyed)
    return readers, pulled


# -- user pools -------------------------------------------------------------------------------


class How(NamedTuple):
    """How a user's pool hands out resources (from its class, before any instance exists)."""

    acquire: str
    release: str | None
    mode: str  # "context" or "call"
    gen_fn: Callable[..., Any] | None
    gen_async: bool
    is_async: bool


def cannot_tell(label: str) -> str:
    return (f"memexport.pool cannot tell how a {shown(label)} hands out resources: pass "
            f"acquire='<method>' (a method returning a context manager, or returning the "
            f"resource together with release='<method>'), and optionally idle=, in_use=, "
            f"max_size=, size= (numbers, attribute names or callables); or wrap a supported "
            f"pool: a class with a contextmanager acquire(), queue.Queue, asyncio.Queue, a "
            f"SQLAlchemy engine or pool, a redis-py ConnectionPool, a ThreadPoolExecutor")


def how_of(owner: Any, label: str, opts: PoolOptions) -> How:
    """Read ``owner``'s acquire (and release); a ``TypeError`` saying what to pass if unclear."""
    acquire = opts.acquire or "acquire"
    method = getattr(owner, acquire, None)
    if not callable(method):
        if opts.acquire is not None:
            raise ValueError(f"acquire={shown(opts.acquire)}: {shown(label)} has no method "
                             f"{shown(opts.acquire)}")
        raise TypeError(cannot_tell(label))
    release = opts.release
    if release is not None and not callable(getattr(owner, release, None)):
        raise ValueError(f"release={shown(release)}: {shown(label)} has no method {shown(release)}")
    gen_fn, gen_async = generator_of(method) if opts.mode != "call" else (None, False)
    is_async = inspect.iscoroutinefunction(method)
    mode = opts.mode
    if mode is None:
        if gen_fn is not None:
            mode = "context"
        elif release is not None or is_async:
            mode = "call"
        elif callable(getattr(owner, "release", None)):
            raise TypeError(
                f"memexport.pool cannot tell how {shown(label)}.{acquire}() hands out "
                f"resources: pass mode='context' if it returns a context manager ('with "
                f"pool.{acquire}() as r'), or mode='call' if it returns the resource that "
                f"pool.release(r) takes back")
        else:
            mode = "context"
    if mode == "call":
        release = release or "release"
        if not callable(getattr(owner, release, None)):
            raise TypeError(f"memexport.pool: with mode='call', {shown(label)} needs a method "
                            f"taking resources back: pass release='<method name>'")
        is_async = inspect.iscoroutinefunction(method)
    else:
        is_async = False
    return How(acquire, release, mode, gen_fn, gen_async, is_async)


_WRAP = '''
def {name}(self, {params}):
    _mx_held = {held}
    if _mx_held is None:
        return _mx_orig({target}, {call})
    _mx_a = _mx_new(_mx_cls)
    _mx_a.{slot} = {make}
    _mx_a._held = _mx_held
    return _mx_a
'''


def acquire_methods(handles: Any, how: How, cls: type, opts: PoolOptions, *, target: str,
                    held: str, names: dict[str, Any]) -> dict[str, Any]:
    """The instrumented acquire (and release) of a user's pool class ``cls``."""
    names = {**handle_names(handles, handles.failer(opts.exhausted)), **names}
    method = getattr(cls, how.acquire)
    release = getattr(cls, how.release) if how.release else None
    if how.mode == "call":
        assert release is not None
        return call_functions(names, method, release, acquire_name=how.acquire,
                              release_name=how.release or "release", is_async=how.is_async,
                              target=target, held=held)
    classes = acquire_classes(names)
    signature_of = how.gen_fn if how.gen_fn is not None else method
    params, call, defaults = forwarding(signature_of)
    if how.gen_fn is not None:
        cls_ = classes["AsyncGeneratorAcquire" if how.gen_async else "GeneratorAcquire"]
        slot, make = "_gen", f"_mx_gen({target}, {call})"
    else:
        cls_, slot, make = classes["Acquire"], "_cm", f"_mx_orig({target}, {call})"
    scope = {**names, **defaults, "_mx_new": _new, "_mx_cls": cls_, "_mx_orig": method,
             "_mx_gen": how.gen_fn}
    out = compile_functions(_WRAP, scope, filename="<memexport pool acquire>",
                            name=how.acquire, params=params, held=held, target=target,
                            call=call, slot=slot, make=make)
    out[how.acquire].__doc__ = method.__doc__
    if release is not None:  # ``r = await pool.acquire()`` then ``pool.release(r)``
        out.update({k: v for k, v in call_functions(
            names, method, release, acquire_name="_mx_unused", release_name=how.release
            or "release", target=target, held=held).items() if k != "_mx_unused"})
    return out


class ContextShape(Shape):
    """A user's pool: ``acquire()`` giving a context manager, or acquire/release by value."""

    style = "proxy"
    label = "a pool with an acquire() method"

    def matches(self, obj: Any, opts: PoolOptions) -> bool:
        return True  # the last shape: what it cannot tell, how_of says (a TypeError)

    def matches_class(self, cls: type, opts: PoolOptions) -> bool:
        return True

    def check(self, obj: Any, opts: PoolOptions) -> None:
        label = obj.__qualname__ if isinstance(obj, type) else type(obj).__qualname__
        how_of(obj, label, opts)

    def variant(self, obj: Any, opts: PoolOptions) -> Any:
        return (type(obj), opts)

    def base(self, obj: Any) -> type:
        return proxy_base("pool", ("_self_state",), context=True)

    def build(self, cls: type, obj: Any, opts: PoolOptions) -> Any:
        proxy = cls(obj)
        proxy._self_state = PoolState()
        return proxy

    def methods(self, handles: Any, obj: Any, opts: PoolOptions) -> dict[str, Any]:
        how = how_of(obj, type(obj).__qualname__, opts)
        return acquire_methods(handles, how, type(obj), opts, target="self.__wrapped__",
                               held="self._self_state.held", names={})

    def profile(self, obj: Any, opts: PoolOptions, kind: Kind) -> Profile:
        readers, pulled = pool_readers(
            proxy_state, idle=opts.idle or _store_reader(obj), in_use=opts.in_use,
            max_size=opts.max_size or _number_reader(obj, MAX_ATTRS),
            size=opts.size or _number_reader(obj, SIZE_ATTRS))
        return Profile(kind, readers, pulled)

    def class_methods(self, cls: type, handles: Any, opts: PoolOptions, index: Index
                      ) -> dict[str, Any]:
        how = how_of(cls, cls.__qualname__, opts)

        def held_of(pool: Any) -> Any:
            comp = index.get(id(pool))
            return None if comp is None or comp.state is None else comp.state.held

        return acquire_methods(handles, how, cls, opts, target="self", held="_mx_held_of(self)",
                               names={"_mx_held_of": held_of})

    def class_profile(self, obj: Any, opts: PoolOptions, kind: Kind, index: Index) -> Profile:
        def state_of(pool: Any) -> PoolState:
            return index.entries[id(pool)].state  # type: ignore[no-any-return]

        readers, pulled = pool_readers(
            state_of, idle=opts.idle or _store_reader(obj), in_use=opts.in_use,
            max_size=opts.max_size or _number_reader(obj, MAX_ATTRS),
            size=opts.size or _number_reader(obj, SIZE_ATTRS))
        return Profile(kind, readers, pulled)


# -- thread pool executors ----------------------------------------------------------------------


def _threads(ex: Any) -> list[threading.Thread]:
    return list(getattr(ex, "_threads", ()))


class ExecutorShape(Shape):
    """A thread pool: a worker running a task is in use; queued tasks are pending.

    Wait is the time a task spent queued, use the time it ran. Workers are read from the
    executor at scrape: created = threads started, destroyed = threads that ended.
    """

    style = "proxy"
    label = "a ThreadPoolExecutor"

    def matches(self, obj: Any, opts: PoolOptions) -> bool:
        futures = sys.modules.get("concurrent.futures")
        return not opts.methods_given and futures is not None and isinstance(
            obj, futures.ThreadPoolExecutor)

    def variant(self, obj: Any, opts: PoolOptions) -> Any:
        return (type(obj), opts)

    def base(self, obj: Any) -> type:
        return proxy_base("pool", ("_self_state",), context=True)

    def build(self, cls: type, obj: Any, opts: PoolOptions) -> Any:
        proxy = cls(obj)
        proxy._self_state = PoolState()
        return proxy

    def methods(self, handles: Any, obj: Any, opts: PoolOptions) -> dict[str, Any]:
        started, wait_add, use_add = handles.started, handles.wait, handles.use
        fold, failed_inc = handles.fold, handles.failed_inc
        clock = time.perf_counter
        submit_orig = type(obj).submit

        def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            queued = clock()
            n = started()
            held = self._self_state.held

            def run() -> Any:
                t = clock()
                wait_add(t - queued)
                held[t] = t
                try:
                    return fn(*args, **kwargs)
                finally:
                    held.pop(t, None)
                    use_add(clock() - t)
                    if not n & FOLD_MASK:
                        fold()

            future = submit_orig(self.__wrapped__, run)
            future.add_done_callback(_cancelled(failed_inc))
            return future

        def map(self: Any, fn: Callable[..., Any], *iterables: Any, **kwargs: Any) -> Any:
            # Executor.map with this proxy as ``self`` submits through submit() above.
            return sys.modules["concurrent.futures"].Executor.map(self, fn, *iterables, **kwargs)

        return {"submit": submit, "map": map}

    def profile(self, obj: Any, opts: PoolOptions, kind: Kind) -> Profile:
        def idle(ex: Any) -> int:
            return sum(1 for t in _threads(ex) if t.is_alive())

        readers, pulled = pool_readers(proxy_state, in_use=opts.in_use,
                                       max_size=opts.max_size or _number_reader(
                                           obj, ("_max_workers",)))
        in_use_reader = readers[(RESOURCES, ("in_use",))]
        readers[(RESOURCES, ("idle",))] = on_target(
            lambda p: max(0, idle(p.__wrapped__) - in_use_reader(p)))
        pulled[CREATED] = lambda ex: len(_threads(ex))
        pulled[DESTROYED] = lambda ex: sum(1 for t in _threads(ex) if not t.is_alive())
        return Profile(kind, readers, pulled)


def _cancelled(failed_inc: Callable[[], int]) -> Callable[[Any], None]:
    """A done-callback ending a cancelled task's pending acquire (it never ran)."""
    def done(future: Any) -> None:
        if future.cancelled():
            failed_inc()
    return done
