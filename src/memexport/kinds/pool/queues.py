"""Queues used as pools: ``get`` acquires a resource, ``put`` releases it (a ``put`` of a
resource that was never handed out is a created one).

A ``queue.Queue`` is instrumented as a **tracked queue**: a new object of a per-name subclass
of its class that shares the queue's state (its lock, conditions and items), so ``get`` and
``put`` run the queue's own code on the same items with no proxy in between, and threads
blocked on the original are woken by puts on the tracked one. ``asyncio.Queue`` and queue
classes that route ``get_nowait``/``put_nowait`` elsewhere keep a proxy.
"""

from __future__ import annotations

import queue
from typing import Any, ClassVar

from memexport.core.model import Kind
from memexport.core.registry import Profile
from memexport.instrument.kind import Shape, Style
from memexport.instrument.proxy import proxy_base
from memexport.instrument.templates import compile_functions
from memexport.instrument.timing import call_functions, handle_names
from memexport.kinds.pool.queue_code import inline_methods
from memexport.kinds.pool.shapes import is_async_queue, pool_readers, proxy_state
from memexport.kinds.pool.table import CREATED, DESTROYED, PoolOptions, PoolState

__all__ = ["QueueShape", "TrackedQueueShape", "new_plain", "plain_queue_class"]

_QUEUE_PUT = '''
{def_} {name}(self, item, {params}):
    {aw}_put({target}, item, {args})
    start = {state}.held.pop(id(item), None)
    if start is None:
        _created()
    else:
        _use_add(_clock() - start)
'''


def _names(handles: Any, opts: PoolOptions) -> dict[str, Any]:
    names = {**handle_names(handles, handles.failer(opts.exhausted)),
             "_created": handles.group.counter(CREATED).inc}
    handles.group.counter(DESTROYED)  # exported at 0: a queue never closes a resource
    return names


def _wired(obj: Any, handles: Any) -> None:
    """Resources put in the queue before it was wrapped were created too."""
    inc = handles.group.counter(CREATED).inc
    items = getattr(obj, "_queue" if is_async_queue(obj) else "queue")
    for _ in range(len(items)):
        inc()


class QueueShape(Shape):
    """``asyncio.Queue`` (and unusual ``queue.Queue`` subclasses): a proxy."""

    style: ClassVar[Style] = "proxy"
    label = "a queue"
    by_type = False  # bounded or not is per queue

    def matches(self, obj: Any, opts: PoolOptions) -> bool:
        return not opts.methods_given and (isinstance(obj, queue.Queue) or is_async_queue(obj))

    def check(self, obj: Any, opts: PoolOptions) -> None:
        if opts.size is not None:
            raise ValueError("size= is not read for a queue: resources put into it that were "
                             "never handed out are counted as created")

    def variant(self, obj: Any, opts: PoolOptions) -> Any:
        return (type(obj), obj.maxsize > 0, opts)

    def base(self, obj: Any) -> type:
        return proxy_base("pool", ("_self_state",), context=True)

    def build(self, cls: type, obj: Any, opts: PoolOptions) -> Any:
        proxy = cls(obj)
        proxy._self_state = PoolState()
        return proxy

    def methods(self, handles: Any, obj: Any, opts: PoolOptions) -> dict[str, Any]:
        cls: Any = type(obj)
        is_async = is_async_queue(obj)
        names = _names(handles, opts)
        out: dict[str, Any] = {}
        for get, put in ((cls.get, cls.put), (cls.get_nowait, cls.put_nowait)):
            out.update(call_functions(names, get, put, acquire_name=get.__name__,
                                      release_name="_mx_unused", is_async=is_async and
                                      get is cls.get, held="self._self_state.held"))
        for name, fn, aw in (("put", cls.put, "await " if is_async else ""),
                             ("put_nowait", cls.put_nowait, "")):
            out.update(compile_functions(
                _QUEUE_PUT, {**names, "_put": fn}, name=name, aw=aw,
                def_="async def" if aw else "def", params="*args, **kwargs",
                args="*args, **kwargs", target="self.__wrapped__", state="self._self_state"))
        out.pop("_mx_unused", None)
        return out

    def wired(self, target: Any, obj: Any, comp: Any, handles: Any, opts: Any) -> None:
        _wired(obj, handles)

    def profile(self, obj: Any, opts: PoolOptions, kind: Kind) -> Profile:
        return _profile(obj, opts, kind, proxy_state)


