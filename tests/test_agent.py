"""Agents: lifecycle, memory stores against their own limits, cleanups; no trace once freed."""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
import weakref
from datetime import datetime
from typing import Any

import pytest
from helpers import guide, samples
from pydantic import BaseModel, PrivateAttr

import memexport
from memexport.core.registry import Registry
from memexport.core.sizing import deep_size_many


def ag(s: dict[Any, float], metric: str, name: str) -> float | None:
    return s.get((metric, (("agent", name),)))


def expected_bytes(*containers: Any, pairs: bool = True) -> int:
    seen: set[int] = set()
    total = 0
    for c in containers:
        if isinstance(c, dict) and pairs:
            total += sum(deep_size_many(kv, seen) for kv in c.items())
        else:
            total += sum(deep_size_many((e,), seen) for e in c)
    return total + sum(sys.getsizeof(c) for c in containers)


def test_guide_agent_scripted_session_exact_values() -> None:
    reg = Registry()
    agent = memexport.agent(guide.MemoryManagedAgent("planner", memory_limit_mb=1),
                            name="planner", registry=reg)
    keep = [object() for _ in range(3)]
    for i, o in enumerate(keep):
        agent.store_memory(f"weak{i}", _Weakable(o), weak=True)
    agent.store_memory("note", "x" * 1000)
    s = samples(reg)
    assert ag(s, "memexport_agents", "planner") == 1
    assert ag(s, "memexport_agents_created_total", "planner") == 1
    assert ag(s, "memexport_agent_memory_items", "planner") == 1
    assert ag(s, "memexport_agent_memory_limit_bytes", "planner") == 2**20
    assert ag(s, "memexport_agent_weak_refs", "planner") == 0  # values died: weak as meant
    assert ag(s, "memexport_agent_memory_bytes", "planner") == expected_bytes(
        agent._memory_store)
    assert ag(s, "memexport_agents_over_memory_limit", "planner") == 0
    assert ag(s, "memexport_agent_last_cleanup_timestamp_seconds", "planner") == (
        agent.last_cleanup.timestamp())
    assert ag(s, "memexport_agent_cleanups_total", "planner") == 0
    # Ten values of 200 KiB: the guide's estimate passes 1 MiB at the sixth, and from then on
    # every store_memory runs _cleanup_old_memories, which drops len // 5 of the entries.
    before = datetime.now()
    for i in range(10):
        agent.store_memory(f"doc{i}", "y" * (200 * 1024))
    s = samples(reg)
    runs = ag(s, "memexport_agent_cleanups_total", "planner")
    evicted = ag(s, "memexport_agent_cleanup_evicted_total", "planner")
    assert runs == 5 and evicted == 1 + 1 + 1 + 1 + 1
    assert ag(s, "memexport_agent_memory_items", "planner") == len(agent._memory_store) == 6
    assert ag(s, "memexport_agent_last_cleanup_timestamp_seconds", "planner") >= (
        before.timestamp())
    reg.run_tick_jobs(budget_seconds=5.0)
    s = samples(reg)
    assert ag(s, "memexport_agent_memory_bytes", "planner") == expected_bytes(
        agent._memory_store)
    assert ag(s, "memexport_agents_over_memory_limit", "planner") == 1
    values = [_Weakable(o) for o in keep]
    for i, v in enumerate(values):
        agent.store_memory(f"w{i}", v, weak=True)
    assert ag(samples(reg), "memexport_agent_weak_refs", "planner") == 3


class _Weakable:
    def __init__(self, payload: Any) -> None:
        self.payload = payload


def test_class_decorator_lifecycle_created_finalized_live() -> None:
    reg = Registry()

    @memexport.agent(name="researcher", registry=reg)
    class Researcher(guide.MemoryManagedAgent):
        pass

    team = [Researcher(f"r{i}", memory_limit_mb=10) for i in range(5)]
    for r in team:
        r.store_memory("k", "v")
    s = samples(reg)
    assert ag(s, "memexport_agents", "researcher") == 5
    assert ag(s, "memexport_agent_memory_items", "researcher") == 5
    assert ag(s, "memexport_agent_memory_limit_bytes", "researcher") == 5 * 10 * 2**20
    del team[:3]
    gc.collect()
    s = samples(reg)
    assert ag(s, "memexport_agents", "researcher") == 2
    assert ag(s, "memexport_agents_created_total", "researcher") == 5
    assert ag(s, "memexport_agents_finalized_total", "researcher") == 3

    @memexport.agent(name="bare", registry=reg)
    class Bare:
        pass

    bare = [Bare() for _ in range(4)]
    s = samples(reg)
    assert ag(s, "memexport_agents", "bare") == 4
    assert ag(s, "memexport_agent_memory_items", "bare") is None
    del bare


