"""Cleanup jobs: runs, failures by bounded exception type, duration, freed bytes, last success."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from typing import Any

import pytest
from helpers import guide, samples
from test_conversation import message

import memexport
from memexport.core.registry import Registry
from memexport.kinds.cleanup import MAX_EXCEPTION_TYPES


def cl(s: dict[Any, float], metric: str, name: str, **labels: str) -> float | None:
    return s.get((metric, tuple(sorted({"cleanup": name, **labels}.items()))))


def test_decorator_counts_runs_and_passes_results_through() -> None:
    reg = Registry()
    calls: list[int] = []

    @memexport.cleanup(name="trim_histories", period=1800, registry=reg)
    def trim_histories(n: int, *, scale: int = 1) -> int:
        """Trim them."""
        calls.append(n)
        return n * scale

    assert trim_histories.__name__ == "trim_histories"
    assert trim_histories.__doc__ == "Trim them."
    started = time.time()
    assert trim_histories(3, scale=2) == 6
    assert trim_histories(1) == 1
    assert calls == [3, 1]
    s = samples(reg)
    assert cl(s, "memexport_cleanup_runs_total", "trim_histories") == 2
    assert cl(s, "memexport_cleanup_duration_seconds_count", "trim_histories") == 2
    assert cl(s, "memexport_cleanup_period_seconds", "trim_histories") == 1800
    assert cl(s, "memexport_cleanup_last_success_timestamp_seconds", "trim_histories") >= (
        int(started))
    assert cl(s, "memexport_cleanup_freed_bytes_total", "trim_histories") >= 0
    # Failures: only the "other" series, at 0 from the start (increase() sees the first one).
    assert {k: v for k, v in s.items() if k[0] == "memexport_cleanup_failures_total"} == {
        ("memexport_cleanup_failures_total",
         (("cleanup", "trim_histories"), ("exception", "other"))): 0}


def test_failures_are_counted_and_reraised_unchanged() -> None:
    reg = Registry()
    boom = KeyError("secret user data")

    @memexport.cleanup(name="flaky", registry=reg)
    def flaky() -> None:
        raise boom

    with pytest.raises(KeyError) as info:
        flaky()
    assert info.value is boom
    # The guide's AutomaticMemoryManager swallows failures and prints them; memexport counts.
    manager = guide.AutomaticMemoryManager()
    manager.register_cleanup(flaky)
    manager.register_cleanup(memexport.cleanup(lambda: None, name="fine", registry=reg))
    manager.aggressive_cleanup()
    s = samples(reg)
    assert cl(s, "memexport_cleanup_runs_total", "flaky") == 2
    assert cl(s, "memexport_cleanup_failures_total", "flaky", exception="KeyError") == 2
    assert cl(s, "memexport_cleanup_last_success_timestamp_seconds", "flaky") is None
    assert cl(s, "memexport_cleanup_runs_total", "fine") == 1
    from test_conversation import scrape_text

    assert "secret user data" not in scrape_text(reg)


def test_exception_type_label_is_bounded() -> None:
    reg = Registry()
    types = [type(f"Error{i}", (Exception,), {}) for i in range(MAX_EXCEPTION_TYPES + 5)]

    def raise_(exc_type: type[Exception]) -> None:
        raise exc_type()

    wrapped = memexport.cleanup(raise_, name="many", registry=reg)
    for t in types + types[:2]:
        with pytest.raises(t):
            wrapped(t)
    s = samples(reg)
    labels = {dict(k[1])["exception"]: v for k, v in s.items()
              if k[0] == "memexport_cleanup_failures_total"}
    assert len(labels) == MAX_EXCEPTION_TYPES + 1
    assert labels["other"] == 5
    assert labels["Error0"] == 2
    assert cl(s, "memexport_cleanup_runs_total", "many") == len(types) + 2


def test_method_and_coroutine_cleanups() -> None:
    reg = Registry()

    class Store:
        def __init__(self) -> None:
            self.items = [1, 2, 3]

        @memexport.cleanup(name="store_trim", registry=reg)
        def trim(self) -> int:
            self.items.clear()
            return 7

    store = Store()
    assert store.trim() == 7 and store.items == []

    @memexport.cleanup(name="async_trim", registry=reg)
    async def async_trim(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    assert asyncio.run(async_trim(1)) == 2
    s = samples(reg)
    assert cl(s, "memexport_cleanup_runs_total", "store_trim") == 1
    assert cl(s, "memexport_cleanup_runs_total", "async_trim") == 1


def test_tracked_bytes_freed_by_a_cleanup() -> None:
    reg = Registry()
    history = memexport.conversation(deque(maxlen=1000), name="big", registry=reg)
    for i in range(200):
        history.append(message(i, "z" * 500))
    before = samples(reg)[("memexport_conversation_bytes", (("conversation", "big"),))]

    @memexport.cleanup(name="drop_old", tracked=True, registry=reg)
    def drop_old() -> None:
        for _ in range(150):
            history.popleft()

    drop_old()
    s = samples(reg)
    after = s[("memexport_conversation_bytes", (("conversation", "big"),))]
    assert after < before
    assert cl(s, "memexport_cleanup_freed_tracked_bytes_total", "drop_old") == before - after


@pytest.mark.parametrize("period", [0, -1, float("nan"), "30m", True])
def test_bad_period(period: Any) -> None:
    with pytest.raises(ValueError, match="period"):
        memexport.cleanup(lambda: None, name="x", period=period, registry=Registry())


def test_bad_name_and_target() -> None:
    with pytest.raises(ValueError, match="'bad name'"):
        memexport.cleanup(lambda: None, name="bad name", registry=Registry())
    with pytest.raises(ValueError, match="callable"):
        memexport.cleanup(42, name="x", registry=Registry())  # type: ignore[arg-type]


def test_tracked_bytes_include_agents_never_scraped() -> None:
    reg = Registry()

    @memexport.agent(name="workers", registry=reg)
    class Worker(guide.MemoryManagedAgent):
        pass

    workers = [Worker(f"w{i}", memory_limit_mb=100) for i in range(3)]
    for w in workers:
        for i in range(20):
            w._memory_store[f"k{i}"] = f"{i}" + "v" * 300  # distinct strings

    @memexport.cleanup(name="forget", tracked=True, registry=reg)
    def forget() -> None:
        for w in workers:
            w._memory_store.clear()

    forget()  # before any scrape: the agents are found through the registry
    s = samples(reg)
    freed = cl(s, "memexport_cleanup_freed_tracked_bytes_total", "forget")
    assert freed is not None and freed >= 3 * 20 * 300
    assert s[("memexport_agent_memory_bytes", (("agent", "workers"),))] == 3 * sys.getsizeof({})
