"""mem0 (mem0ai) local memory for real, fully local: the open-source ``Memory`` with its OpenAI
LLM and embedder pointed at the loopback fake LLM (tests/llm_server.py: 8-dimension
embeddings), a local Qdrant (qdrant-client's embedded mode) and a SQLite history file; no
network, no API key, no model weights. Memories are counted at the vector store."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import series
from llm_server import EMBEDDING_DIMS, FakeLLM, fake_llm

import memexport
from memexport.core.registry import Registry

os.environ.setdefault("MEM0_TELEMETRY", "False")  # read when mem0 is imported: no PostHog
pytest.importorskip("mem0")


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with fake_llm('{"facts": []}') as server:
        yield server


def config(llm: FakeLLM, tmp_path: Path, collection: str = "mem") -> dict[str, Any]:
    openai = {"api_key": "sk-test", "openai_base_url": llm.base_url}
    return {
        "llm": {"provider": "openai", "config": {"model": "fake-model", **openai}},
        "embedder": {"provider": "openai", "config": {"model": "fake-embed",
                                                      "embedding_dims": EMBEDDING_DIMS,
                                                      **openai}},
        "vector_store": {"provider": "qdrant", "config": {
            "collection_name": collection, "embedding_model_dims": EMBEDDING_DIMS,
            "path": str(tmp_path / "qdrant"), "on_disk": True}},
        "history_db_path": str(tmp_path / "history.db"),
    }


def test_memories_counted_at_the_vector_store(llm: FakeLLM, fresh_registry: Registry,
                                              tmp_path: Path) -> None:
    from mem0 import Memory

    memory = Memory.from_config(config(llm, tmp_path))
    assert memexport.agent(memory, "user-memory", registry=fresh_registry) is memory
    first = memory.add("I like green tea", user_id="u1", infer=False)
    memory.add([{"role": "user", "content": "I live in Lyon"},
                {"role": "user", "content": "I work nights"}], user_id="u1", infer=False)
    assert llm.total("/embeddings") >= 3
    stored = memory.get_all(filters={"user_id": "u1"})["results"]
    v = series(fresh_registry, "agent", "user-memory")
    assert v["agent_memory_items"] == len(stored) == 3
    memory.delete(first["results"][0]["id"])
    assert series(fresh_registry, "agent", "user-memory")["agent_memory_items"] == 2
    if _takes_filters(memory):
        memory.delete_all(filters={"user_id": "u1"})
    else:
        memory.delete_all(user_id="u1")
    assert series(fresh_registry, "agent", "user-memory")["agent_memory_items"] == 0


def _takes_filters(memory: Any) -> bool:
    import inspect

    return "filters" in inspect.signature(memory.delete_all).parameters


def test_count_starts_from_the_stored_memories(llm: FakeLLM, fresh_registry: Registry,
                                               tmp_path: Path) -> None:
    from mem0 import Memory

    cfg = config(llm, tmp_path, "again")
    before = Memory.from_config(cfg)
    before.add("remembered", user_id="u2", infer=False)
    before.vector_store.client.close()
    del before
    gc.collect()
    memory = Memory.from_config(cfg)
    memexport.agent(memory, "reopened", registry=fresh_registry)
    assert series(fresh_registry, "agent", "reopened")["agent_memory_items"] == 1
