"""A real CrewAI crew on the fake LLM, instrumented with no configuration; writes what
memexport exports and the ground truth as JSON to SCRATCH/result.json (crewai prints to stdout
itself). Run by tests/test_integrations_crewai.py inside the venv that has crewai (its pins
conflict with the dev extra), with this checkout's src/ and tests/ on PYTHONPATH. Argument:
SCRATCH, a scratch directory (CrewAI's storage goes there too).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

SCRATCH = Path(sys.argv[1])
os.environ.update({
    "CREWAI_STORAGE_DIR": str(SCRATCH / "crewai"),
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "OTEL_SDK_DISABLED": "true",
    "OPENAI_API_KEY": "sk-fake",
})

from integration_support import series  # noqa: E402
from llm_server import FakeLLM  # noqa: E402

import memexport  # noqa: E402
from memexport.core.registry import Registry  # noqa: E402


class ScriptedLLM(FakeLLM):
    """Asked with tools: calls ``lookup`` (same input) twice, then answers; else ``reply``."""

    def __init__(self) -> None:
        super().__init__(reply="done")
        self.tool_turns = 0

    def chat_completion(self, model: str) -> dict[str, Any]:
        with self._lock:
            body = self.bodies[-1] if self.bodies else {}
            if body.get("tools"):
                self.tool_turns += 1
                turn = self.tool_turns
            else:
                turn = 0
        if turn and turn % 3:
            return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                    "model": model, "choices": [{"index": 0, "finish_reason": "tool_calls",
                                                 "message": {"role": "assistant", "content": None,
                                                             "tool_calls": [{
                        "id": f"call_{turn}", "type": "function", "function": {
                            "name": "lookup", "arguments": json.dumps({"query": "memory"})}}]}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
        return super().chat_completion(model)


def main() -> None:
    fake = ScriptedLLM().start()
    from crewai import LLM, Agent, Crew, Task
    from crewai.memory.unified_memory import Memory
    from crewai.tools import tool

    tool_runs: list[str] = []

    @tool("lookup")
    def lookup(query: str) -> str:
        """Look a query up."""
        tool_runs.append(query)
        return f"result for {query}"

    llm = LLM(model="openai/fake-model", base_url=fake.base_url, api_key="sk-fake")
    memory = Memory(llm=llm, storage=str(SCRATCH / "memory"), embedder={
        "provider": "openai", "config": {"api_key": "sk-fake", "api_base": fake.base_url,
                                         "model_name": "text-embedding-3-small"}})
    # One record before memexport sees the memory: counted once, at instrument time.
    memory.remember("the pool was exhausted at noon", scope="/incidents",
                    categories=["pools"], importance=0.5)
    agent = Agent(role="researcher", goal="find facts", backstory="careful", tools=[lookup],
                  llm=llm, max_iter=5)
    task = Task(description="Find facts about memory", expected_output="facts", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], cache=True, memory=memory)

    reg = Registry()
    handler = agent.cache_handler
    memexport.cache(handler, name="crew_tools", registry=reg)
    memexport.agent(agent, name="researcher", registry=reg)
    memexport.agent(crew, name="research_crew", registry=reg)
    memexport.agent(memory, name="crew_memory", registry=reg)

    result = crew.kickoff()
    memory.drain_writes()
    added = [memory.remember(f"fact {i}", scope="/facts", categories=["facts"],
                             importance=0.5) for i in range(3)]
    removed = memory.forget(record_ids=[added[0].id]) if added[0] is not None else 0
    memory.drain_writes()

    storage = memory._storage
    out = {
        "result": str(result),
        "tool_runs": len(tool_runs),
        "cache_entries": len(handler._cache),
        "records": int(storage.count()),
        "removed": removed,
        "requests": dict(fake.requests),
        "crewai": __import__("crewai").__version__,
        "cache": series(reg, "cache", "crew_tools"),
        "memory": series(reg, "agent", "crew_memory"),
        "agent": series(reg, "agent", "researcher"),
        "crew": series(reg, "agent", "research_crew"),
        "same_handler": crew.agents[0].cache_handler is handler,
    }
    del agent, crew, task
    gc.collect()
    out["after_gc"] = series(reg, "agent", "researcher")
    fake.stop()
    (SCRATCH / "result.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
