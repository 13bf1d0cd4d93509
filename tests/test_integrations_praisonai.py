"""PraisonAI (praisonaiagents) for real: an ``Agent`` talking to a fake OpenAI-compatible
server on loopback (tests/llm_server.py), so no network and no API key; its chat history,
prompt/tool caches, FileMemory stores and lifecycle read through memexport."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_support import series
from llm_server import FakeLLM, fake_llm

import memexport
from memexport.core.registry import Registry

praisonaiagents = pytest.importorskip("praisonaiagents")


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeLLM]:
    with fake_llm("fine, thanks") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("DO_NOT_TRACK", "true")
        monkeypatch.chdir(tmp_path)  # FileMemory writes under ./.praisonai
        yield server


def make_agent(**kw: object) -> object:
    from praisonaiagents import Agent

    return Agent(name="helper", instructions="Answer briefly.", model="gpt-4o-mini", **kw)


def conv(reg: Registry, name: str) -> dict[str, float]:
    return series(reg, "conversation", name)


def test_chat_history_is_a_conversation(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = make_agent()
    assert memexport.conversation(agent, "helper", registry=fresh_registry) is agent
    assert agent.start("hello") == "fine, thanks"
    agent.chat("and again")
    asyncio.run(agent.achat("once more, async"))
    assert llm.total("/chat/completions") == 3
    v = conv(fresh_registry, "helper")
    assert v["conversation_messages"] == len(agent.chat_history) == 6
    assert v["conversation_messages_added_total"] == 6
    assert v["conversations"] == 1
    dropped = agent.prune_history(keep_last=2)
    assert dropped == 4
    v = conv(fresh_registry, "helper")
    assert v["conversation_messages"] == 2
    assert v["conversation_messages_dropped_total"] == 4
    agent.clear_history()
    assert conv(fresh_registry, "helper")["conversation_messages_dropped_total"] == 6


def test_duplicate_user_message_is_not_counted(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = make_agent()
    memexport.conversation(agent, "dedup", registry=fresh_registry)
    assert agent._add_to_chat_history_if_not_duplicate("user", "x") is True
    assert agent._add_to_chat_history_if_not_duplicate("user", "x") is False
    v = conv(fresh_registry, "dedup")
    assert v["conversation_messages_added_total"] == 1 == v["conversation_messages"]


def test_untracked_agents_pass_through(llm: FakeLLM, fresh_registry: Registry) -> None:
    tracked, other = make_agent(), make_agent()
    memexport.conversation(tracked, "one", registry=fresh_registry)
    other.chat("not counted")
    tracked.chat("counted")
    assert conv(fresh_registry, "one")["conversation_messages_added_total"] == 2
    assert len(other.chat_history) == 2


def test_prompt_and_tool_caches_are_a_cache(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = make_agent()
    assert memexport.cache(agent, "helper-prompts", registry=fresh_registry) is agent
    agent.chat("first")
    agent.chat("second")  # the system prompt is built once, then found in the cache
    v = series(fresh_registry, "cache", "helper-prompts")
    assert v["cache_items"] == len(agent._system_prompt_cache) + len(
        agent._formatted_tools_cache) >= 1
    assert v["cache_max_items"] == 2 * agent._max_cache_size
    assert v["cache_requests_total[hit]"] >= 1
    assert v["cache_requests_total[miss]"] >= 1
    assert v["cache_puts_total"] == v["cache_items"]
    agent._max_cache_size = 2
    for i in range(5):
        agent._cache_put(agent._system_prompt_cache, f"k{i}", "v")
    v = series(fresh_registry, "cache", "helper-prompts")
    assert len(agent._system_prompt_cache) == 2
    assert v["cache_evictions_total[capacity]"] >= 4


def test_agent_lifecycle_and_file_memory(llm: FakeLLM, fresh_registry: Registry,
                                          tmp_path: Path) -> None:
    agent = make_agent(memory={"backend": "file", "user_id": "u1"})
    assert memexport.agent(agent, "helper", registry=fresh_registry) is agent
    memory = agent._memory_instance
    memory.add_short_term("the user likes tea")
    memory.add_long_term("the user lives in Lyon", importance=0.9)
    memory.add_entity("Lyon", "place")
    v = series(fresh_registry, "agent", "helper")
    assert v["agents"] == 1 and v["agents_created_total"] == 1
    assert v["agent_memory_items"] == 3
    plain = make_agent()
    memexport.agent(plain, "plain", registry=fresh_registry)
    assert "agent_memory_items" not in series(fresh_registry, "agent", "plain")
    del agent, memory, plain
    gc.collect()
    v = series(fresh_registry, "agent", "helper")
    assert v["agents"] == 0 and v["agents_finalized_total"] == 1


def test_file_memory_alone_counts_its_cleanup(llm: FakeLLM, fresh_registry: Registry,
                                              tmp_path: Path) -> None:
    from praisonaiagents.memory.file_memory import FileMemory

    memory = FileMemory(user_id="u2", base_path=str(tmp_path / "mem"))
    memexport.agent(memory, "notes", registry=fresh_registry)
    for i in range(3):
        memory.add_short_term(f"note {i}")
    assert series(fresh_registry, "agent", "notes")["agent_memory_items"] == 3
    memory.clear_short_term()
    v = series(fresh_registry, "agent", "notes")
    assert v["agent_memory_items"] == 0
    assert v["agent_cleanups_total"] == 1 and v["agent_cleanup_evicted_total"] == 3
    assert v["agent_last_cleanup_timestamp_seconds"] > 0