def _profile(obj: Any, opts: PoolOptions, kind: Kind, state_of: Any) -> Profile:
    is_async = is_async_queue(obj)
    idle: Any = (lambda q: len(q._queue)) if is_async else (lambda q: len(q.queue))
    readers, pulled = pool_readers(
        state_of, idle=opts.idle or idle, in_use=opts.in_use,
        max_size=opts.max_size or ((lambda q: q.maxsize) if obj.maxsize > 0 else None))
    return Profile(kind, readers, pulled)


# -- tracked queues -----------------------------------------------------------------------------

_roots: dict[type, type] = {}


def plain_queue_class(cls: type) -> type:
    """The queue class a tracked queue's class derives from (``queue.Queue`` or the app's)."""
    for klass in cls.__mro__:
        if vars(klass).get("__memexport_tracked__"):  # the root: right above it
            return klass.__mro__[1]
    return cls


def new_plain(cls: type) -> Any:
    """An empty instance of ``cls`` (what a copy or unpickling of a tracked queue fills)."""
    return cls.__new__(cls)  # type: ignore[call-overload]


def _reduce_ex(self: Any, protocol: int) -> Any:
    """Copies and pickles as the plain queue (the counts belong to this process)."""
    state = {k: v for k, v in vars(self).items() if not k.startswith("_me_")}
    return (new_plain, (plain_queue_class(type(self)),), state)


def _root(cls: type) -> type:
    root = _roots.get(cls)
    if root is None:
        root = _roots.setdefault(cls, type(cls.__name__, (cls,), {
            "__memexport_tracked__": True, "__module__": cls.__module__,
            "__qualname__": cls.__qualname__, "__reduce_ex__": _reduce_ex}))
    return root


def _tracked_state(q: Any) -> PoolState:
    return q._me_state  # type: ignore[no-any-return]


class TrackedQueueShape(QueueShape):
    """``queue.Queue`` (and subclasses whose ``*_nowait`` call ``get``/``put``): tracked."""

    style: ClassVar[Style] = "tracked"
    view: ClassVar[bool] = True

    def matches(self, obj: Any, opts: PoolOptions) -> bool:
        cls = type(obj)
        return (not opts.methods_given and isinstance(obj, queue.Queue)
                and hasattr(obj, "__dict__")
                and cls.get_nowait is queue.Queue.get_nowait
                and cls.put_nowait is queue.Queue.put_nowait)

    def base(self, obj: Any) -> type:
        return _root(plain_queue_class(type(obj)))

    def build(self, cls: type, obj: Any, opts: PoolOptions) -> Any:
        tracked: Any = cls.__new__(cls)  # type: ignore[call-overload]
        setattr_ = object.__setattr__  # fills the instance's own attribute values
        for attr, value in vars(obj).items():
            setattr_(tracked, attr, value)
        state = PoolState()
        setattr_(tracked, "_me_state", state)
        setattr_(tracked, "_me_held", state.held)  # one attribute read on the hot path
        setattr_(tracked, "_me_origin", obj)  # found by it; uninstrument gives it back
        return tracked

    def methods(self, handles: Any, obj: Any, opts: PoolOptions) -> dict[str, Any]:
        cls: Any = plain_queue_class(type(obj))
        names = _names(handles, opts)
        # The stdlib's own get/put with the bookkeeping inside (queue_code); a class
        # overriding them, or a Python whose queue is not copied there, gets the wrappers.
        # get_nowait/put_nowait are the queue's own: they call these two.
        out = inline_methods(names, cls)
        if "get" not in out:
            out.update(call_functions(names, cls.get, cls.put, acquire_name="get",
                                      release_name="_mx_unused", target="self",
                                      held="self._me_held",
                                      params="block=True, timeout=None", args="block, timeout"))
        if "put" not in out:
            out.update(compile_functions(
                _QUEUE_PUT, {**names, "_put": cls.put}, name="put", aw="", def_="def",
                params="block=True, timeout=None", args="block, timeout", target="self",
                state="self._me_state"))
        out.pop("_mx_unused", None)
        return out

    def profile(self, obj: Any, opts: PoolOptions, kind: Kind) -> Profile:
        return _profile(obj, opts, kind, _tracked_state)