def test_ten_thousand_short_lived_agents_leave_no_trace() -> None:
    reg = Registry()

    @memexport.agent(name="ephemeral", registry=reg)
    class Worker(guide.MemoryManagedAgent):
        pass

    def churn(n: int) -> None:
        for i in range(n):
            w = Worker(f"w{i}", memory_limit_mb=1)
            w.store_memory("task", i)
            del w

    churn(1000)  # warm up: first profile, first group, interned strings
    samples(reg)
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.take_snapshot()
        churn(10_000)
        gc.collect()
        samples(reg)  # a scrape drains whatever the registry queued
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    diffs = [st for st in after.compare_to(before, "filename")
             if "memexport" in st.traceback[0].filename
             and "test_" not in st.traceback[0].filename]
    blocks = sum(st.count_diff for st in diffs)
    grown = sum(st.size_diff for st in diffs)
    # Anything kept per agent would be 10,000 blocks and hundreds of KiB. What may remain is
    # bounded whatever the number of agents: a scrape's families, and the table of the
    # group's member dict, which the registry lets reach 1,024 collected members before
    # folding them (about 36 KiB; dicts keep their table when emptied).
    assert blocks < 100, f"memexport kept {blocks} blocks after 10,000 agents were freed"
    assert grown < 80_000, f"memexport kept {grown} bytes after 10,000 agents were freed"
    s = samples(reg)
    assert ag(s, "memexport_agents", "ephemeral") == 0
    assert ag(s, "memexport_agents_created_total", "ephemeral") == 11_000
    assert ag(s, "memexport_agents_finalized_total", "ephemeral") == 11_000


def test_tracking_keeps_no_agent_alive() -> None:
    reg = Registry()
    a = memexport.agent(guide.MemoryManagedAgent("x"), name="weak", registry=reg)
    a.store_memory("k", "v")
    samples(reg)
    reg.run_tick_jobs(budget_seconds=1.0)
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None
    assert ag(samples(reg), "memexport_agents", "weak") == 0


class PraisonStyleMemory:
    """A PraisonAI-style list adapter: entries in lists, add and search methods."""

    def __init__(self) -> None:
        self.short_term: list[dict[str, Any]] = []
        self.long_term: list[dict[str, Any]] = []

    def add_short_term(self, text: str) -> None:
        self.short_term.append({"text": text})

    def add_long_term(self, text: str) -> None:
        self.long_term.append({"text": text})

    def search_short_term(self, query: str) -> list[dict[str, Any]]:
        return [e for e in self.short_term if query in e["text"]]


def test_praisonai_style_list_adapter() -> None:
    reg = Registry()
    mem = memexport.agent(PraisonStyleMemory(), name="praison", registry=reg)
    for i in range(4):
        mem.add_short_term(f"s{i}")
    mem.add_long_term("l0")
    s = samples(reg)
    assert ag(s, "memexport_agent_memory_items", "praison") == 5
    assert ag(s, "memexport_agent_memory_bytes", "praison") == expected_bytes(
        mem.short_term, mem.long_term)


class CacheHandler(BaseModel):
    """A faithful copy of crewai.agents.cache.cache_handler.CacheHandler's shape (crewai
    itself is too heavy to install for tests: see memexport.integrations.crewai)."""

    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    def add(self, tool: str, input: str, output: Any) -> None:
        self._cache[f"{tool}-{input}"] = output

    def read(self, tool: str, input: str) -> Any | None:
        return self._cache.get(f"{tool}-{input}")


def test_crewai_cache_handler_shape() -> None:
    reg = Registry()
    handler = memexport.agent(CacheHandler(), name="crew_tools", registry=reg)
    for i in range(7):
        handler.add("search", f"q{i}", {"result": "r" * i})
    s = samples(reg)
    assert ag(s, "memexport_agent_memory_items", "crew_tools") == 7
    assert ag(s, "memexport_agent_memory_bytes", "crew_tools") == expected_bytes(
        handler._cache)


