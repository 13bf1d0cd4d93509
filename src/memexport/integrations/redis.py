"""redis-py connection pools as memexport pools: their own counters, read at scrape.

``pool = memexport.pool(redis.ConnectionPool(...), name="redis")`` returns a proxy to pass
as ``redis.Redis(connection_pool=pool)``. The numbers come from the pool itself when
Prometheus scrapes (nothing per command):

- ``ConnectionPool``: in use = ``len(_in_use_connections)``, idle =
  ``len(_available_connections)``, max = ``max_connections``, created/destroyed from
  ``_created_connections`` (see ``PoolState.size_delta``);
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
import sys
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Profile
from memexport.instrument.kind import Shape
from memexport.instrument.proxy import proxy_base
from memexport.instrument.timing import call_functions, handle_names
from memexport.kinds.pool.shapes import pool_readers, proxy_state
from memexport.kinds.pool.table import PoolOptions, PoolState

__all__ = ["EXHAUSTED_MESSAGES", "RedisPoolShape", "is_exhausted", "shapes"]

#: The messages of the ConnectionError redis-py raises when its pool has nothing to give.
EXHAUSTED_MESSAGES = frozenset({"Too many connections", "No connection available."})


def _redis_classes() -> tuple[type, ...]:
    classes: list[type] = []
    try:
        import redis

        classes.append(redis.ConnectionPool)
    except ImportError:
        pass
    aio = sys.modules.get("redis.asyncio")  # imported by the app, or no such pool exists
    if aio is not None:
        classes.append(aio.ConnectionPool)
    return tuple(classes)


def is_exhausted(exc: BaseException) -> bool:
    """True for the errors redis-py raises when its pool is out of connections."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:
        return False
    import redis.exceptions

    max_connections: Any = getattr(redis.exceptions, "MaxConnectionsError", None)
    if max_connections is not None and isinstance(exc, max_connections):  # redis-py >= 5.3
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


class RedisPoolShape(Shape):
    """A redis-py connection pool (sync or asyncio): a proxy timing ``get_connection``."""

    style = "proxy"
    label = "a redis-py ConnectionPool"

    def matches(self, obj: Any, opts: PoolOptions) -> bool:
        classes = _redis_classes()
        return not opts.methods_given and bool(classes) and isinstance(obj, classes)

    def variant(self, obj: Any, opts: PoolOptions) -> Any:
        return (type(obj), opts)

    def base(self, obj: Any) -> type:
        return proxy_base("pool", ("_self_state",), context=True)

    def build(self, cls: type, obj: Any, opts: PoolOptions) -> Any:
        proxy = cls(obj)
        proxy._self_state = PoolState()
        return proxy

    def methods(self, handles: Any, obj: Any, opts: PoolOptions) -> dict[str, Any]:
        cls = type(obj)
        names = handle_names(handles, handles.failer(opts.exhausted, is_exhausted))
        return call_functions(names, cls.get_connection, cls.release,
                              acquire_name="get_connection", release_name="release",
                              is_async=inspect.iscoroutinefunction(cls.get_connection),
                              held="self._self_state.held")

    def profile(self, obj: Any, opts: PoolOptions, kind: Kind) -> Profile:
        readers, pulled = pool_readers(proxy_state, idle=_idle, in_use=opts.in_use or _in_use,
                                       max_size=opts.max_size or _max, size=opts.size or _total)
        return Profile(kind, readers, pulled)


_SHAPES = (RedisPoolShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "pool" else ()
