"""memexport never keeps an instrumented object alive, and holds bounded memory for objects
that come and go, with no collector thread and no scrape.

Issue 11 item 1: without the collector thread (``make_wsgi_app(collector=False)``, ASGI,
instrumenting before the exporter starts), each dropped cache proxy left its sampler in the
sizer job list, pruned only on collector ticks: 1.2-3.3 KB per object, 46 MiB for 20,000
per-request caches. Item 13: context-manager pool proxies were freed only by the cyclic GC.
Dead components now wait in a bounded queue (folded at the next scrape, or at registration
past 1,024), and no proxy is part of a reference cycle.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import gc
import os
import queue
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import cachetools
import pytest

import memexport
from tests.adversarial.support import (
    SRC,
    Agent,
    ConversationManager,
    GetPutCache,
    GuidePool,
    Registry,
    UserMapping,
    value,
)


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Objects must go by reference counting alone (a cycle would wait for the GC)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _memexport_bytes() -> int:
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, os.path.join(SRC, "memexport", "*"))])
    return sum(stat.size for stat in snap.statistics("filename"))


PER_REQUEST: dict[str, Callable[[Registry], Any]] = {
    "dict": lambda reg: memexport.cache({"k": {"v": 1}}, name="req_dict", registry=reg),
    "cachetools": lambda reg: memexport.cache(cachetools.LRUCache(8), name="req_ct",
                                              registry=reg),
    "mapping": lambda reg: memexport.cache(UserMapping(), name="req_map", registry=reg),
    "get/put": lambda reg: memexport.cache(GetPutCache(), name="req_gp", registry=reg),
    "lru_cache": lambda reg: memexport.cache(functools.lru_cache(maxsize=4)(len),
                                             name="req_lru", registry=reg),
    "context pool": lambda reg: memexport.pool(GuidePool(), name="req_pool", registry=reg),
    "deque": lambda reg: memexport.conversation(collections.deque(), name="req_h",
                                                registry=reg),
}


@pytest.mark.parametrize("shape", list(PER_REQUEST))
def test_per_request_objects_without_collector_or_scrape_hold_bounded_memory(
        shape: str, no_gc: None) -> None:
    reg = Registry()
    make = PER_REQUEST[shape]

    def requests(n: int) -> None:
        for i in range(n):
            obj = make(reg)
            if shape == "context pool":
                with obj.acquire():
                    pass
            elif shape == "lru_cache":
                obj("ab")
            elif shape == "get/put":
                obj.put(i, i)
            elif shape == "deque":
                obj.append(i)
            else:
                obj[i] = i

    requests(2_000)  # warm: classes, profiles, the name's group
    tracemalloc.start()
    try:
        before = _memexport_bytes()
        requests(5_000)
        grown = _memexport_bytes() - before
    finally:
        tracemalloc.stop()
    # Bounded: at most the 1,024 dead components waiting to be folded (200-350 B each
    # measured), not one sampler per object ever made (1.2-3.3 KB each: 6-16 MB here).
    assert grown < 600_000, grown
    assert reg.live_components() == 0


def _weakly(obj: Any) -> Any:
    try:
        return weakref.ref(obj)
    except TypeError:  # a plain dict or list: the tracked copy is what is held
        return None


SHAPES: dict[str, tuple[str, Callable[[], Any]]] = {
    "dict": ("cache", lambda: {"k": 1}),
    "OrderedDict": ("cache", lambda: collections.OrderedDict(k=1)),
    "cachetools": ("cache", lambda: cachetools.TTLCache(8, ttl=60)),
    "cachetools sized": ("cache", lambda: cachetools.LRUCache(100, getsizeof=len)),
    "mapping": ("cache", UserMapping),
    "get/put": ("cache", GetPutCache),
    "lru_cache": ("cache", lambda: functools.lru_cache(maxsize=4)(lambda x: x)),
    "queue": ("pool", queue.Queue),
    "context pool": ("pool", GuidePool),
    "executor": ("pool", lambda: concurrent.futures.ThreadPoolExecutor(1)),
    "deque": ("conversation", lambda: collections.deque(maxlen=4)),
    "list": ("conversation", list),
    "manager": ("conversation", ConversationManager),
    "agent": ("agent", Agent),
}


def _use(kind: str, obj: Any) -> None:
    if isinstance(obj, GetPutCache) or (hasattr(obj, "put") and kind == "cache"):
        obj.put("k", [1])
        obj.get("k")
    elif kind == "cache" and hasattr(obj, "cache_info"):
        obj(1)
    elif kind == "cache":
        obj["k"] = [1]
        obj.get("k")
    elif isinstance(obj, queue.Queue) or hasattr(obj, "get_nowait"):
        obj.put("r")
        obj.put(obj.get())
    elif hasattr(obj, "acquire"):
        with obj.acquire():
            pass
    elif hasattr(obj, "submit"):
        obj.submit(len, "x").result()
        obj.shutdown()
    elif hasattr(obj, "add_message"):
        obj.add_message({"m": 1})
    elif hasattr(obj, "store_memory"):
        obj.store_memory("k", [1])
        obj._cleanup_old_memories()
    else:
        obj.append({"m": 1})


@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_instrumented_object_dies_with_its_last_reference(shape: str, no_gc: None) -> None:
    kind, make = SHAPES[shape]
    reg = Registry()
    raw = make()
    raw_ref = _weakly(raw)
    obj = getattr(memexport, kind)(raw, name="dies", registry=reg)
    obj_ref = _weakly(obj)
    _use(kind, obj)
    reg.collect()
    reg.run_tick_jobs(0.05)  # a sampled size taken: still nothing kept
    reg.collect()
    del obj, raw
    assert raw_ref is None or raw_ref() is None, f"{shape}: the object is kept alive"
    assert obj_ref is None or obj_ref() is None, f"{shape}: what memexport returned is kept"
    assert reg.live_components() == 0
    live = {"cache": "memexport_caches", "pool": "memexport_pools",
            "conversation": "memexport_conversations", "agent": "memexport_agents"}[kind]
    got = value(reg, live, **{kind: "dies"})
    assert got in (None, 0)
