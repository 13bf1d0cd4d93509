"""asyncio pending tasks (memexport.integrations.asyncio_tasks) on a real event loop running
in its own thread, read from another thread as a scrape does; and the leak rule's promtool
tests (alerts/tests/tasks.test.yml) with the real promtool."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, require_binary
from integration_support import assert_catalogued, exposition
from prometheus_client.parser import text_string_to_metric_families

from memexport.core.registry import Registry
from memexport.integrations.asyncio_tasks import (
    OVERFLOW,
    track_asyncio_tasks,
    untrack_asyncio_tasks,
)


def tasks(reg: Registry, loop: str = "main") -> dict[str, tuple[float, float]]:
    """``{coroutine: (pending, oldest age)}`` of one loop."""
    counts: dict[str, float] = {}
    ages: dict[str, float] = {}
    for fam in text_string_to_metric_families(exposition(reg)):
        for s in fam.samples:
            if s.labels.get("loop") != loop:
                continue
            if s.name == "memexport_asyncio_tasks":
                counts[s.labels["coroutine"]] = s.value
            elif s.name == "memexport_asyncio_task_oldest_age_seconds":
                ages[s.labels["coroutine"]] = s.value
    return {k: (counts[k], ages[k]) for k in counts}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    t = threading.Thread(target=lp.run_forever, daemon=True)
    t.start()
    try:
        yield lp
    finally:
        lp.call_soon_threadsafe(lp.stop)
        t.join(10)
        lp.close()


#: The tests' tasks, referenced (asyncio keeps only weak references to tasks).
KEEP: list[asyncio.Task[None]] = []


async def waiter(gate: asyncio.Event) -> None:
    await gate.wait()


async def other_waiter(gate: asyncio.Event) -> None:
    await gate.wait()


async def third(gate: asyncio.Event) -> None:
    await gate.wait()


def run(loop: asyncio.AbstractEventLoop, coro: object) -> object:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(10)  # type: ignore[arg-type]


def test_pending_tasks_by_coroutine_and_age(loop: asyncio.AbstractEventLoop,
                                            fresh_registry: Registry) -> None:
    async def start() -> asyncio.Event:
        track_asyncio_tasks(registry=fresh_registry)
        gate = asyncio.Event()
        for _ in range(3):
            KEEP.append(asyncio.create_task(waiter(gate)))
        KEEP.append(asyncio.create_task(other_waiter(gate)))
        return gate

    gate = run(loop, start())
    first = tasks(fresh_registry)
    assert first["waiter"][0] == 3 and first["other_waiter"][0] == 1
    assert_catalogued(fresh_registry, "memexport_asyncio_tasks",
                      "memexport_asyncio_task_oldest_age_seconds")
    second = tasks(fresh_registry)
    assert second["waiter"][1] >= first["waiter"][1] >= 0

    async def release() -> None:
        gate.set()  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)

    run(loop, release())
    assert tasks(fresh_registry) == {}


def test_top_names_and_overflow(loop: asyncio.AbstractEventLoop,
                                fresh_registry: Registry) -> None:
    async def start() -> asyncio.Event:
        track_asyncio_tasks(name="workers", top=1, registry=fresh_registry)
        gate = asyncio.Event()
        for fn, n in ((waiter, 3), (other_waiter, 2), (third, 1)):
            for _ in range(n):
                KEEP.append(asyncio.create_task(fn(gate)))
        return gate

    gate = run(loop, start())
    got = tasks(fresh_registry, "workers")
    assert set(got) == {"waiter", OVERFLOW}
    assert got["waiter"][0] == 3 and got[OVERFLOW][0] == 3
    loop.call_soon_threadsafe(gate.set)  # type: ignore[attr-defined]
    assert untrack_asyncio_tasks("workers", registry=fresh_registry)
    assert tasks(fresh_registry, "workers") == {}


def test_closed_loop_leaves_and_bad_calls_say_why(fresh_registry: Registry) -> None:
    lp = asyncio.new_event_loop()
    track_asyncio_tasks(lp, name="short", registry=fresh_registry)
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    assert tasks(fresh_registry, "short") == {}
    with pytest.raises(ValueError, match="needs a loop"):
        track_asyncio_tasks(registry=fresh_registry)
    with pytest.raises(ValueError, match="top"):
        track_asyncio_tasks(asyncio.new_event_loop(), top=0, registry=fresh_registry)


def test_leak_rule_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    for args in (["check", "rules", "alerts/tasks.rules.yml"],
                 ["test", "rules", "alerts/tests/tasks.test.yml"]):
        out = subprocess.run([promtool, *args], capture_output=True, text=True, cwd=ROOT,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
