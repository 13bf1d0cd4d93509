"""HTTP client connection pools (httpx / httpx2 over httpcore / httpcore2) as memexport pools.

``memexport.pool(client, "openai-http")`` takes an ``httpx.Client`` / ``AsyncClient`` (or the
``httpx2`` twins), an httpcore ``ConnectionPool`` / ``AsyncConnectionPool`` (proxies
included), or a client that keeps one in ``_client`` (``openai.OpenAI`` / ``AsyncOpenAI``,
``anthropic.Anthropic``): every pool of its transports (``_transport`` and the proxy
``_mounts``) counts under the name. The object itself is returned.

At scrape, read from the pool's own lists *without its lock* (``list(pool._connections)`` is
one atomic copy under the GIL; a connection's ``is_idle()``/``is_closed()`` compare one
attribute): a lock another thread held at ``fork()`` stays held in the child, and a scrape
there must not hang. In use = connections neither idle nor closed (active, or still
connecting), idle = idle ones, max = ``max_connections`` (absent when unlimited), pending =
requests queued for a connection.

Events come from one wrapper per pool *instance* (an instance attribute, like the SQLAlchemy
adapter's: the class and other pools are untouched) of ``_assign_requests_to_connections``,
the one method where httpcore adds and removes connections, called with the pool's lock
already held by the app's thread: connections added are created, connections removed are
destroyed, and those removed whose keep-alive had expired
(``memexport_pool_expired_total``). ``close()`` / ``aclose()`` count what they close.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import Component, Group, Profile
from memexport.instrument.kind import Shape
from memexport.kinds.pool.table import (
    CREATED,
    DESTROYED,
    KIND,
    MAX_RESOURCES,
    PENDING,
    RESOURCES,
    PoolOptions,
)

__all__ = ["EXPIRED", "METRICS", "HttpPoolShape", "pools_of", "shapes"]

EXPIRED = "memexport_pool_expired_total"
METRICS = (MetricDef(EXPIRED, "counter",
                     "Idle connections closed because their keep-alive expired (HTTP client "
                     "pools)."),)
KIND.extend(*METRICS)

_CORE = ("httpcore", "httpcore2")
_CLIENTS = ("httpx", "httpx2")
_WRAPPED = "_memexport_assign"


def _derives(obj: Any, modules: tuple[str, ...], names: tuple[str, ...]) -> bool:
    """Whether a class of ``obj``'s MRO is one of ``names`` from one of ``modules``
    (subclasses count: the OpenAI SDK's ``SyncHttpxClientWrapper`` is an ``httpx2.Client``)."""
    return any(c.__name__ in names and (c.__module__ or "").split(".", 1)[0] in modules
               for c in type(obj).__mro__)


def is_core_pool(obj: Any) -> bool:
    """An httpcore(2) connection pool (or proxy pool): its two lists and its maximum."""
    try:
        return (_derives(obj, _CORE, ("ConnectionPool", "AsyncConnectionPool"))
                and isinstance(obj._connections, list) and isinstance(obj._requests, list)
                and isinstance(obj._max_connections, int))
    except AttributeError:
        return False


def _is_client(obj: Any) -> bool:
    return (_derives(obj, _CLIENTS, ("Client", "AsyncClient")) and hasattr(obj, "_transport")
            and hasattr(obj, "_mounts"))


def _client_of(obj: Any) -> Any:
    if _is_client(obj):
        return obj
    inner = getattr(obj, "_client", None)  # openai.OpenAI, anthropic.Anthropic
    return inner if inner is not None and _is_client(inner) else None


def pools_of(obj: Any) -> list[Any]:
    """The httpcore pools behind ``obj`` (a pool, an httpx client, or an SDK client)."""
    if is_core_pool(obj):
        return [obj]
    client = _client_of(obj)
    if client is None:
        return []
    out: list[Any] = []
    for transport in (client._transport, *list(client._mounts.values())):
        pool = getattr(transport, "_pool", None)
        if pool is not None and is_core_pool(pool) and all(p is not pool for p in out):
            out.append(pool)
    return out


def _recognised(obj: Any) -> bool:
    return not isinstance(obj, type) and bool(pools_of(obj))


# -- scrape-time readers (no locks) ------------------------------------------------------------


def _states(target: Any) -> tuple[int, int]:
    """(in use, idle) over the pools of ``target``."""
    in_use = idle = 0
    for pool in pools_of(target):
        for conn in list(pool._connections):
            if conn.is_closed():
                continue
            if conn.is_idle():
                idle += 1
            else:
                in_use += 1
    return in_use, idle


def _max(target: Any) -> int | None:
    total = 0
    for pool in pools_of(target):
        m = pool._max_connections
        if m >= sys.maxsize:
            return None  # unlimited
        total += m
    return total


def _queued(target: Any) -> int:
    return sum(1 for pool in pools_of(target) for r in list(pool._requests)
               if getattr(r, "connection", None) is None)


# -- events: one wrapper per pool instance --------------------------------------------------


def _expired(conn: Any, now: float) -> bool:
    inner = getattr(conn, "_connection", None) or conn  # HTTPConnection wraps HTTP11/HTTP2
    at = getattr(inner, "_expire_at", None)
    return isinstance(at, float) and now > at


def _counting(group: Group) -> tuple[Callable[[int], None], Callable[[int], None],
                                     Callable[[int], None]]:
    def adder(metric: str) -> Callable[[int], None]:
        inc = group.counter(metric).inc

        def add(n: int) -> None:
            for _ in range(n):
                inc()
        return add
    return adder(CREATED), adder(DESTROYED), adder(EXPIRED)


def _wrap(pool: Any, group: Group) -> Callable[[], None]:
    """Count ``pool``'s connections created, destroyed and expired; return the undo."""
    if getattr(pool, _WRAPPED, False):
        return lambda: None
    created, destroyed, expired = _counting(group)
    created(len(pool._connections))  # those open when instrumented were created too
    ref = weakref.ref(pool)
    cls = type(pool)
    assign_orig = cls._assign_requests_to_connections
    clock = time.monotonic

    def _assign_requests_to_connections() -> Any:
        p = ref()
        if p is None:  # cannot happen while the pool's own attribute is being called
            raise RuntimeError("memexport: the httpcore pool is gone")
        before = list(p._connections)
        now = clock()
        result = assign_orig(p)
        after = p._connections
        if len(after) != len(before) or any(a is not b for a, b in zip(after, before,
                                                                        strict=False)):
            kept = {id(c) for c in after}
            removed = [c for c in before if id(c) not in kept]
            created(len(after) - (len(before) - len(removed)))
            destroyed(len(removed))
            expired(sum(1 for c in removed if _expired(c, now)))
        return result

    attrs = {"_assign_requests_to_connections": _assign_requests_to_connections}
    if callable(getattr(cls, "aclose", None)):
        aclose_orig = cls.aclose

        async def aclose() -> None:
            p = ref()
            if p is not None:
                destroyed(len(p._connections))
                await aclose_orig(p)

        attrs["aclose"] = aclose
    else:
        close_orig = cls.close

        def close() -> None:
            p = ref()
            if p is not None:
                destroyed(len(p._connections))
                close_orig(p)

        attrs["close"] = close
    for name, fn in attrs.items():
        fn.__doc__ = getattr(cls, name).__doc__
        setattr(pool, name, fn)
    setattr(pool, _WRAPPED, True)

    def undo() -> None:
        p = ref()
        if p is None or not getattr(p, _WRAPPED, False):
            return
        for name in (*attrs, _WRAPPED):
            try:
                delattr(p, name)
            except AttributeError:
                pass
    return undo


class _State:
    """A component's state: how to take the instance wrappers back."""

    __slots__ = ("undos",)

    def __init__(self) -> None:
        self.undos: list[Callable[[], None]] = []

    def undo(self) -> None:
        for fn in self.undos:
            fn()
        self.undos.clear()


def _pending_of(group: Group) -> Callable[[], float]:
    def pending() -> float:
        total = 0
        for comp in list(group.members.values()):
            obj = comp()
            if obj is not None:
                total += _queued(obj)
        return float(total)
    return pending


class HttpPoolShape(Shape):
    """An httpx / httpx2 client, an httpcore pool, or an SDK client over one: read at
    scrape without the pool's lock; created/destroyed/expired from a per-instance wrapper."""

    style = "read"
    label = "an httpx client or httpcore connection pool"

    def matches(self, obj: Any, opts: PoolOptions) -> bool:
        return not opts.methods_given and _recognised(obj)

    def variant(self, obj: Any, opts: PoolOptions) -> Any:
        return (type(obj), opts)

    def profile(self, obj: Any, opts: PoolOptions, kind: Kind) -> Profile:
        readers: dict[Any, Any] = {
            (RESOURCES, ("in_use",)): opts.in_use or (lambda o: _states(o)[0]),
            (RESOURCES, ("idle",)): opts.idle or (lambda o: _states(o)[1]),
            MAX_RESOURCES: opts.max_size or _max,
        }
        return Profile(kind, readers)

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        group = comp.group
        group.counter(EXPIRED)  # every series from 0
        state = _State()
        for pool in pools_of(obj):
            state.undos.append(_wrap(pool, group))
        comp.state = state
        group.gauge(PENDING, _pending_of(group))


_SHAPES = (HttpPoolShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "pool" else ()