def test_autogen_list_memory() -> None:
    from autogen_core.memory import ListMemory, MemoryContent, MemoryMimeType

    reg = Registry()
    memory = memexport.agent(ListMemory(name="prefs"), name="autogen_mem", registry=reg)

    async def session() -> None:
        for i in range(6):
            await memory.add(MemoryContent(content=f"fact {i}", mime_type=MemoryMimeType.TEXT))

    asyncio.run(session())
    s = samples(reg)
    assert ag(s, "memexport_agent_memory_items", "autogen_mem") == 6
    assert ag(s, "memexport_agent_memory_bytes", "autogen_mem") == expected_bytes(
        memory.content)
    asyncio.run(memory.clear())
    s = samples(reg)
    assert ag(s, "memexport_agent_memory_items", "autogen_mem") == 0
    assert ag(s, "memexport_agent_cleanups_total", "autogen_mem") == 1
    assert ag(s, "memexport_agent_cleanup_evicted_total", "autogen_mem") == 6


def test_explicit_arguments() -> None:
    class Bot:
        def __init__(self) -> None:
            self.kb: dict[str, str] = {}
            self.trimmed_at = 1_700_000_000.0

        def trim(self) -> None:
            for k in list(self.kb)[:2]:
                del self.kb[k]

    reg = Registry()
    bot = memexport.agent(Bot(), name="bot", memory="kb", limit_bytes=4096, cleanup="trim",
                          last_cleanup="trimmed_at", registry=reg)
    for i in range(5):
        bot.kb[f"k{i}"] = "v" * 100
    bot.trim()
    s = samples(reg)
    assert ag(s, "memexport_agent_memory_items", "bot") == 3
    assert ag(s, "memexport_agent_memory_limit_bytes", "bot") == 4096
    assert ag(s, "memexport_agent_cleanups_total", "bot") == 1
    assert ag(s, "memexport_agent_cleanup_evicted_total", "bot") == 2
    assert ag(s, "memexport_agent_last_cleanup_timestamp_seconds", "bot") == 1_700_000_000.0


def test_bad_input() -> None:
    reg = Registry()
    with pytest.raises(TypeError, match="memory="):
        memexport.agent({"a": 1}, name="x", registry=reg)
    with pytest.raises(ValueError, match="'missing'"):
        memexport.agent(guide.MemoryManagedAgent("a"), name="x", memory="missing",
                        registry=reg)
    with pytest.raises(ValueError, match="-5"):
        memexport.agent(guide.MemoryManagedAgent("a"), name="x", limit_bytes=-5, registry=reg)
    with pytest.raises(ValueError, match="'no_such'"):
        memexport.agent(guide.MemoryManagedAgent("a"), name="x", cleanup="no_such",
                        registry=reg)
    with pytest.raises(ValueError, match="'__x'"):
        memexport.agent(guide.MemoryManagedAgent("a"), name="__x", registry=reg)


def test_class_tracked_agents_cleanups_and_no_double_tracking() -> None:
    reg = Registry()

    class Base(guide.MemoryManagedAgent):
        pass

    @memexport.agent(name="cleaner", registry=reg)
    class Cleaner(Base):
        pass

    class Sub(Cleaner):  # constructed through Cleaner.__init__: tracked as "cleaner"
        pass

    tracked = [Cleaner("a", memory_limit_mb=1), Sub("b", memory_limit_mb=1)]
    plain = Base("c", memory_limit_mb=1)  # same cleanup method, not tracked
    for a in (*tracked, plain):
        for i in range(10):
            a._memory_store[f"k{i}"] = i
    before = datetime.now().timestamp()
    for a in (*tracked, plain):
        a._cleanup_old_memories()  # drops 10 // 5 = 2 entries each
    assert memexport.agent(tracked[0], name="cleaner", registry=reg) is tracked[0]
    with pytest.raises(ValueError, match="already instrumented as agent 'cleaner'"):
        memexport.agent(tracked[0], name="other", registry=reg)
    s = samples(reg)
    assert ag(s, "memexport_agents", "cleaner") == 2
    assert ag(s, "memexport_agents_created_total", "cleaner") == 2
    assert ag(s, "memexport_agents", "other") is None
    assert ag(s, "memexport_agent_cleanups_total", "cleaner") == 2
    assert ag(s, "memexport_agent_cleanup_evicted_total", "cleaner") == 4
    assert ag(s, "memexport_agent_memory_items", "cleaner") == 16
    assert ag(s, "memexport_agent_last_cleanup_timestamp_seconds", "cleaner") >= before
    del tracked, a
    gc.collect()
    s = samples(reg)
    assert ag(s, "memexport_agents", "cleaner") == 0
    assert ag(s, "memexport_agents_finalized_total", "cleaner") == 2
    assert ag(s, "memexport_agent_cleanups_total", "cleaner") == 2
    assert ag(s, "memexport_agent_memory_items", "cleaner") is None
