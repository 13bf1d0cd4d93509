"""Counts stay exact under threads, with scrapes running all along: no event lost or doubled.

Eight threads hammer one object of every hot-path shape while two more threads scrape and
run collector ticks without pause; the totals must equal the events made. Bounded by count
(8 x ``N`` operations per shape), never by time.
"""

from __future__ import annotations

import collections
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any

import cachetools

import memexport
from tests.adversarial.support import GetPutCache, GuidePool, Registry, UserMapping, value

THREADS = 8
N = 4_000


def run_threads(work: Callable[[int], None], reg: Registry) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def scrape() -> None:
        while not stop.is_set():
            reg.collect()
            reg.run_tick_jobs(0.001)

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    scrapers = [threading.Thread(target=scrape) for _ in range(2)]
    workers = [threading.Thread(target=guarded, args=(i,)) for i in range(THREADS)]
    for t in scrapers + workers:
        t.start()
    for t in workers:
        t.join(120)
    stop.set()
    for t in scrapers:
        t.join(120)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in workers + scrapers)


def test_cache_counts_are_exact_under_threads() -> None:
    reg = Registry()
    d: Any = memexport.cache({}, name="dict", registry=reg)
    m = memexport.cache(UserMapping(), name="mapping", registry=reg)
    lock = threading.Lock()
    ct: Any = memexport.cache(cachetools.LRUCache(10 ** 6), name="ct", registry=reg)
    gp = memexport.cache(GetPutCache(max_items=10 ** 6), name="getput", registry=reg)
    lru = memexport.cache(functools.lru_cache(maxsize=None)(lambda x: x), name="lru",
                          registry=reg)

    def work(i: int) -> None:
        for n in range(N):
            key = (i, n)
            d[key] = n
            d.get(key)
            d.get("absent")
            m[key] = n
            _ = m[key]
            with lock:  # cachetools and the get/put cache are not thread-safe themselves
                ct[key] = n
                ct.get(key)
                gp.put(key, n)
                gp.get(key)
                gp.get("absent")
            lru(key)
            lru(key)

    run_threads(work, reg)
    events = THREADS * N
    req = "memexport_cache_requests_total"
    for name, hits, misses in (("dict", events, events), ("mapping", events, 0),
                               ("ct", events, 0), ("getput", events, events),
                               ("lru", events, events)):
        assert value(reg, req, cache=name, result="hit") == hits, name
        assert value(reg, req, cache=name, result="miss") == misses, name
        assert value(reg, "memexport_cache_puts_total", cache=name) == events, name
        assert value(reg, "memexport_cache_items", cache=name) == events, name


def test_pool_and_conversation_counts_are_exact_under_threads() -> None:
    reg = Registry()
    q: Any = memexport.pool(queue.Queue(), name="q", registry=reg)
    for i in range(THREADS):
        q.put(f"r{i}")
    p = memexport.pool(GuidePool(max_size=THREADS), name="ctx", registry=reg)
    h: Any = memexport.conversation(collections.deque(maxlen=100), name="h", registry=reg)
    lst = memexport.conversation([], name="list", registry=reg)
    runs: Any = memexport.cleanup(lambda: None, name="trim", registry=reg)
    held: list[Any] = []

    def work(i: int) -> None:
        for n in range(N):
            r = q.get()
            q.put(r)
            with p.acquire():
                pass
            h.append(n)
            lst.append(n)
            if n % 8 == 0:
                runs()
        held.append(i)

    run_threads(work, reg)
    events = THREADS * N
    assert value(reg, "memexport_pool_acquires_total", pool="q") == events
    assert value(reg, "memexport_pool_acquires_total", pool="ctx") == events
    assert value(reg, "memexport_pool_resources", pool="q", state="in_use") == 0
    assert value(reg, "memexport_pool_resources", pool="ctx", state="in_use") == 0
    assert value(reg, "memexport_pool_pending_acquires", pool="ctx") == 0
    added = "memexport_conversation_messages_added_total"
    assert value(reg, added, conversation="h") == events
    assert value(reg, added, conversation="list") == events
    assert value(reg, "memexport_conversation_messages_dropped_total",
                 conversation="h") == events - 100
    assert value(reg, "memexport_cleanup_runs_total", cleanup="trim") == events // 8
    assert len(held) == THREADS
