"""Agent-app cases: adding a message to a history, creating and freeing an agent.

Each instrumented case runs against its own copy of the class, so the uninstrumented baseline
never passes through memexport's wrapper; the classes are the guide's (``memexport.demo.guide``).
Targets (issue 5): at most +100 ns per message added; tracking an agent costs less than
creating it (at most 2.00x).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from memexport.bench import compat
from memexport.bench.model import Case, Entry, Skipped, delta_at_most, ratio_at_most

__all__ = ["cases", "copy_class"]

ADD = delta_at_most(100)


def copy_class(cls: type) -> type:
    """A separate class with the same methods: patching it leaves ``cls`` untouched."""
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    return type(cls.__name__, (), body)


MESSAGE = {"role": "user", "content": "What is the status of order 1234?", "timestamp": 1.0}


def _add_cases(label: str, bare: Any, tracked: Any) -> list[Case]:
    """Both managers summarise every 25 adds into a list that only grows: it is emptied
    after each timed run, so neither run pays for a heap grown by the other's summaries."""
    def run_bare(n: int) -> None:
        add = bare.add_message
        m = MESSAGE
        for _ in range(n):
            add(m)
        bare.summaries.clear()

    def run_tracked(n: int) -> None:
        add = tracked.add_message
        m = MESSAGE
        for _ in range(n):
            add(m)
        tracked.summaries.clear()

    base = f"message: {label}, uninstrumented"
    return [Case(base, run_bare),
            Case(f"message: {label}, memexport.conversation", run_tracked, base, ADD)]


def _conversation_cases(reg: Any) -> list[Entry]:
    import memexport

    manager = compat.guide().MemoryEfficientConversationManager
    bare_cls = copy_class(manager)
    tracked_cls = copy_class(manager)
    adds = _add_cases("guide manager add_message", bare_cls(),
                     memexport.conversation(tracked_cls(), name="bench_guide", registry=reg))

    plain: deque[Any] = deque(maxlen=100)
    tracked: Any = memexport.conversation(deque(maxlen=100), name="bench_deque", registry=reg)

    def deque_bare(n: int) -> None:
        append = plain.append
        m = MESSAGE
        for _ in range(n):
            append(m)

    def deque_tracked(n: int) -> None:
        append = tracked.append
        m = MESSAGE
        for _ in range(n):
            append(m)

    base = "message: deque(maxlen=100).append, uninstrumented"
    out: list[Entry] = [*adds, Case(base, deque_bare), Case(
        "message: deque(maxlen=100).append, memexport.conversation", deque_tracked, base, ADD)]
    try:
        import warnings

        from langchain_core.chat_history import InMemoryChatMessageHistory
        from langchain_core.messages import HumanMessage
    except ImportError:
        return [*out, Skipped("message: LangChain InMemoryChatMessageHistory.add_message",
                              "needs langchain-core (not installed)")]

    class BareHistory(InMemoryChatMessageHistory):  # the same class's add_message on both
        pass

    class TrackedHistory(InMemoryChatMessageHistory):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc_bare, lc_tracked = BareHistory(), TrackedHistory()
    memexport.conversation(lc_tracked, name="bench_langchain", registry=reg)
    msg = HumanMessage("What is the status of order 1234?")

    def lc_run(h: Any) -> Any:
        def run(n: int) -> None:
            add = h.add_message
            for _ in range(n):
                add(msg)
            if len(h.messages) > 100_000:
                h.messages.clear()
        return run

    base = "message: LangChain InMemoryChatMessageHistory.add_message, uninstrumented"
    out += [Case(base, lc_run(lc_bare)),
            Case("message: LangChain InMemoryChatMessageHistory.add_message, "
                 "memexport.conversation", lc_run(lc_tracked), base, ADD)]
    return out


def _agent_cases(reg: Any) -> list[Entry]:
    import memexport

    agent_cls = compat.guide().MemoryManagedAgent
    bare_cls = copy_class(agent_cls)
    tracked_cls = memexport.agent(copy_class(agent_cls), name="bench_agent", registry=reg)
    instance_cls = copy_class(agent_cls)
    track = memexport.agent

    def create(cls: type) -> Any:
        def run(n: int) -> None:
            for _ in range(n):
                a = cls("planner", 100)
                del a  # finalized right here: refcount drops to zero
        return run

    def create_tracked_instance(n: int) -> None:
        for _ in range(n):
            a = track(instance_cls("planner", 100), name="bench_agent_obj", registry=reg)
            del a

    base = "agent: create + free MemoryManagedAgent, uninstrumented"
    return [Case(base, create(bare_cls)),
            Case("agent: create + free MemoryManagedAgent, @memexport.agent", create(tracked_cls),
                 base, ratio_at_most(2.0)),
            Case("agent: create + free MemoryManagedAgent, memexport.agent(obj)",
                 create_tracked_instance, base)]


def _session_cases(reg: Any) -> list[Entry]:
    """A conversation object per session: what tracking one costs (no target)."""
    import memexport

    manager = compat.guide().MemoryEfficientConversationManager
    bare_cls = copy_class(manager)
    tracked_cls = copy_class(manager)
    track = memexport.conversation

    def bare(n: int) -> None:
        for _ in range(n):
            m = bare_cls()
            del m

    def tracked(n: int) -> None:
        for _ in range(n):
            m = track(tracked_cls(), name="bench_sessions", registry=reg)
            del m

    base = "conversation: create + free guide manager, uninstrumented"
    return [Case(base, bare),
            Case("conversation: create + free guide manager, memexport.conversation(obj)",
                 tracked, base)]


def cases(quick: bool) -> list[Entry]:
    reg = compat.new_registry()  # private: the bench's components never reach an app's /metrics
    out = _conversation_cases(reg) + _session_cases(reg) + _agent_cases(reg)
    # Tracked objects hold their registry weakly: keep it alive while the cases run.
    cases.registry = reg  # type: ignore[attr-defined]
    return out
