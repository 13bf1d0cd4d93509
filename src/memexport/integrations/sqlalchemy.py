"""SQLAlchemy engines and pools as memexport pools, through SQLAlchemy's pool events.

``memexport.pool(engine, name="postgres")`` (an ``Engine``, an ``AsyncEngine`` or a ``Pool``)
listens with ``sqlalchemy.event.listen``:

- ``connect`` -> created, ``close`` / ``close_detached`` -> destroyed;
- ``checkout`` / ``checkin`` (and ``detach``) -> the use time of each connection and the
  oldest use;
- at scrape, the pool's own numbers: ``checkedout()`` in use, ``checkedin()`` idle,
  ``size() + max_overflow`` the maximum (a ``QueuePool``, read from its queue without its
  mutex, as after a ``fork()`` it may be held forever; other pools report what they have).

SQLAlchemy has no event for a checkout that waits or times out (``PoolEvents`` fire only once
a connection was handed out, and ``handle_error`` only sees DBAPI errors, not the pool's
``sqlalchemy.exc.TimeoutError``). So the one thing memexport wraps is the pool's ``connect``
method, on that pool instance only (an instance attribute: the class and every other pool
are untouched): it times the wait, counts pending checkouts, and counts
``sqlalchemy.exc.TimeoutError`` ("QueuePool limit ... reached") as exhausted, then
re-raises it unchanged. Every engine checkout (``Engine.connect``, ``Session``,
``AsyncEngine``) goes through ``pool.connect``. ``engine.dispose()`` replaces the pool; the
``engine_disposed`` event wraps the new one (pool events carry over by themselves).
The engine (or pool) itself is returned: nothing to swap in the application.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from memexport.core.counters import FOLD_MASK
from memexport.core.model import Kind
from memexport.core.registry import Component, Index, Profile
from memexport.instrument.kind import Shape
from memexport.kinds.pool.shapes import pool_readers
from memexport.kinds.pool.table import CREATED, DESTROYED, PoolOptions, PoolState

__all__ = ["SqlAlchemyShape", "shapes"]

_WRAPPED = "_memexport_connect"

def _engine_of(obj: Any) -> Engine | None:
    if isinstance(obj, Engine):
        return obj
    sync = getattr(obj, "sync_engine", None)  # sqlalchemy.ext.asyncio.AsyncEngine
    return sync if isinstance(sync, Engine) else None


def _pool_of(target: Any) -> Pool:
    return target if isinstance(target, Pool) else target.pool


def _waiting(p: Any) -> int | None:
    """Connections in a ``QueuePool``'s queue, counted without taking its mutex (what
    ``qsize()`` does): a mutex another thread held at ``fork()`` stays held in the child."""
    items = getattr(getattr(p, "_pool", None), "queue", None)
    return len(items) if isinstance(items, deque) else None


def _in_use(target: Any) -> float | None:
    p: Any = _pool_of(target)
    waiting = _waiting(p)
    if waiting is not None and isinstance(getattr(p, "_overflow", None), int):
        return float(p._pool.maxsize - waiting + p._overflow)  # checkedout(), lock-free
    checkedout = getattr(p, "checkedout", None)
    return checkedout() if callable(checkedout) else None


def _idle(target: Any) -> float | None:
    p = _pool_of(target)
    waiting = _waiting(p)
    if waiting is not None:
        return float(waiting)  # checkedin(), lock-free
    checkedin = getattr(p, "checkedin", None)
    return checkedin() if callable(checkedin) else None


def _max(target: Any) -> float | None:
    p = _pool_of(target)
    size = getattr(p, "size", None)
    overflow = getattr(p, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return None  # not a QueuePool, or unlimited overflow
    return float(size()) + overflow


def _target(obj: Any) -> Any:
    engine = _engine_of(obj)
    return engine if engine is not None else obj


def _wrap_connect(p: Pool, handles: Any, failed: Any) -> None:
    """Time ``p.connect()`` and count its timeouts, on this pool instance only."""
    if getattr(p, _WRAPPED, False):
        return
    ref = weakref.ref(p)
    original = type(p).connect
    clock = time.perf_counter
    started, wait_add, fold = handles.started, handles.wait, handles.fold

    def connect() -> Any:
        pool = ref()
        if pool is None:  # cannot happen while the pool's own attribute is being called
            raise RuntimeError("memexport: the SQLAlchemy pool is gone")
        n = started()
        t0 = clock()
        try:
            conn = original(pool)
        except BaseException as e:  # sqlalchemy.exc.TimeoutError counts as exhausted
            failed(e)
            raise
        wait_add(clock() - t0)
        if not n & FOLD_MASK:
            fold()
        return conn

    connect.__doc__ = original.__doc__
    p.connect = connect  # type: ignore[method-assign]
    setattr(p, _WRAPPED, True)


def _unwrap_connect(p: Pool) -> None:
    if getattr(p, _WRAPPED, False):
        for attr in ("connect", _WRAPPED):
            try:
                delattr(p, attr)
            except AttributeError:
                pass


class SqlAlchemyShape(Shape):
    """A SQLAlchemy ``Engine``, ``AsyncEngine`` or ``Pool``: its pool events (listen)."""

    style = "listen"
    label = "a SQLAlchemy engine or pool"

    def __init__(self) -> None:
        self.index: Index | None = None

    def matches(self, obj: Any, opts: PoolOptions) -> bool:
        return not opts.methods_given and (isinstance(obj, Pool) or _engine_of(obj) is not None)

    def variant(self, obj: Any, opts: PoolOptions) -> Any:
        return (type(obj), _in_use(_target(obj)) is None)

    def profile(self, obj: Any, opts: PoolOptions, kind: Kind) -> Profile:
        def state_of(o: Any) -> PoolState:
            return _STATES[id(o)]

        exact = _in_use(_target(obj)) is not None  # checkedout() is exact for a QueuePool
        readers, pulled = pool_readers(
            state_of, idle=lambda o: _idle(_target(o)),
            in_use=(lambda o: _in_use(_target(o))) if exact else None,
            max_size=lambda o: _max(_target(o)))
        return Profile(kind, readers, pulled)

    def listen(self, obj: Any, comp: Component, handles: Any, opts: PoolOptions) -> None:
        target = _target(obj)
        engine = _engine_of(obj)
        state = PoolState()
        comp.state = state
        _STATES[id(obj)] = state
        weakref.finalize(obj, _STATES.pop, id(obj), None)
        failed = handles.failer((exc.TimeoutError, *opts.exhausted))
        held = state.held
        use_add = handles.use
        clock = time.perf_counter
        created = handles.group.counter(CREATED).inc
        destroyed = handles.group.counter(DESTROYED).inc

        def on_connect(_dbapi: Any, _record: Any) -> None:
            created()

        def on_close(_dbapi: Any, _record: Any) -> None:
            destroyed()

        def on_close_detached(_dbapi: Any) -> None:
            destroyed()

        def on_checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
            held[id(record)] = clock()

        def on_checkin(_dbapi: Any, record: Any) -> None:
            start = held.pop(id(record), None)
            if start is not None:
                use_add(clock() - start)

        listeners: list[tuple[str, Callable[..., Any]]] = [
            ("connect", on_connect), ("close", on_close), ("close_detached", on_close_detached),
            ("checkout", on_checkout), ("checkin", on_checkin),
            ("detach", on_checkin)]  # a detached connection never checks in
        for name, fn in listeners:
            event.listen(target, name, fn)
        _wrap_connect(_pool_of(target), handles, failed)
        disposed: list[Callable[..., Any]] = []
        if engine is not None:
            def on_disposed(e: Engine) -> None:
                _wrap_connect(e.pool, handles, failed)

            event.listen(engine, "engine_disposed", on_disposed)
            disposed.append(on_disposed)
        ref = weakref.ref(target)

        def undo() -> None:
            t = ref()
            if t is None:
                return
            for name, fn in listeners:
                event.remove(t, name, fn)
            for fn in disposed:
                event.remove(t, "engine_disposed", fn)
            _unwrap_connect(_pool_of(t))

        state.undo = undo


#: Pool states by ``id`` of the instrumented engine or pool (entries leave with it).
_STATES: dict[int, PoolState] = {}
_SHAPES = (SqlAlchemyShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "pool" else ()
