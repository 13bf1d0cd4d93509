"""memexport.pool: exact counts and gauges for each pool kind after scripted sequences.

Each test scrapes a private Registry through prometheus_client's text exposition. The guide's
``ResourcePool`` is the real one from ../shared/seed when present (else the bench's faithful
copy). Timeouts are 10-50 ms; nothing asserts on wall-clock durations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import queue
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import require_binary
from helpers import exposition, guide, pool_values, samples

import memexport
from memexport.bench.pools import AsyncQueuePool
from memexport.core.registry import Registry
from memexport.kinds.pool import KIND, PoolProxy

ResourcePool = guide.ResourcePool


class Factory:
    """Makes numbered resources (weak-referenceable), counting calls; can be made to fail."""

    def __init__(self) -> None:
        self.made = 0
        self.fail = False

    def __call__(self) -> Any:
        if self.fail:
            raise ConnectionError("backend down")
        self.made += 1
        return Resource(self.made)


class Resource:
    def __init__(self, n: int) -> None:
        self.n = n


# -- the guide's pool ------------------------------------------------------------------------


def test_guide_pool_scripted_sequence_exact_values() -> None:
    reg = Registry()
    factory = Factory()
    p = memexport.pool(ResourcePool(factory, max_size=2), name="llm", registry=reg)
    assert isinstance(p, ResourcePool)  # a proxy: isinstance holds

    with p.acquire(timeout=0.01) as a:  # empty queue: waits 10 ms, then creates #1
        v = pool_values(reg, "llm")
        assert v["resources[in_use]"] == 1
        assert v["resources[idle]"] == 0
        assert v["oldest_use_seconds"] > 0
        with p.acquire(timeout=0.01) as b:  # creates #2
            assert (a.n, b.n) == (1, 2)
            with pytest.raises(TimeoutError, match="exhausted"):
                with p.acquire(timeout=0.01):  # size == max_size: the guide raises
                    pytest.fail("not reached")
            v = pool_values(reg, "llm")
            assert v["resources[in_use]"] == 2
            assert v["exhausted_total"] == 1
    with pytest.raises(KeyError):
        with p.acquire(timeout=0.01) as c:  # from the queue, no creation
            raise KeyError("inside the with block")
    assert c.n in (1, 2)
    factory_made = factory.made

    v = pool_values(reg, "llm")
    assert v == {
        "resources[idle]": 2,  # the exception still released the resource
        "resources[in_use]": 0,
        "max_resources": 2,
        "pending_acquires": 0,
        "acquires_total": 3,
        "exhausted_total": 1,
        "acquire_errors_total": 0,
        "acquire_wait_seconds_count": 3,
        "acquire_wait_seconds_sum": v["acquire_wait_seconds_sum"],
        "use_seconds_count": 3,  # the failed block counted once
        "use_seconds_sum": v["use_seconds_sum"],
        "created_total": 2,
        "destroyed_total": 0,
        "oldest_use_seconds": 0,
    }
    assert factory_made == 2
    assert v["acquire_wait_seconds_sum"] > 0 and v["use_seconds_sum"] > 0


def test_guide_pool_factory_error_is_an_acquire_error() -> None:
    reg = Registry()
    factory = Factory()
    factory.fail = True
    p = memexport.pool(ResourcePool(factory, max_size=2), name="flaky", registry=reg)
    with pytest.raises(ConnectionError, match="backend down"):
        with p.acquire(timeout=0.01):
            pass
    v = pool_values(reg, "flaky")
    assert (v["acquire_errors_total"], v["exhausted_total"], v["acquires_total"]) == (0 + 1, 0, 0)
    assert v["pending_acquires"] == 0
    assert v["resources[in_use]"] == 0


def test_histogram_counts_equal_acquires_and_buckets_are_cumulative() -> None:
    reg = Registry()
    p = memexport.pool(ResourcePool(Factory(), max_size=3), name="h", registry=reg)
    with p.acquire(timeout=0.001):
        pass
    for _ in range(5000):  # crosses the in-thread fold every 4,096 acquires
        with p.acquire(timeout=1):
            pass
    s = samples(reg)
    acquires = s[("memexport_pool_acquires_total", (("pool", "h"),))]
    assert acquires == 5001
    for hist in ("memexport_pool_acquire_wait_seconds", "memexport_pool_use_seconds"):
        assert s[(f"{hist}_count", (("pool", "h"),))] == acquires
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in s.items()
                         if k[0] == f"{hist}_bucket" and dict(k[1]).get("pool") == "h")
        assert buckets[-1] == (float("inf"), acquires)
        counts = [c for _, c in buckets]
        assert counts == sorted(counts)


def test_leaked_resource_shows_in_oldest_use() -> None:
    reg = Registry()
    p = memexport.pool(ResourcePool(Factory(), max_size=2), name="leaky", registry=reg)
    cm = p.acquire(timeout=0.001)
    cm.__enter__()  # acquired and never released
    with p.acquire(timeout=0.001):
        pass
    first = pool_values(reg, "leaky")
    second = pool_values(reg, "leaky")
    assert first["resources[in_use]"] == 1
    assert 0 < first["oldest_use_seconds"] <= second["oldest_use_seconds"]
    cm.__exit__(None, None, None)
    assert pool_values(reg, "leaky")["oldest_use_seconds"] == 0


def test_sixteen_threads_balance_to_zero_in_use() -> None:
    reg = Registry()
    p = memexport.pool(ResourcePool(Factory(), max_size=4), name="busy", registry=reg)
    with contextlib.ExitStack() as stack:  # create the 4 resources up front
        for _ in range(4):
            stack.enter_context(p.acquire(timeout=0.001))
    n = 300
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(n):
                with p.acquire(timeout=10) as r:
                    assert isinstance(r, Resource)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    v = pool_values(reg, "busy")
    assert v["resources[in_use]"] == 0
    assert v["resources[idle]"] == 4
    assert v["pending_acquires"] == 0
    assert v["acquires_total"] == 16 * n + 4
    assert v["use_seconds_count"] == 16 * n + 4
    assert v["oldest_use_seconds"] == 0
    assert v["created_total"] == 4


def test_contextmanager_semantics_match_contextlib() -> None:
    """The instrumented acquire drives the generator exactly as contextlib does."""

    class Suppressing:
        def __init__(self) -> None:
            self.log: list[str] = []

        @contextlib.contextmanager
        def acquire(self) -> Iterator[str]:
            try:
                yield "r"
            except ValueError:
                self.log.append("swallowed")  # suppresses ValueError
            except KeyError as exc:
                raise RuntimeError("converted") from exc
            finally:
                self.log.append("released")

    reg = Registry()
    plain, wrapped = Suppressing(), Suppressing()
    proxy = memexport.pool(wrapped, name="sem", registry=reg)
    for target in (plain, proxy):
        with target.acquire():
            raise ValueError("suppressed by the generator")
        with pytest.raises(RuntimeError, match="converted"):
            with target.acquire():
                raise KeyError("k")
        with pytest.raises(StopIteration):
            with target.acquire():
                raise StopIteration
    assert plain.log == wrapped.log
    v = pool_values(reg, "sem")
    assert (v["acquires_total"], v["use_seconds_count"], v["resources[in_use]"]) == (3, 3, 0)


def test_pool_is_not_kept_alive_and_counts_survive() -> None:
    reg = Registry()
    proxy = memexport.pool(ResourcePool(Factory(), max_size=1), name="gone", registry=reg)
    with proxy.acquire(timeout=0.001):
        pass
    ref = weakref.ref(proxy.__wrapped__)
    del proxy
    gc.collect()
    assert ref() is None
    s = samples(reg)
    assert s[("memexport_pool_acquires_total", (("pool", "gone"),))] == 1
    assert ("memexport_pool_resources", (("pool", "gone"), ("state", "in_use"))) not in s


# -- queues ------------------------------------------------------------------------------------


def test_queue_pool_exact_values() -> None:
    reg = Registry()
    q: queue.Queue[Resource] = queue.Queue(maxsize=3)
    q.put(Resource(1))
    q.put(Resource(2))
    p = memexport.pool(q, name="q", registry=reg)
    a = p.get(timeout=0.01)
    b = p.get_nowait()
    with pytest.raises(queue.Empty):
        p.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        p.get_nowait()
    v = pool_values(reg, "q")
    assert (v["resources[in_use]"], v["resources[idle]"], v["exhausted_total"]) == (2, 0, 2)
    p.put(a)
    p.put_nowait(b)
    p.put(Resource(3))  # never handed out: a new resource
    v = pool_values(reg, "q")
    assert v["resources[in_use]"] == 0
    assert v["resources[idle]"] == 3
    assert v["max_resources"] == 3
    assert v["acquires_total"] == 2 == v["use_seconds_count"]
    assert v["created_total"] == 3  # two queued before wrapping, one put later
    assert v["pending_acquires"] == 0
    assert v["destroyed_total"] == 0  # a queue never tells: stays 0


def test_asyncio_queue_pool_under_a_real_loop() -> None:
    reg = Registry()

    async def script() -> Any:
        q: asyncio.Queue[Resource] = asyncio.Queue()
        p = memexport.pool(q, name="aq", registry=reg)
        await p.put(Resource(1))
        r = await p.get()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.get(), 0.01)  # the cancelled wait is exhaustion
        with pytest.raises(asyncio.QueueEmpty):
            p.get_nowait()
        v = pool_values(reg, "aq")
        assert (v["resources[in_use]"], v["pending_acquires"]) == (1, 0)
        await p.put(r)
        return p

    keep = asyncio.run(script())  # kept: the gauges of a collected queue leave the scrape
    v = pool_values(reg, "aq")
    assert (v["acquires_total"], v["exhausted_total"], v["created_total"]) == (1, 2, 1)
    assert (v["resources[in_use]"], v["resources[idle]"], v["use_seconds_count"]) == (0, 1, 1)
    assert "max_resources" not in v  # unbounded
    del keep


def test_asyncio_context_manager_pool_under_a_real_loop() -> None:
    reg = Registry()

    async def script() -> Any:
        p = memexport.pool(AsyncQueuePool(Factory(), max_size=1), name="ac", registry=reg)
        async with p.acquire(timeout=0.01) as r1:
            assert isinstance(r1, Resource)
            with pytest.raises(asyncio.TimeoutError):
                async with p.acquire(timeout=0.01):
                    pytest.fail("not reached")
            v = pool_values(reg, "ac")
            assert (v["resources[in_use]"], v["exhausted_total"]) == (1, 1)
        with pytest.raises(KeyError):
            async with p.acquire(timeout=0.01):
                raise KeyError("inside")
        # 16 tasks share the one resource.
        async def one() -> None:
            async with p.acquire(timeout=5):
                await asyncio.sleep(0)

        await asyncio.gather(*(one() for _ in range(16)))
        return p

    keep = asyncio.run(script())
    v = pool_values(reg, "ac")
    assert v["acquires_total"] == 18 == v["use_seconds_count"]
    assert (v["resources[in_use]"], v["pending_acquires"], v["exhausted_total"]) == (0, 0, 1)
    assert (v["resources[idle]"], v["max_resources"], v["created_total"]) == (1, 1, 1)
    del keep


# -- explicit arguments, class decoration ------------------------------------------------------


class CallPool:
    """Resources handed out by value: ``r = pool.checkout(); pool.checkin(r)``."""

    def __init__(self, n: int) -> None:
        self.free = [Resource(i) for i in range(n)]
        self.limit = n

    def checkout(self) -> Resource:
        if not self.free:
            raise LookupError("no resource")
        return self.free.pop()

    def checkin(self, r: Resource) -> None:
        self.free.append(r)


def test_explicit_methods_and_readers() -> None:
    reg = Registry()
    p = memexport.pool(CallPool(2), name="call", registry=reg, acquire="checkout",
                       release="checkin", idle=lambda o: len(o.free), max_size="limit",
                       exhausted=LookupError)
    a, b = p.checkout(), p.checkout()
    with pytest.raises(LookupError):
        p.checkout()
    v = pool_values(reg, "call")
    assert (v["resources[in_use]"], v["resources[idle]"], v["max_resources"]) == (2, 0, 2)
    p.checkin(a)
    p.checkin(b)
    v = pool_values(reg, "call")
    assert (v["resources[in_use]"], v["resources[idle]"], v["exhausted_total"]) == (0, 2, 1)
    assert v["acquires_total"] == 2 == v["use_seconds_count"]


def test_class_decoration_instruments_every_instance() -> None:
    reg = Registry()

    @memexport.pool(name="decorated", registry=reg)
    class Pool(ResourcePool):
        pass

    pools = [Pool(Factory(), max_size=2) for _ in range(2)]
    assert type(pools[0]) is Pool
    for p in pools:
        with p.acquire(timeout=0.001):
            with p.acquire(timeout=0.001):
                pass
    with pools[0].acquire(timeout=0.001):
        v = pool_values(reg, "decorated")
        assert v["resources[in_use]"] == 1
    v = pool_values(reg, "decorated")
    assert (v["acquires_total"], v["max_resources"], v["resources[idle]"]) == (5, 4, 4)
    assert (v["created_total"], v["resources[in_use]"]) == (4, 0)


def test_type_error_says_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"acquire='<method>'.*release="):
        memexport.pool(Resource(1), name="what", registry=Registry())

    class Ambiguous:
        def acquire(self) -> Any: ...
        def release(self, r: Any) -> None: ...

    with pytest.raises(TypeError, match=r"mode='context'.*mode='call'"):
        memexport.pool(Ambiguous(), name="amb", registry=Registry())


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "sometimes"}, "'sometimes'"),
    ({"max_size": -1}, "-1"),
    ({"idle": "not an attr!"}, "not an attr"),
    ({"exhausted": "TimeoutError"}, "TimeoutError"),
    ({"acquire": "nope"}, "'nope'"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        memexport.pool(ResourcePool(Factory()), name="bad", registry=Registry(), **kwargs)


def test_same_pool_twice_is_one_pool() -> None:
    """The one rule of every kind: the same object under its name again is the instrumented
    object it already is (no double count); under another name it is refused."""
    reg = Registry()
    raw = ResourcePool(Factory())
    proxy = memexport.pool(raw, name="once", registry=reg)
    assert isinstance(proxy, PoolProxy)
    assert memexport.pool(raw, name="once", registry=reg) is proxy
    assert memexport.pool(proxy, name="once", registry=reg) is proxy
    with pytest.raises(ValueError, match="already instrumented as pool 'once'"):
        memexport.pool(raw, name="twice", registry=reg)
    with pytest.raises(ValueError, match="ResourcePool is already instrumented as pool 'once'"):
        memexport.pool(proxy, name="again", registry=reg)


# -- thread pools ------------------------------------------------------------------------------


def test_thread_pool_executor_workers_busy_and_backlog() -> None:
    reg = Registry()
    gate = threading.Event()
    with memexport.pool(concurrent.futures.ThreadPoolExecutor(2), name="tools",
                        registry=reg) as ex:
        assert isinstance(ex, PoolProxy)  # ``with`` gives the proxy back
        blocked = [ex.submit(gate.wait, 10) for _ in range(2)]
        queued = [ex.submit(pow, 2, i) for i in range(3)]
        # Both workers busy, three tasks queued (wait until both picked theirs up).
        deadline = threading.Event()
        for _ in range(500):
            v = pool_values(reg, "tools")
            if v["resources[in_use]"] == 2:
                break
            deadline.wait(0.01)
        assert (v["resources[in_use]"], v["pending_acquires"], v["max_resources"]) == (2, 3, 2)
        assert v["resources[idle]"] == 0
        gate.set()
        assert [f.result() for f in queued] == [1, 2, 4]
        assert all(f.result() for f in blocked)
        assert list(ex.map(abs, [-1, -2])) == [1, 2]
    v = pool_values(reg, "tools")
    assert v["acquires_total"] == 7 == v["use_seconds_count"]
    assert (v["resources[in_use]"], v["pending_acquires"], v["exhausted_total"]) == (0, 0, 0)
    assert v["created_total"] == 2 == v["destroyed_total"]  # shut down: both threads ended


# -- exposition ----------------------------------------------------------------------------------


def test_promtool_check_metrics_on_a_pools_exposition() -> None:
    promtool = require_binary("promtool")
    reg = Registry()
    p = memexport.pool(ResourcePool(Factory(), max_size=1), name="llm_clients", registry=reg)
    with p.acquire(timeout=0.001):
        with pytest.raises(TimeoutError):
            with p.acquire(timeout=0.001):
                pass
    text = exposition(reg)
    assert all(m.name in text for m in KIND.own)  # adapters' own metrics only with them
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_public_export() -> None:
    assert memexport.pool is sys.modules["memexport.kinds.pool"].pool
    assert "pool" in memexport.__all__


def test_queue_and_executor_are_not_kept_alive() -> None:
    reg = Registry()
    q: queue.Queue[Resource] = queue.Queue()
    q.put(Resource(1))
    p = memexport.pool(q, name="q_gone", registry=reg)
    p.put(p.get())
    ex = concurrent.futures.ThreadPoolExecutor(1)
    e = memexport.pool(ex, name="ex_gone", registry=reg)
    assert e.submit(int).result() == 0
    e.shutdown()
    refs = [weakref.ref(q), weakref.ref(ex)]
    del q, p, ex, e
    gc.collect()
    assert [r() for r in refs] == [None, None]
    s = samples(reg)
    assert s[("memexport_pool_acquires_total", (("pool", "q_gone"),))] == 1
    assert s[("memexport_pool_acquires_total", (("pool", "ex_gone"),))] == 1
