"""redis-py connection pools as memexport pools: their own counters, read at scrape.

``pool = memexport.pool(redis.ConnectionPool(...), name="redis")`` returns a proxy to pass
as ``redis.Redis(connection_pool=pool)``. The numbers come from the pool itself when
Prometheus scrapes (nothing per command):

- ``ConnectionPool``: in use = ``len(_in_use_connections)``, idle =
  ``len(_available_connections)``, max = ``max_connections``, created/destroyed from
  ``_created_connections`` (see :class:`memexport.pool.SizeDelta`);
- ``BlockingConnectionPool``: created connections are ``_connections``, idle ones the
  connections waiting in its queue, in use the difference.

The proxy's ``get_connection`` and ``release`` add what the pool does not keep: the wait
for a connection, pending requests, the time each connection is held, and exhaustion where
redis-py raises it: ``MaxConnectionsError("Too many connections")`` (a ``ConnectionError``)
from ``ConnectionPool``, ``ConnectionError("No connection available.")`` from
``BlockingConnectionPool`` after its ``timeout``. Other connection errors are acquire errors.
``redis.asyncio`` pools work the same way (``await get_connection()``).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from memexport.core.registry import Registry
from memexport.kinds.pool import FOLD_MASK, PoolProxy, Recorder, make_proxy, register

__all__ = ["EXHAUSTED_MESSAGES", "instrument", "supports"]

#: The messages of the ConnectionError redis-py raises when its pool has nothing to give.
EXHAUSTED_MESSAGES = frozenset({"Too many connections", "No connection available."})


def _redis_classes() -> tuple[type, ...]:
    classes: list[type] = []
    try:
        import redis

        classes.append(redis.ConnectionPool)
    except ImportError:
        pass
    try:
        import redis.asyncio

        classes.append(redis.asyncio.ConnectionPool)
    except ImportError:
        pass
    return tuple(classes)


def supports(obj: Any) -> bool:
    """True for a redis-py ``ConnectionPool`` (sync or asyncio) and its subclasses."""
    classes = _redis_classes()
    return bool(classes) and isinstance(obj, classes)


def is_exhausted(exc: BaseException) -> bool:
    """True for the errors redis-py raises when its pool is out of connections."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:
        return False
    try:
        from redis.exceptions import MaxConnectionsError
    except ImportError:  # redis-py < 5.3 raised a plain ConnectionError
        MaxConnectionsError = ()  # type: ignore[assignment,misc]
    if MaxConnectionsError and isinstance(exc, MaxConnectionsError):
        return True
    return isinstance(exc, RedisConnectionError) and str(exc) in EXHAUSTED_MESSAGES


def _blocking(p: Any) -> bool:
    return hasattr(p, "_connections") and hasattr(p, "pool")


def _idle(p: Any) -> int:
    if _blocking(p):
        return sum(1 for c in list(p.pool.queue) if c is not None)
    return len(p._available_connections)


def _total(p: Any) -> int:
    if _blocking(p):
        return len(p._connections)
    created = getattr(p, "_created_connections", None)
    if created is None:  # redis.asyncio pools keep the two sets only
        return len(p._available_connections) + len(p._in_use_connections)
    return int(created)


def _in_use(p: Any) -> int:
    if _blocking(p):
        return max(0, _total(p) - _idle(p))
    return len(p._in_use_connections)


def _max(p: Any) -> int | None:
    value = getattr(p, "max_connections", None)
    return value if isinstance(value, int) and value > 0 else None


def _methods(rec: Recorder, is_async: bool) -> dict[str, Any]:
    clock = time.perf_counter
    started = rec.started
    wait_add = rec.wait.add
    use_add = rec.use.add
    held = rec.held_ids
    pop = held.pop
    fold = rec.fold

    def failed(exc: BaseException) -> None:
        rec.failed(exc, is_async, exhausted=is_exhausted(exc))

    def got(n: int, t0: float, conn: Any) -> Any:
        t = clock()
        wait_add(t - t0)
        held[id(conn)] = t
        if not n & FOLD_MASK:
            fold()
        return conn

    def get_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        n = started()
        t0 = clock()
        try:
            conn = self.__wrapped__.get_connection(*args, **kwargs)
        except BaseException as exc:
            failed(exc)
            raise
        return got(n, t0, conn)

    async def get_connection_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        n = started()
        t0 = clock()
        try:
            conn = await self.__wrapped__.get_connection(*args, **kwargs)
        except BaseException as exc:
            failed(exc)
            raise
        return got(n, t0, conn)

    def release(self: Any, connection: Any, *args: Any, **kwargs: Any) -> Any:
        start = pop(id(connection), None)
        if start is not None:
            use_add(clock() - start)
        return self.__wrapped__.release(connection, *args, **kwargs)

    return {"get_connection": get_connection_async if is_async else get_connection,
            "release": release}


def instrument(obj: Any, name: str, registry: Registry, *,
               exhausted: tuple[type[BaseException], ...] = ()) -> PoolProxy:
    """Instrument a redis-py connection pool as pool ``name``; returns the proxy to use."""
    _comp, rec = register(obj, name, registry, exhausted=exhausted, in_use=_in_use,
                          idle=_idle, max_size=_max, size=_total)
    is_async = inspect.iscoroutinefunction(obj.get_connection)
    return make_proxy(obj, _methods(rec, is_async), rec)
