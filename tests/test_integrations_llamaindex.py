"""LlamaIndex (llama-index-core) chat memory for real: ``ChatMemoryBuffer`` and
``ChatSummaryMemoryBuffer`` on the default ``SimpleChatStore``, and the SQL-backed ``Memory``
(an in-memory SQLite through aiosqlite), driven by a real ``SimpleChatEngine`` on
llama-index-core's ``MockLLM`` (no network)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from integration_support import series

import memexport
from memexport.core.registry import Registry

pytest.importorskip("llama_index.core")


def conv(reg: Registry, name: str) -> dict[str, float]:
    return series(reg, "conversation", name)


def test_chat_memory_buffer_in_a_chat_engine(fresh_registry: Registry) -> None:
    from llama_index.core.chat_engine import SimpleChatEngine
    from llama_index.core.llms import MockLLM
    from llama_index.core.memory import ChatMemoryBuffer

    memory = ChatMemoryBuffer.from_defaults(token_limit=20)
    assert memexport.conversation(memory, "engine", registry=fresh_registry) is memory
    engine = SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=5), memory=memory)
    for i in range(4):
        engine.chat(f"question {i}")
    v = conv(fresh_registry, "engine")
    # The whole history stays in the store; the token limit only narrows what get() shows.
    assert v["conversation_messages"] == len(memory.get_all()) == 8
    assert len(memory.get()) < 8
    assert v["conversation_messages_added_total"] == 8
    memory.reset()
    v = conv(fresh_registry, "engine")
    assert v["conversation_messages"] == 0 and v["conversation_messages_dropped_total"] == 8
    del engine, memory
    gc.collect()
    assert conv(fresh_registry, "engine")["conversations"] == 0


def test_put_messages_and_async_puts_count_once(fresh_registry: Registry) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.memory import ChatSummaryMemoryBuffer

    memory = ChatSummaryMemoryBuffer.from_defaults(token_limit=1000)
    memexport.conversation(memory, "summary", registry=fresh_registry)
    memory.put_messages([ChatMessage(role="user", content=f"m{i}") for i in range(3)])
    asyncio.run(memory.aput(ChatMessage(role="assistant", content="a")))
    v = conv(fresh_registry, "summary")
    assert v["conversation_messages"] == 4 == v["conversation_messages_added_total"]


def test_sql_backed_memory_is_counted_not_queried(fresh_registry: Registry) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.memory import Memory

    memory = Memory.from_defaults(session_id="s1", token_limit=10_000)
    memexport.conversation(memory, "sql", registry=fresh_registry)
    memory.put(ChatMessage(role="user", content="hello"))
    memory.put_messages([ChatMessage(role="assistant", content="hi"),
                         ChatMessage(role="user", content="bye")])

    async def more() -> None:
        await memory.aput(ChatMessage(role="assistant", content="ciao"))

    asyncio.run(more())
    assert len(memory.get_all()) == 4
    v = conv(fresh_registry, "sql")
    assert v["conversation_messages"] == 4 == v["conversation_messages_added_total"]
    memory.reset()
    v = conv(fresh_registry, "sql")
    assert v["conversation_messages"] == 0 and v["conversation_messages_dropped_total"] == 4
