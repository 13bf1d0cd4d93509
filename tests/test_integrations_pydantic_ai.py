"""pydantic-ai for real: an ``Agent`` on ``OpenAIChatModel`` talking to the loopback fake LLM;
its message history kept as a list, as a ``Conversation`` and in an
``InMemoryConversationStore``, each read as a conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from integration_support import series
from llm_server import FakeLLM, fake_llm

import memexport
from memexport.core.registry import Registry

pydantic_ai = pytest.importorskip("pydantic_ai")


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with fake_llm("pong") as server:
        yield server


def make_agent(llm: FakeLLM) -> object:
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("fake-model", provider=OpenAIProvider(base_url=llm.base_url,
                                                                  api_key="sk-test"))
    return pydantic_ai.Agent(model, instructions="Answer briefly.")


def conv(reg: Registry, name: str) -> dict[str, float]:
    return series(reg, "conversation", name)


def test_message_history_list(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = make_agent(llm)
    history = memexport.conversation([], "chat", registry=fresh_registry)
    for prompt in ("ping", "again"):
        result = agent.run_sync(prompt, message_history=list(history))
        assert result.output == "pong"
        history.extend(result.new_messages())
    v = conv(fresh_registry, "chat")
    assert v["conversation_messages"] == len(history) == 4
    assert v["conversation_messages_added_total"] == 4
    assert llm.total("/chat/completions") == 2


def test_conversation_object(llm: FakeLLM, fresh_registry: Registry) -> None:
    agent = make_agent(llm)
    result = agent.run_sync("ping")
    conversation = result.conversation
    memexport.conversation(conversation, "carried", registry=fresh_registry)
    assert conv(fresh_registry, "carried")["conversation_messages"] == len(
        conversation.messages) == 2


def test_in_memory_conversation_store(llm: FakeLLM, fresh_registry: Registry) -> None:
    from pydantic_ai.conversation_store import InMemoryConversationStore

    agent = make_agent(llm)
    store = memexport.conversation(InMemoryConversationStore(), "stored",
                                   registry=fresh_registry)

    async def chat() -> None:
        first = await agent.run("ping")
        await store.save(first)
        loaded = await store.load(first.conversation_id)
        second = await agent.run("again", conversation=loaded)
        await store.save(second)

    asyncio.run(chat())
    v = conv(fresh_registry, "stored")
    assert v["conversation_messages"] == 4
    assert v["conversations"] == 1
