"""Shared parts of the adversarial suite: a registry's samples, bounded subprocess runs, and
one factory per shape of object memexport instruments (the user classes copy the guide's
shapes, so the suite runs without the seed file).

Every internal import of the suite is here, so the suite can be pointed at another layout
of memexport by changing this module alone.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import memexport
from memexport.core.registry import Registry
from memexport.exporters.prometheus import MemexportCollector
from memexport.instrument.adapters import AdapterLoading
from memexport.instrument.adapters import loaded as adapters_loaded

__all__ = ["CANARY", "ROOT", "SRC", "AdapterLoading", "Agent", "BoundedDict",
           "ConversationManager", "GetPutCache", "GuidePool", "Registry", "Store", "UserMapping",
           "adapters_loaded", "counter_total", "prometheus_text", "run_python", "samples",
           "value"]

#: A string that must never reach a metric, a log line or an exception text.
CANARY = "CANARY-7f3a-SECRET-4111"
ROOT = Path(__file__).resolve().parents[2]
#: The memexport sources under test (a subprocess imports the same ones).
SRC = str(Path(memexport.__file__).resolve().parent.parent)

Key = tuple[str, tuple[tuple[str, str], ...]]


def samples(reg: Registry) -> dict[Key, float]:
    """Every non-histogram sample of one collection: ``(metric, sorted labels) -> value``."""
    out: dict[Key, float] = {}
    for fam in reg.collect():
        for labels, v in fam.samples:
            if isinstance(v, int | float):
                out[(fam.name, tuple(sorted(labels.items())))] = float(v)
    return out


def value(reg: Registry, metric: str, **labels: str) -> float | None:
    """The sum of ``metric``'s samples matching ``labels`` (None when there is none)."""
    found = [v for (m, ls), v in samples(reg).items()
             if m == metric and all(dict(ls).get(k) == x for k, x in labels.items())]
    return sum(found) if found else None


def counter_total(reg: Registry, collector: str) -> float:
    """``memexport_collector_errors_total{collector}`` now (0 when absent)."""
    return value(reg, "memexport_collector_errors_total", collector=collector) or 0.0


def prometheus_text(reg: Registry) -> str:
    """What ``/metrics`` would serve for ``reg`` (prometheus_client's own exposition)."""
    from prometheus_client import CollectorRegistry, generate_latest

    prom = CollectorRegistry()
    prom.register(MemexportCollector(reg))
    return generate_latest(prom).decode()


def run_python(code: str, timeout: float = 60.0, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter importing the memexport under test; a run over
    ``timeout`` seconds is killed and fails the test (a hang is the bug looked for)."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join((SRC, str(ROOT))),
                "PYTHONFAULTHANDLER": "1", **(env or {})}
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, env=full_env, cwd=str(ROOT))
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise AssertionError(f"hung: killed after {timeout}s\n{out}\n{err[-3000:]}") from None


# -- user classes of the shapes memexport recognises ------------------------------------------


class UserMapping(MutableMapping[Any, Any]):
    """A plain ``MutableMapping`` (not a dict): proxied."""

    def __init__(self, data: dict[Any, Any] | None = None) -> None:
        self.data = dict(data or {})

    def __getitem__(self, key: Any) -> Any:
        return self.data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.data[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserMapping) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]


class BoundedDict(dict[Any, Any]):
    """A dict subclass evicting in its own ``__setitem__`` (a proxied mapping)."""

    maxsize = 4

    def __setitem__(self, key: Any, value: Any) -> None:
        while len(self) >= self.maxsize and key not in self:
            del self[next(iter(self))]
        super().__setitem__(key, value)


class GetPutCache:
    """The guide's ``MemoryBoundedLRUCache`` shape: ``get``/``put`` over an OrderedDict."""

    def __init__(self, max_items: int = 1000) -> None:
        self.max_items = max_items
        self.cache: collections.OrderedDict[Any, Any] = collections.OrderedDict()

    def get(self, key: Any) -> Any:
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        while len(self.cache) >= self.max_items and self.cache:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GetPutCache) and other.cache == self.cache

    __hash__ = None  # type: ignore[assignment]


