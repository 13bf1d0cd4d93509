"""Patched classes' cost on instances nobody tracks: once one instance of a class is tracked
(its class patched), another, untracked instance of it adds a message or stores a memory;
the baseline is the same call on a copy of the class that was never patched.

Target (issue 12): at most +10 ns per call. (A LangChain ``InMemoryChatMessageHistory`` is
tracked through its list: its class gets only ``clear`` replaced, never ``add_message``.)
"""

from __future__ import annotations

import warnings
from typing import Any

import memexport
from memexport.bench import compat
from memexport.bench.agents import MESSAGE, copy_class
from memexport.bench.model import Case, Entry, Skipped, delta_at_most

__all__ = ["cases"]

UNTRACKED = delta_at_most(10)


def _pair(label: str, bare: Any, untracked: Any, method: str, *args: Any,
          reset: Any = None) -> list[Entry]:
    def loop(obj: Any) -> Any:
        call = getattr(obj, method)

        def op(n: int) -> None:
            for _ in range(n):
                call(*args)
            if reset is not None:
                reset(obj)
        return op

    base = f"untracked: {label}, class never patched"
    return [Case(base, loop(bare)),
            Case(f"untracked: {label}, class patched for another instance", loop(untracked),
                 base, UNTRACKED)]


def cases(quick: bool) -> list[Entry]:
    reg = compat.new_registry()
    g = compat.guide()
    out: list[Entry] = []

    manager_bare, manager_patched = copy_class(g.MemoryEfficientConversationManager), copy_class(
        g.MemoryEfficientConversationManager)
    keep = [memexport.conversation(manager_patched(), name="bench_patched", registry=reg)]
    out += _pair("guide manager add_message", manager_bare(), manager_patched(), "add_message",
                 MESSAGE)

    agent_bare, agent_patched = copy_class(g.MemoryManagedAgent), copy_class(
        g.MemoryManagedAgent)
    keep.append(memexport.agent(agent_patched("tracked", 100), name="bench_patched_agent",
                                registry=reg))

    def clear(a: Any) -> None:
        a._memory_store.clear()

    out += _pair("guide agent store_memory", agent_bare("planner", 100),
                 agent_patched("planner", 100), "store_memory", "k", "v", reset=clear)
    try:
        from langchain_core.chat_history import InMemoryChatMessageHistory
        from langchain_core.messages import HumanMessage
    except ImportError:
        out.append(Skipped("untracked: LangChain InMemoryChatMessageHistory.add_message",
                           "needs langchain-core (not installed)"))
    else:
        class BareHistory(InMemoryChatMessageHistory):
            pass

        class PatchedHistory(InMemoryChatMessageHistory):
            pass

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keep.append(memexport.conversation(PatchedHistory(), name="bench_patched_lc",
                                               registry=reg))
            bare, untracked = BareHistory(), PatchedHistory()

        def trim(h: Any) -> None:
            if len(h.messages) > 100_000:
                h.messages.clear()

        out += _pair("LangChain InMemoryChatMessageHistory.add_message", bare, untracked,
                     "add_message", HumanMessage("What is the status of order 1234?"),
                     reset=trim)
    cases.keep = (reg, keep)  # type: ignore[attr-defined]  # tracked objects stay alive
    return out
