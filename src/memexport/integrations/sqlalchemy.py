"""SQLAlchemy engines and pools as memexport pools, through SQLAlchemy's pool events.

``memexport.pool(engine, name="postgres")`` (an ``Engine``, an ``AsyncEngine`` or a ``Pool``)
listens with ``sqlalchemy.event.listen``:

- ``connect`` -> created, ``close`` / ``close_detached`` -> destroyed;
- ``checkout`` / ``checkin`` (and ``detach``) -> the use time of each connection and the
  oldest use;
- at scrape, the pool's own numbers: ``checkedout()`` in use, ``checkedin()`` idle,
  ``size() + max_overflow`` the maximum (a ``QueuePool``; other pools report what they have).

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
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from memexport.core.registry import Registry
from memexport.kinds.pool import Recorder, register

__all__ = ["instrument", "supports"]

_WRAPPED = "_memexport_connect"


def _engine_of(obj: Any) -> Engine | None:
    if isinstance(obj, Engine):
        return obj
    sync = getattr(obj, "sync_engine", None)  # sqlalchemy.ext.asyncio.AsyncEngine
    return sync if isinstance(sync, Engine) else None


def supports(obj: Any) -> bool:
    """True for an ``Engine``, an ``AsyncEngine`` or a ``Pool``."""
    return isinstance(obj, Pool) or _engine_of(obj) is not None


def _pool_of(target: Any) -> Pool:
    return target if isinstance(target, Pool) else target.pool


def _in_use(target: Any) -> float | None:
    p = _pool_of(target)
    checkedout = getattr(p, "checkedout", None)
    return checkedout() if callable(checkedout) else None


def _idle(target: Any) -> float | None:
    p = _pool_of(target)
    checkedin = getattr(p, "checkedin", None)
    return checkedin() if callable(checkedin) else None


def _max(target: Any) -> float | None:
    p = _pool_of(target)
    size = getattr(p, "size", None)
    overflow = getattr(p, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return None  # not a QueuePool, or unlimited overflow
    return size() + overflow


def _wrap_connect(p: Pool, rec: Recorder) -> None:
    """Time ``p.connect()`` and count its timeouts, on this pool instance only."""
    if getattr(p, _WRAPPED, False):
        return
    ref = weakref.ref(p)
    original = type(p).connect
    clock = time.perf_counter
    started = rec.started
    wait_add = rec.wait.add
    failed = rec.failed
    fold = rec.fold

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
        if not n & 4095:
            fold()
        return conn

    connect.__doc__ = original.__doc__
    p.connect = connect  # type: ignore[method-assign]
    setattr(p, _WRAPPED, True)


def instrument(obj: Any, name: str, registry: Registry, *,
               exhausted: tuple[type[BaseException], ...] = ()) -> Any:
    """Instrument an engine or pool as pool ``name``; returns ``obj`` itself."""
    engine = _engine_of(obj)
    target: Any = engine if engine is not None else obj
    _comp, rec = register(target, name, registry, exhausted=(exc.TimeoutError, *exhausted),
                          in_use=_in_use, idle=_idle, max_size=_max, lifecycle=True)
    # checkedout() is exact for a QueuePool; other pools: memexport's own count.
    if _in_use(target) is None:
        _comp.gauge("memexport_pool_resources", rec.in_use, "in_use")
    held = rec.held_ids
    use_add = rec.use.add
    clock = time.perf_counter
    created = rec.created
    destroyed = rec.destroyed

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

    listen_on = target
    event.listen(listen_on, "connect", on_connect)
    event.listen(listen_on, "close", on_close)
    event.listen(listen_on, "close_detached", on_close_detached)
    event.listen(listen_on, "checkout", on_checkout)
    event.listen(listen_on, "checkin", on_checkin)
    event.listen(listen_on, "detach", on_checkin)  # a detached connection never checks in
    _wrap_connect(_pool_of(target), rec)
    if engine is not None:
        def on_disposed(e: Engine) -> None:
            _wrap_connect(e.pool, rec)

        event.listen(engine, "engine_disposed", on_disposed)
    return obj
