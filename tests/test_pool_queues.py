"""Tracked ``queue.Queue`` pools run the stdlib's own get/put bodies with the bookkeeping in
them (``memexport.kinds.pool.queue_code``): exact counts for each stdlib queue class and for a
subclass that overrides ``get``/``put`` (the wrapper fallback), blocked getters woken, errors
counted as the pool kind says. Timeouts are 10 ms; nothing asserts on durations."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest
from helpers import pool_values as values

import memexport
from memexport.core.registry import Registry
from memexport.kinds.pool import queue_code


class Res:
    def __init__(self, n: int) -> None:
        self.n = n

    def __lt__(self, other: Res) -> bool:  # for PriorityQueue
        return self.n < other.n


class OwnGetPut(queue.Queue):  # type: ignore[type-arg]
    """An app queue overriding get/put: instrumented through the wrappers."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return super().get(block, timeout)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)


def test_this_pythons_queue_code_is_among_the_copies() -> None:
    get_body, put_body = queue_code.stdlib_bodies()
    assert get_body is not None and put_body is not None
    q = memexport.pool(queue.Queue(), name="copies", registry=Registry())
    assert q.get.__code__.co_filename == "<memexport queue get>"
    assert q.put.__code__.co_filename == "<memexport queue put>"
    overriding = memexport.pool(OwnGetPut(), name="wrapped", registry=Registry())
    assert overriding.get.__code__.co_filename == "<memexport pool call>"


def test_a_queue_whose_code_differs_is_not_copied() -> None:
    def get(self: Any, block: bool = True, timeout: float | None = None) -> Any:
        with self.not_empty:
            return self._get()

    assert queue_code._matching((queue_code._GET_310, queue_code._GET_313),
                                queue_code._GET_HEAD, get) is None
    assert queue_code._matching((queue_code._GET_310, queue_code._GET_313),
                                queue_code._GET_HEAD, len) is None


@pytest.mark.parametrize("cls", [queue.Queue, queue.LifoQueue, queue.PriorityQueue, OwnGetPut])
def test_exact_counts_and_the_class_order(cls: type) -> None:
    reg = Registry()
    q: Any = cls(maxsize=3)
    q.put(Res(2))
    q.put(Res(1))
    p: Any = memexport.pool(q, name="q", registry=reg)
    a = p.get(timeout=0.01)
    b = p.get_nowait()
    expected = {queue.LifoQueue: (1, 2), queue.PriorityQueue: (1, 2)}.get(cls, (2, 1))
    assert (a.n, b.n) == expected
    with pytest.raises(queue.Empty):
        p.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        p.get(False)
    with pytest.raises(ValueError, match="non-negative"):
        p.get(True, -1)
    v = values(reg, "q")
    assert (v["resources[in_use]"], v["resources[idle]"]) == (2, 0)
    assert (v["exhausted_total"], v["acquire_errors_total"]) == (2, 1)
    assert v["pending_acquires"] == 0
    p.put(a)
    p.put_nowait(b)
    p.put(Res(3), timeout=0.01)  # never handed out: created
    with pytest.raises(queue.Full):
        p.put(Res(4), timeout=0.01)
    with pytest.raises(queue.Full):
        p.put_nowait(Res(5))
    v = values(reg, "q")
    assert (v["resources[in_use]"], v["resources[idle]"]) == (0, 3)
    assert v["acquires_total"] == 2 == v["use_seconds_count"] == v["acquire_wait_seconds_count"]
    assert v["created_total"] == 3
    assert p.qsize() == q.qsize() == 3  # one queue: the original sees the items


def test_a_blocked_getter_is_pending_and_woken_by_a_put() -> None:
    reg = Registry()
    q: queue.Queue[Res] = queue.Queue()
    p: Any = memexport.pool(q, name="blocked", registry=reg)
    got: list[Res] = []
    waiters = [threading.Thread(target=lambda: got.append(p.get())),
               threading.Thread(target=lambda: got.append(p.get(timeout=30)))]
    for t in waiters:
        t.start()
    for _ in range(10_000):  # both inside wait(): two waiters on the shared condition
        if len(q.not_empty._waiters) == 2:  # type: ignore[attr-defined]
            break
        threading.Event().wait(0.001)
    assert values(reg, "blocked")["pending_acquires"] == 2
    p.put(Res(1))  # the tracked queue's put wakes one
    q.put(Res(2))  # and the original's the other (same condition)
    for t in waiters:
        t.join(30)
    assert sorted(r.n for r in got) == [1, 2]
    v = values(reg, "blocked")
    assert v["pending_acquires"] == 0
    assert v["acquires_total"] == 2
    assert v["resources[in_use]"] == 2
    assert v["created_total"] == 1  # the original's put is not seen


def test_threads_cycling_keep_exact_counts() -> None:
    reg = Registry()
    q: queue.Queue[Res] = queue.Queue(maxsize=2)
    for n in range(2):
        q.put(Res(n))
    p: Any = memexport.pool(q, name="threads", registry=reg)

    def cycle() -> None:
        for _ in range(3000):  # crosses the in-thread fold every 4,096 acquires
            p.put(p.get())

    threads = [threading.Thread(target=cycle) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    v = values(reg, "threads")
    assert v["acquires_total"] == 12_000 == v["use_seconds_count"]
    assert (v["resources[in_use]"], v["resources[idle]"], v["created_total"]) == (0, 2, 2)
    assert v["pending_acquires"] == 0