class GuidePool:
    """The guide's ``ResourcePool`` shape: a contextmanager ``acquire`` over a Queue."""

    def __init__(self, factory: Callable[[], Any] = object, max_size: int = 4) -> None:
        self.factory = factory
        self.max_size = max_size
        self.pool: queue.Queue[Any] = queue.Queue(maxsize=max_size)
        self.size = 0
        self.lock = threading.Lock()

    @contextmanager
    def acquire(self) -> Iterator[Any]:
        resource = None
        try:
            try:
                resource = self.pool.get_nowait()
            except queue.Empty:
                with self.lock:
                    if self.size >= self.max_size:
                        raise TimeoutError("Resource pool exhausted") from None
                    resource = self.factory()
                    self.size += 1
            yield resource
        finally:
            if resource is not None:
                self.pool.put_nowait(resource)


class ConversationManager:
    """The guide's ``MemoryEfficientConversationManager`` shape (patched in place)."""

    def __init__(self, max_history_length: int = 100) -> None:
        self.conversation_history: collections.deque[Any] = collections.deque(
            maxlen=max_history_length)
        self.summaries: list[Any] = []

    def add_message(self, message: Any) -> None:
        self.conversation_history.append(message)


class Agent:
    """The guide's ``MemoryManagedAgent`` shape (patched in place)."""

    def __init__(self, name: str = "a") -> None:
        self.name = name
        self.memory_limit_mb = 1
        self._memory_store: dict[str, Any] = {}

    def store_memory(self, key: str, value: Any) -> None:
        self._memory_store[key] = value

    def _cleanup_old_memories(self) -> None:
        self._memory_store.clear()


class Store:
    """An object no shape recognises; its repr quotes user data."""

    def __init__(self, secret: str = CANARY) -> None:
        self.secret = secret

    def __repr__(self) -> str:
        return f"Store({self.secret!r})"


def fixed_clock() -> float:
    """A TTL cache's timer that does not move (so two caches made apart compare equal)."""
    return 1000.0


def _lru() -> Any:
    return functools.lru_cache(maxsize=16)(lambda x: x)


def cache_objects() -> dict[str, Callable[[], Any]]:
    """A fresh bare object of every shape of cache, by shape (each holding a few entries)."""
    import cachetools

    def filled(m: Any) -> Any:
        for i in range(3):
            m[f"k{i}"] = {"v": i}
        return m

    def getput() -> GetPutCache:
        c = GetPutCache()
        for i in range(3):
            c.put(f"k{i}", {"v": i})
        return c

    return {
        "lru_cache": _lru,
        "dict": lambda: filled({}),
        "OrderedDict": lambda: filled(collections.OrderedDict()),
        "defaultdict": lambda: filled(collections.defaultdict(list)),
        "mapping": lambda: filled(UserMapping()),
        "dict subclass": lambda: filled(BoundedDict()),
        "cachetools LRUCache": lambda: filled(cachetools.LRUCache(16)),
        "cachetools TTLCache": lambda: filled(cachetools.TTLCache(16, ttl=600,
                                                                  timer=fixed_clock)),
        "cachetools sized": lambda: filled(cachetools.LRUCache(10_000, getsizeof=len)),
        "get/put": getput,
    }


def pool_objects() -> dict[str, Callable[[], Any]]:
    """A fresh bare object of every shape of pool."""
    def q() -> queue.Queue[Any]:
        qq: queue.Queue[Any] = queue.Queue(maxsize=4)
        qq.put_nowait("r1")
        return qq

    return {
        "queue": q,
        "asyncio queue": asyncio.Queue,
        "context pool": GuidePool,
        "executor": lambda: concurrent.futures.ThreadPoolExecutor(max_workers=2),
    }


def conversation_objects() -> dict[str, Callable[[], Any]]:
    return {
        "deque": lambda: collections.deque([{"role": "user", "content": "hi"}], maxlen=10),
        "list": lambda: [{"role": "user", "content": "hi"}],
        "manager": ConversationManager,
    }
