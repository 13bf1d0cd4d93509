"""OpenAI Agents SDK (openai-agents, module ``agents``) for real: agents run by ``Runner``
against the loopback fake LLM (Responses API and Chat Completions), with ``SQLiteSession``
in memory and on a file; sessions read as conversations, agents and their runs as agents."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_support import assert_catalogued, series
from llm_server import FakeLLM, fake_llm

import memexport
from memexport.core.registry import Registry

agents = pytest.importorskip("agents")
openai = pytest.importorskip("openai")


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with fake_llm("the answer") as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        agents.set_default_openai_client(client, use_for_tracing=False)
        agents.set_tracing_disabled(True)
        try:
            yield server
        finally:
            agents.set_default_openai_api("responses")


def conv(reg: Registry, name: str) -> dict[str, float]:
    return series(reg, "conversation", name)


def test_in_memory_session_counts_items(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = agents.Agent(name="helper", instructions="Be brief.")
    session = agents.SQLiteSession("user-1")
    assert memexport.conversation(session, "support", registry=fresh_registry) is session
    result = agents.Runner.run_sync(agent, "hello", session=session)
    assert result.final_output == "the answer"
    agents.Runner.run_sync(agent, "again", session=session)
    assert llm.total("/responses") == 2
    stored = asyncio.run(session.get_items())
    v = conv(fresh_registry, "support")
    assert v["conversation_messages"] == len(stored) == 4
    assert v["conversation_messages_added_total"] == 4
    assert asyncio.run(session.pop_item()) is not None
    v = conv(fresh_registry, "support")
    assert v["conversation_messages"] == 3 and v["conversation_messages_dropped_total"] == 1
    asyncio.run(session.clear_session())
    v = conv(fresh_registry, "support")
    assert v["conversation_messages"] == 0 and v["conversation_messages_dropped_total"] == 4
    session.close()


def test_file_session_starts_from_its_rows_and_never_queries_at_scrape(
        llm: FakeLLM, fresh_registry: Registry, tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    agent = agents.Agent(name="helper", instructions="Be brief.")
    first = agents.SQLiteSession("user-2", db)
    agents.Runner.run_sync(agent, "hello", session=first)
    first.close()
    session = agents.SQLiteSession("user-2", db)
    memexport.conversation(session, "files", registry=fresh_registry)
    assert conv(fresh_registry, "files")["conversation_messages"] == 2
    # Another connection holds the database's write lock: a scrape must not wait on it.
    blocker = sqlite3.connect(db, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        got: list[dict[str, float]] = []
        t = threading.Thread(target=lambda: got.append(conv(fresh_registry, "files")))
        t.start()
        t.join(10)
        assert got and got[0]["conversation_messages"] == 2
    finally:
        blocker.rollback()
        blocker.close()
    agents.Runner.run_sync(agent, "more", session=session)
    assert conv(fresh_registry, "files")["conversation_messages"] == 4
    session.close()


def test_untracked_sessions_pass_through(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = agents.Agent(name="helper", instructions="Be brief.")
    tracked, other = agents.SQLiteSession("a"), agents.SQLiteSession("b")
    memexport.conversation(tracked, "one", registry=fresh_registry)
    agents.Runner.run_sync(agent, "x", session=other)
    assert conv(fresh_registry, "one").get("conversation_messages_added_total") == 0
    assert len(asyncio.run(other.get_items())) == 2


def test_agent_runs_and_lifecycle(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = agents.Agent(name="triage", instructions="Be brief.")
    untracked = agents.Agent(name="other", instructions="Be brief.")
    assert memexport.agent(agent, "triage", registry=fresh_registry) is agent

    async def more(agent: agents.Agent) -> float:
        await agents.Runner.run(agent, "one")
        await agents.Runner.run(untracked, "not counted")
        await agents.Runner.run(agent, "two")
        streamed = agents.Runner.run_streamed(agent, "three")
        during = series(fresh_registry, "agent", "triage")["agent_runs_active"]
        async for _event in streamed.stream_events():
            pass
        return during

    assert asyncio.run(more(agent)) == 1
    v = series(fresh_registry, "agent", "triage")
    assert v["agent_runs_total"] == 3
    assert v["agent_runs_active"] == 0
    assert v["agent_run_failures_total"] == 0
    assert v["agents"] == 1
    assert_catalogued(fresh_registry, "memexport_agent_runs", "memexport_agent_runs_active",
                      "memexport_agent_run_failures")
    del agent
    gc.collect()
    v = series(fresh_registry, "agent", "triage")
    assert v["agents"] == 0 and v["agents_finalized_total"] == 1 and v["agent_runs_total"] == 3


def test_failed_run_is_counted(fresh_registry: Registry) -> None:
    agents.set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-test",
                                max_retries=0)
    model = agents.OpenAIChatCompletionsModel(model="fake-model", openai_client=client)
    agent = agents.Agent(name="broken", instructions="x", model=model)
    memexport.agent(agent, "broken", registry=fresh_registry)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's connection error, whatever its type
        agents.Runner.run_sync(agent, "x")
    v = series(fresh_registry, "agent", "broken")
    assert v["agent_runs_total"] == 1 and v["agent_run_failures_total"] == 1
    assert v["agent_runs_active"] == 0


def test_chat_completions_model_with_session(llm: FakeLLM, fresh_registry: Registry) -> None:
    client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="sk-test", max_retries=0)
    model = agents.OpenAIChatCompletionsModel(model="fake-model", openai_client=client)
    agent = agents.Agent(name="cc", instructions="Be brief.", model=model)
    session = agents.SQLiteSession("cc")
    memexport.conversation(session, "cc", registry=fresh_registry)
    memexport.agent(agent, "cc", registry=fresh_registry)
    result = agents.Runner.run_sync(agent, "hi", session=session)
    assert result.final_output == "the answer"
    assert llm.total("/chat/completions") == 1
    assert conv(fresh_registry, "cc")["conversation_messages"] == 2
    assert series(fresh_registry, "agent", "cc")["agent_runs_total"] == 1
