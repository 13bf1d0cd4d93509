"""Every kind and shape the per-component cases measure: how to build a bare object of it (with
a little content, as an app would) and how to instrument it through the public API."""

from __future__ import annotations

import concurrent.futures
import functools
import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import memexport
from memexport.bench import compat
from memexport.bench.model import Skipped

__all__ = ["ENTRIES", "MESSAGE", "VALUE", "Shape", "available"]

VALUE = {"role": "assistant", "content": "x" * 200}
MESSAGE = {"role": "user", "content": "What is the status of order 1234?", "timestamp": 1.0}
#: Entries (or messages, memories) each bare object is given before it is instrumented.
ENTRIES = 10


@dataclass(frozen=True)
class Shape:
    """One kind and shape: ``make()`` a bare object, ``instrument(obj, name, registry)``."""

    label: str  # "cache: cachetools LRUCache"
    kind: str  # cache, pool, conversation, agent, cleanup
    make: Callable[[], Any]
    instrument: Callable[[Any, str, Any], Any]
    needs: str | None = None  # an optional package the shape needs


def _dict() -> dict[str, Any]:
    return {f"k{i}": VALUE for i in range(ENTRIES)}


def _cachetools() -> Any:
    import cachetools

    c: Any = cachetools.LRUCache(maxsize=100)
    for i in range(ENTRIES):
        c[f"k{i}"] = VALUE
    return c


def _lru() -> Any:
    @functools.lru_cache(maxsize=100)
    def answer(x: int) -> int:
        return x * x

    for i in range(ENTRIES):
        answer(i)
    return answer


def _getput() -> Any:
    c = compat.guide().MemoryBoundedLRUCache(max_items=100)
    for i in range(ENTRIES):
        c.put(f"k{i}", VALUE)
    return c


def _resource_pool() -> Any:
    p = compat.guide().ResourcePool(object, max_size=4)
    with p.acquire(timeout=1e-6):  # the guide creates a resource only after get() times out
        pass
    return p


def _queue() -> queue.Queue[Any]:
    q: queue.Queue[Any] = queue.Queue(maxsize=4)
    for _ in range(4):
        q.put(object())
    return q


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=2)  # no thread until a submit


def _manager() -> Any:
    m = compat.guide().MemoryEfficientConversationManager()
    for _ in range(ENTRIES):
        m.add_message(MESSAGE)
    return m


def _deque() -> deque[Any]:
    return deque([MESSAGE] * ENTRIES, maxlen=100)


def _agent() -> Any:
    a = compat.guide().MemoryManagedAgent("planner", 100)
    for i in range(ENTRIES):
        a.store_memory(f"m{i}", VALUE)
    return a


def _callback() -> Callable[[], None]:
    def trim() -> None:
        return None

    return trim


def _cache(obj: Any, name: str, reg: Any) -> Any:
    return memexport.cache(obj, name=name, registry=reg)


def _pool(obj: Any, name: str, reg: Any) -> Any:
    return memexport.pool(obj, name=name, registry=reg)


def _conversation(obj: Any, name: str, reg: Any) -> Any:
    return memexport.conversation(obj, name=name, registry=reg)


def _agent_of(obj: Any, name: str, reg: Any) -> Any:
    return memexport.agent(obj, name=name, registry=reg)


def _cleanup(obj: Any, name: str, reg: Any) -> Any:
    return memexport.cleanup(obj, name=name, registry=reg)


SHAPES = (
    Shape("cache: dict", "cache", _dict, _cache),
    Shape("cache: cachetools LRUCache", "cache", _cachetools, _cache, "cachetools"),
    Shape("cache: lru_cache", "cache", _lru, _cache),
    Shape("cache: get/put class (guide)", "cache", _getput, _cache),
    Shape("pool: guide ResourcePool", "pool", _resource_pool, _pool),
    Shape("pool: queue.Queue", "pool", _queue, _pool),
    Shape("pool: ThreadPoolExecutor", "pool", _executor, _pool),
    Shape("conversation: guide manager", "conversation", _manager, _conversation),
    Shape("conversation: deque", "conversation", _deque, _conversation),
    Shape("agent: guide MemoryManagedAgent", "agent", _agent, _agent_of),
    Shape("cleanup: a callback", "cleanup", _callback, _cleanup),
)


def available(prefix: str) -> tuple[list[Shape], list[Skipped]]:
    """The shapes whose packages are installed; the others as skipped entries (named with
    ``prefix``, the case family)."""
    import importlib.util

    ok: list[Shape] = []
    skipped: list[Skipped] = []
    for s in SHAPES:
        if s.needs is not None and importlib.util.find_spec(s.needs) is None:
            skipped.append(Skipped(f"{prefix}: {s.label}", f"needs {s.needs} (not installed)"))
        else:
            ok.append(s)
    return ok, skipped
