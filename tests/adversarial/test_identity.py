"""Issue 11 item 8: one double-instrumentation rule for every kind and shape.

Before, the same dict instrumented twice under one name read 20 items for 10, and the same
cachetools cache was accepted under two names, while pools refused both. Now
(``KindSpec.instrument``): the same object under the same name gives back what the first
call gave (counted once); under another name it is a ``ValueError``. For a tracked builtin
the object is the tracked one returned: a plain dict passed again is copied again, into a
second dict that holds its own entries (both are counted, as both are held).
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import gc
import queue
from collections.abc import Callable
from typing import Any

import cachetools
import pytest

import memexport
from tests.adversarial.support import (
    Agent,
    ConversationManager,
    GetPutCache,
    GuidePool,
    Registry,
    UserMapping,
    value,
)

CASES: dict[str, tuple[str, Callable[[], Any], str]] = {
    "cachetools": ("cache", lambda: cachetools.LRUCache(16), "memexport_cache_items"),
    "mapping": ("cache", UserMapping, "memexport_cache_items"),
    "get/put": ("cache", GetPutCache, "memexport_cache_items"),
    "lru_cache": ("cache", lambda: functools.lru_cache(maxsize=16)(lambda x: x),
                  "memexport_cache_items"),
    "dict": ("cache", dict, "memexport_cache_items"),
    "queue": ("pool", queue.Queue, "memexport_pool_resources"),
    "context pool": ("pool", GuidePool, "memexport_pool_resources"),
    "executor": ("pool", lambda: concurrent.futures.ThreadPoolExecutor(1),
                 "memexport_pool_resources"),
    "deque": ("conversation", collections.deque, "memexport_conversations"),
    "manager": ("conversation", ConversationManager, "memexport_conversations"),
    "agent": ("agent", Agent, "memexport_agents"),
}


def fill(kind: str, obj: Any) -> None:
    if isinstance(obj, GetPutCache):
        for i in range(10):
            obj.put(i, i)
    elif kind == "cache" and hasattr(obj, "cache_info"):
        for i in range(10):
            obj(i)
    elif kind == "cache":
        for i in range(10):
            obj[i] = i


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_object_under_the_same_name_is_counted_once(case: str) -> None:
    kind, make, metric = CASES[case]
    instrument = getattr(memexport, kind)
    reg = Registry()
    first = instrument(make(), name="one", registry=reg)
    fill(kind, first)
    again = instrument(first, name="one", registry=reg)
    assert again is first
    label = {"cache": "cache", "pool": "pool", "conversation": "conversation",
             "agent": "agent"}[kind]
    live = {"cache": "memexport_caches", "pool": "memexport_pools",
            "conversation": "memexport_conversations", "agent": "memexport_agents"}[kind]
    if kind == "cache":
        assert value(reg, metric, **{label: "one"}) == 10
    if live in {f.name for f in reg.collect()}:
        assert value(reg, live, **{label: "one"}) == 1
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(first, name="other", registry=reg)
    shutdown = getattr(first, "shutdown", None)
    if callable(shutdown):
        shutdown()


@pytest.mark.parametrize("case", ["cachetools", "mapping", "get/put", "lru_cache", "queue",
                                  "context pool", "manager", "agent"])
def test_the_raw_object_again_gives_the_same_instrumented_object(case: str) -> None:
    kind, make, _metric = CASES[case]
    instrument = getattr(memexport, kind)
    reg = Registry()
    raw = make()
    first = instrument(raw, name="raw", registry=reg)
    assert instrument(raw, name="raw", registry=reg) is first
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(raw, name="raw2", registry=reg)


def test_a_plain_dict_passed_twice_is_two_dicts_each_counted_once() -> None:
    reg = Registry()
    raw: dict[Any, Any] = {i: i for i in range(10)}
    t1 = memexport.cache(raw, name="twice", registry=reg)
    t2 = memexport.cache(raw, name="twice", registry=reg)
    assert value(reg, "memexport_cache_items", cache="twice") == len(t1) + len(t2)
    t2["new"] = 1
    assert "new" not in t1  # two dicts: what both hold is what is counted
    del t1
    gc.collect()
    assert value(reg, "memexport_cache_items", cache="twice") == 11
