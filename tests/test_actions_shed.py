"""The shed action on real objects: caches through their own API, histories and pools through
hooks or the library's API, cleanups, gc and malloc_trim, each step measured."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cachetools
import pytest
from helpers import load_guide, view

import memexport
from memexport.actions import ActionContext, ActionSet, shed, shrinker, trimmer
from memexport.actions.metrics import ActionMetrics
from memexport.actions.payload import Alert
from memexport.actions.runner import Dispatcher
from memexport.actions.shrink import reaper, shrink_cache
from memexport.core.registry import Registry

guide = load_guide()

ALERT = Alert("firing", {"alertname": "MemexportProcessMemoryNearLimit"}, {}, "", "", "")


def run(registry: Registry, timeout: float = 30.0, **options: Any) -> dict[str, Any]:
    """One run of a shed action, on this thread; its result."""
    act = shed(alerts="*", **options)
    ctx = ActionContext(act.name, "firing", (ALERT,), timeout, registry=registry)
    act(ctx)
    return ctx.result


def test_caches_shrink_through_their_own_api(fresh_registry: Registry) -> None:
    reg = fresh_registry
    lru = memexport.cache(cachetools.LRUCache(maxsize=100), "lru", registry=reg)
    for i in range(100):
        lru[i] = "v" * 100
    lru[0]  # the least recently used is now 1
    ordered = memexport.cache(OrderedDict((i, str(i)) for i in range(10)), "ordered",
                              registry=reg)
    plain = memexport.cache({i: str(i) for i in range(10)}, "plain", registry=reg)

    @functools.lru_cache(maxsize=64)
    def embed(x: int) -> int:
        return x * 2

    cached = memexport.cache(embed, "embed", registry=reg)
    for i in range(10):
        cached(i)
    result = run(reg, caches={"lru": 0.5, "ordered": 0.3, "plain": 0.5, "embed": 0.1},
                 gc=False, malloc_trim=False)
    assert result["caches"]["caches"] == {"lru": "popitem", "ordered": "popitem",
                                          "plain": "delete", "embed": "cache_clear"}
    assert len(lru) == 50 and 0 in lru and 1 not in lru  # its own LRU policy chose
    assert list(ordered) == list(range(3, 10))  # the oldest went
    assert list(plain) == list(range(5, 10))
    assert cached.cache_info().currsize == 0  # all or nothing
    assert result["caches"]["entries_removed"] == 50 + 3 + 5 + 10
    assert result["caches"]["freed_bytes"] > 40 * 100
    # Removals went through the instrumented objects, counted as the app's would be: the
    # policy's popitem as capacity evictions, deletions as explicit ones.
    assert view(reg, "cache", "lru")["memexport_cache_evictions_total{capacity}"] == 50
    assert view(reg, "cache", "plain")["memexport_cache_evictions_total{explicit}"] == 5


def test_a_ttl_cache_expires_then_pops(fresh_registry: Registry) -> None:
    now = [0.0]
    ttl = memexport.cache(cachetools.TTLCache(maxsize=100, ttl=10, timer=lambda: now[0]),
                          "ttl", registry=fresh_registry)
    for i in range(10):
        ttl[i] = i
    result = run(fresh_registry, caches={"*": 0.5}, gc=False, malloc_trim=False)
    assert result["caches"]["caches"] == {"ttl": "popitem"}
    assert result["caches"]["entries_removed"] == 5 and sorted(ttl) == [5, 6, 7, 8, 9]


def test_a_whole_cache_is_cleared_and_a_hook_shrinks_what_has_no_api(
        fresh_registry: Registry) -> None:
    reg = fresh_registry
    memo = memexport.cache({f"k{i}": i for i in range(20)}, "memo", registry=reg)
    tools = memexport.cache(guide.MemoryBoundedLRUCache(max_items=50), "tools", registry=reg)
    for i in range(20):
        tools.put(f"k{i}", "x" * i)
    result = run(reg, caches={"memo": 1.0, "tools": 0.5}, gc=False, malloc_trim=False)
    assert len(memo) == 0 and result["caches"]["caches"]["memo"] == "clear"
    assert result["caches"]["caches"]["tools"] == "unsupported"  # get/put: no partial API
    assert len(tools.cache) == 20

    @shrinker("tools")
    def shrink_tools(cache: Any, fraction: float) -> None:
        for _ in range(int(len(cache.cache) * fraction)):
            _key, value = cache.cache.popitem(last=False)
            cache.memory_usage -= len(value)

    result = run(reg, caches={"tools": 0.5}, gc=False, malloc_trim=False)
    assert result["caches"]["caches"]["tools"] == "hook" and len(tools.cache) == 10


def test_shrink_cache_stops_at_the_deadline() -> None:
    big = OrderedDict((i, i) for i in range(10_000))
    removed, how = shrink_cache(big, 0.5, deadline=0.0)  # already past
    assert how == "popitem" and removed == 0 and len(big) == 10_000


def test_histories_are_trimmed_by_their_hook(fresh_registry: Registry) -> None:
    reg = fresh_registry
    managers = [memexport.conversation(guide.MemoryEfficientConversationManager(500, 1000),
                                       "support", registry=reg) for _ in range(3)]
    for m in managers:
        for i in range(200):
            m.add_message({"role": "user", "content": f"message {i} " * 20, "timestamp": i})
    other = memexport.conversation(guide.MemoryEfficientConversationManager(), "other",
                                   registry=reg)
    other.add_message({"content": "x", "timestamp": 0})

    @trimmer("support")
    def summarise(manager: Any, fraction: float) -> None:
        n = int(len(manager.conversation_history) * fraction)
        for _ in range(n):
            manager.conversation_history.popleft()
        manager.summaries.append({"type": "summary", "message_count": n})

    result = run(reg, history_fraction=0.75, caches={}, gc=False, malloc_trim=False)
    assert [len(m.conversation_history) for m in managers] == [50, 50, 50]
    assert result["histories"]["histories"] == 3
    assert result["histories"]["without_trimmer"] == ["other"]
    assert result["histories"]["freed_bytes"] > 3 * 150 * 100


def test_idle_pool_connections_are_closed(fresh_registry: Registry, tmp_path: Path) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = memexport.pool(sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'db.sqlite'}", poolclass=sqlalchemy.pool.QueuePool,
        pool_size=5), "db", registry=fresh_registry)
    conns = [engine.connect() for _ in range(3)]
    for c in conns:
        c.close()
    assert engine.pool.checkedin() == 3
    result = run(fresh_registry, caches={}, cleanups=(), gc=False, malloc_trim=False)
    assert result["pools"]["pools"] == {"db": "dispose"}
    assert result["pools"]["idle_closed"] == 3
    assert engine.pool.checkedin() == 0
    with engine.connect() as c:  # the pool still works
        assert c.exec_driver_sql("select 1").scalar() == 1


def test_a_reaper_hook_for_a_pool_without_an_api(fresh_registry: Registry) -> None:
    closed: list[Any] = []
    pool = memexport.pool(guide.ResourcePool(lambda: sqlite3.connect(":memory:"), max_size=4,
                                             cleanup_func=closed.append),
                          "guide_pool", registry=fresh_registry)
    for _ in range(2):
        with pool.acquire(timeout=0.01):  # the guide waits this long before creating one
            pass
    result = run(fresh_registry, caches={}, cleanups=(), gc=False, malloc_trim=False)
    assert result["pools"]["pools"] == {"guide_pool": "unsupported"}

    @reaper("guide_pool")
    def reap(p: Any) -> None:
        p.cleanup_all()  # the guide's own method: closes what is idle

    result = run(fresh_registry, caches={}, cleanups=(), gc=False, malloc_trim=False)
    assert result["pools"]["pools"] == {"guide_pool": "hook"}
    assert len(closed) == 1 and result["pools"]["idle_closed"] == 1


def test_registered_cleanups_run_and_are_counted(fresh_registry: Registry) -> None:
    reg = fresh_registry
    ran: list[str] = []

    def needs(limit: int) -> None:
        ran.append("needs")

    def broken() -> None:
        raise ConnectionError("backend unreachable: user data 4111")

    async def later() -> None:
        ran.append("async")

    kept = [memexport.cleanup(lambda: ran.append("trim"), "trim", registry=reg),
            memexport.cleanup(needs, "needs_args", registry=reg),
            memexport.cleanup(broken, "broken", registry=reg),
            memexport.cleanup(later, "async_job", registry=reg)]  # held as the app would
    result = run(reg, caches={}, gc=False, malloc_trim=False)["cleanups"]
    assert result["ran"] == ["trim"] and ran == ["trim"]
    assert result["failed"] == {"broken": "ConnectionError"}
    assert sorted(result["skipped"]) == ["async_job", "needs_args"]
    assert view(reg, "cleanup", "trim")["memexport_cleanup_runs_total"] == 1
    assert view(reg, "cleanup", "broken")[
        "memexport_cleanup_failures_total{ConnectionError}"] == 1
    only = run(reg, caches={}, cleanups=("broken",), gc=False, malloc_trim=False)["cleanups"]
    assert only["ran"] == [] and list(only["failed"]) == ["broken"]
    del kept


def test_gc_and_malloc_trim_and_the_deadline(fresh_registry: Registry) -> None:
    result = run(fresh_registry, caches={})
    assert result["gc"]["collected"] >= 0 and isinstance(result["malloc_trim"]["trimmed"],
                                                         bool)
    late = run(fresh_registry, timeout=1e-9, caches={"*": 0.5})
    assert all(v == {"skipped": "deadline"} for v in late.values()), late


def test_freed_memory_is_exported_in_rss_and_per_step(fresh_registry: Registry) -> None:
    """Through the dispatcher, as the webhook runs it: RSS before minus after, and each
    step's own figure."""
    reg = fresh_registry
    blobs = memexport.cache({i: os.urandom(1 << 20) for i in range(48)}, "blobs",
                            registry=reg, sizer="entry")
    metrics = ActionMetrics()
    actions = ActionSet()
    act = actions.add(shed(alerts="*", caches={"blobs": 1.0}, cooldown=0))
    metrics.declare(act)
    dispatcher = Dispatcher(metrics, registry=reg)
    try:
        assert dispatcher.submit(act, "firing", (ALERT,)) is None
        assert dispatcher.wait_idle(1, 30)
    finally:
        dispatcher.close()
    assert len(blobs) == 0
    assert act.last is not None and act.last["outcome"] == "ok", act.last
    rss_freed = metrics.value("memexport_action_freed_bytes_total", "shed")
    assert rss_freed >= 24 * 2**20, act.last  # of 48 MiB; glibc keeps some
    assert metrics.value("memexport_action_step_freed_bytes_total", "shed",
                         "caches") >= 48 * 2**20
    assert act.last["rss_before_bytes"] - act.last["rss_after_bytes"] == rss_freed


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="fraction"):
        shed(alerts="*", caches={"x": 1.5})
    with pytest.raises(ValueError, match="positive"):
        shed(alerts="*", caches={"x": 0})
    with pytest.raises(ValueError, match="history_fraction"):
        shed(alerts="*", history_fraction=2)
    with pytest.raises(ValueError, match="alerts="):
        shed()
    with pytest.raises(ValueError, match="gc must be"):
        shed(alerts="*", gc="yes")  # type: ignore[arg-type]
