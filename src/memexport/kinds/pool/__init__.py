"""Pools: resources in use and idle, waits, exhaustion and leaked resources, for any pool.

``memexport.pool(obj, name)`` recognises, without configuration (shapes, first match wins):

- SQLAlchemy engines and pools (``memexport.integrations.sqlalchemy``: pool events);
- redis-py ``ConnectionPool`` and ``BlockingConnectionPool`` (``memexport.integrations.redis``:
  the pool's own counters read at scrape);
- ``concurrent.futures.ThreadPoolExecutor``, ``queue.Queue`` / ``asyncio.Queue`` used as pools,
  and context-manager pools like the guide's ``ResourcePool`` and their asyncio twins
  (``memexport.kinds.pool.shapes``);
- anything else through explicit arguments (``acquire=``, ``release=``, ``mode=``, ``idle=``,
  ``in_use=``, ``max_size=``, ``size=``, ``exhausted=``); a ``TypeError`` says what to pass
  when it can't tell.

On a class (``@memexport.pool(name=...)``) it instruments every instance: the class's own
``acquire``/``release`` are replaced once, so instances stay instances of the real class.

Hot path: a ``Counter.inc`` (the acquire started), three clock reads, two ``list.append`` of
raw durations and a dict store and pop of the acquire time (for the oldest use). No lock.
Durations are bucketed when read (at scrape, or every 4,096 acquires in the acquiring thread
so memory stays bounded), which is what keeps the instrumented acquire within a few hundred
nanoseconds of the plain one (``memexport bench --only pool``).

Exhausted: an acquire that raised one of ``exhausted`` (default: ``TimeoutError``,
``queue.Empty``, ``asyncio.QueueEmpty``) or, in asyncio, was cancelled while waiting
(``asyncio.wait_for``/``asyncio.timeout`` cancel the wait). Any other exception is an
acquire error. The exception always propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from memexport.core.registry import REGISTRY, Component, Registry
from memexport.instrument.kind import NOT_GIVEN, ClassPlan, KindSpec, Shape, replacing
from memexport.instrument.proxy import proxy_base
from memexport.kinds.pool.queues import QueueShape, TrackedQueueShape
from memexport.kinds.pool.shapes import ContextShape, ExecutorShape
from memexport.kinds.pool.table import EVENTS, EXHAUSTED, KIND, PoolOptions, PoolState, options

__all__ = ["EVENTS", "EXHAUSTED", "KIND", "SPEC", "PoolOptions", "PoolProxy", "pool"]

T = TypeVar("T")



def __getattr__(name: str) -> Any:
    if name == "PoolProxy":  # the base class of every pool proxy (wrapt imported on use)
        return proxy_base("pool", ("_self_state",), context=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PoolSpec(KindSpec):
    """The pool kind: decorated classes keep each instance's resources out in its state."""

    def class_patches(self, shape: Shape, cls: type, handles: Any, plan: ClassPlan
                      ) -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
        methods = shape.class_methods(cls, handles, plan.opts, self.index)  # type: ignore[attr-defined]
        return {attr: replacing(fn) for attr, fn in methods.items()}

    def on_new_instance(self, comp: Component, instance: Any, plan: ClassPlan) -> None:
        comp.state = PoolState()


SPEC = PoolSpec(KIND, EVENTS,
                (ExecutorShape(), TrackedQueueShape(), QueueShape(), ContextShape()), what="pool",
                hint="pass acquire= and release= naming its methods (see memexport.pool)")


@overload
def pool(obj: T, name: str, *, acquire: str | None = ..., release: str | None = ...,
         mode: str | None = ..., idle: Any = ..., in_use: Any = ..., max_size: Any = ...,
         size: Any = ..., exhausted: Any = ..., registry: Registry = ...) -> T: ...


@overload
def pool(*, name: str, acquire: str | None = ..., release: str | None = ...,
         mode: str | None = ..., idle: Any = ..., in_use: Any = ..., max_size: Any = ...,
         size: Any = ..., exhausted: Any = ..., registry: Registry = ...) -> Callable[[T], T]: ...


def pool(obj: Any = NOT_GIVEN, name: Any = None, *, acquire: str | None = None,
         release: str | None = None, mode: str | None = None, idle: Any = None,
         in_use: Any = None, max_size: Any = None, size: Any = None, exhausted: Any = None,
         registry: Registry = REGISTRY) -> Any:
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
    opts = options(acquire=acquire, release=release, mode=mode, idle=idle, in_use=in_use,
                   max_size=max_size, size=size, exhausted=exhausted)
    if obj is NOT_GIVEN:
        SPEC.check_call(name, registry)
        return lambda target: SPEC.instrument(target, name, registry, opts)
    return SPEC.instrument(obj, name, registry, opts)
