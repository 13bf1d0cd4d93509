"""Demo parts for pools: LLM clients in a guide-style pool, HTTP sessions in a queue, a tool
thread pool, an asyncio pool, and an SQLite engine (if SQLAlchemy is importable).

``healthy``: every resource comes back. ``leak``: one LLM client is acquired and never
released (its ``memexport_pool_oldest_use_seconds`` grows). ``exhaust``: the LLM client pool
is too small for the work, so acquires time out every tick (``memexport_pool_exhausted_total``).
Timeouts are 50 ms so a tick stays fast. Public API only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import tempfile
import time
from pathlib import Path
from typing import Any

import memexport
from memexport.bench.pools import AsyncQueuePool, GuideStylePool
from memexport.demo.app import Part

#: Acquire timeout of every demo pool (seconds).
TIMEOUT = 0.05


class LLMClient:
    """Stands in for an API client: a little state per connection."""

    def __init__(self) -> None:
        self.buffer = bytearray(16 * 1024)
        self.calls = 0


class LLMClients:
    """The guide's pool of API clients; two agents use it at once each tick."""

    def __init__(self, scenario: str) -> None:
        size = 1 if scenario == "exhaust" else 4
        self.pool = memexport.pool(GuideStylePool(LLMClient, max_size=size), name="llm_clients")
        self.leak = scenario == "leak"
        self.leaked: list[Any] = []

    def step(self, tick: int) -> None:
        if self.leak and tick == 3:
            # Acquired outside a ``with`` and never released: the leak the alert finds.
            cm = self.pool.acquire(timeout=TIMEOUT)
            self.leaked.append((cm, cm.__enter__()))
        try:
            with self.pool.acquire(timeout=TIMEOUT) as first:
                first.calls += 1
                with self.pool.acquire(timeout=TIMEOUT) as second:
                    second.calls += 1
        except TimeoutError:
            pass  # exhausted: counted by memexport, retried next tick


class HTTPSessions:
    """Sessions kept in a ``queue.Queue``: ``get`` one, use it, ``put`` it back."""

    def __init__(self) -> None:
        q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=3)
        for i in range(3):
            q.put({"session": i})
        self.pool = memexport.pool(q, name="http_sessions")

    def step(self, tick: int) -> None:
        for _ in range(3):
            try:
                session = self.pool.get(timeout=TIMEOUT)
            except queue.Empty:
                continue
            session["last_tick"] = tick
            self.pool.put(session)


def _tool_call(n: int) -> int:
    time.sleep(0.002)
    return n * n


class ToolThreads:
    """A thread pool running tool calls; submitted and left to run."""

    def __init__(self) -> None:
        self.pool = memexport.pool(
            concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="memexport-demo-tool"),
            name="tools")
        self.futures: list[concurrent.futures.Future[int]] = []

    def step(self, tick: int) -> None:
        self.futures = [f for f in self.futures if not f.done()]
        self.futures.extend(self.pool.submit(_tool_call, i) for i in range(6))


class AsyncClients:
    """An asyncio pool (``async with pool.acquire()``), driven by its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = memexport.pool(AsyncQueuePool(LLMClient, max_size=3), name="async_clients")

    async def _work(self) -> None:
        async def one() -> None:
            async with self.pool.acquire(timeout=TIMEOUT) as client:
                client.calls += 1
                await asyncio.sleep(0)

        await asyncio.gather(*(one() for _ in range(3)))

    def step(self, tick: int) -> None:
        self.loop.run_until_complete(self._work())


class SQLiteEngine:
    """An SQLAlchemy engine on an SQLite file, through its pool events."""

    def __init__(self) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import QueuePool

        self.dir = tempfile.TemporaryDirectory(prefix="memexport-demo-")
        path = Path(self.dir.name) / "demo.db"
        self.engine = create_engine(f"sqlite:///{path}", poolclass=QueuePool, pool_size=2,
                                    max_overflow=1, pool_timeout=TIMEOUT)
        memexport.pool(self.engine, name="sqlite")
        self.text = text
        with self.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS ticks (n INTEGER)"))

    def step(self, tick: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.text("INSERT INTO ticks (n) VALUES (:n)"), {"n": tick})
        if tick % 50 == 49:
            self.engine.dispose()  # closes the idle connections: destroyed, then re-created


def parts(scenario: str) -> list[Part]:
    out: list[Part] = [LLMClients(scenario), HTTPSessions(), ToolThreads(), AsyncClients()]
    with contextlib.suppress(ImportError):  # a dev dependency, not a runtime one
        out.append(SQLiteEngine())
    return out
