"""Agent-app cases: adding a message to a history, creating and freeing an agent.

Each instrumented case runs against its own copy of the class, so the uninstrumented baseline
never passes through memexport's wrapper. The guide's classes are copied here faithfully (the
package must not import the seed at run time); tests use them too when the seed is absent.
Targets (issue 5): at most +100 ns per message added; tracking an agent costs less than
creating it.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from memexport.bench import Case
from memexport.core.registry import Registry

__all__ = ["AutomaticMemoryManager", "MemoryEfficientConversationManager",
           "MemoryManagedAgent", "cases"]


# -- faithful copies of the guide's classes (bugs included) ------------------------------------


class MemoryEfficientConversationManager:
    def __init__(self, max_history_length: int = 100, summary_threshold: int = 50):
        self.max_history_length = max_history_length
        self.summary_threshold = summary_threshold
        self.conversation_history: deque[dict[str, Any]] = deque(maxlen=max_history_length)
        self.summaries: list[dict[str, Any]] = []

    def add_message(self, message: dict[str, Any]) -> None:
        """Add a message to conversation history with automatic cleanup"""
        self.conversation_history.append(message)
        if len(self.conversation_history) >= self.summary_threshold:
            self._create_summary()

    def _create_summary(self) -> None:
        """Create a summary of older messages"""
        messages_to_summarize = list(self.conversation_history)[: self.summary_threshold // 2]
        summary = {
            "type": "summary",
            "message_count": len(messages_to_summarize),
            "timestamp": messages_to_summarize[0]["timestamp"],
            "key_points": self._extract_key_points(messages_to_summarize),
        }
        self.summaries.append(summary)
        for _ in range(len(messages_to_summarize)):
            self.conversation_history.popleft()

    def _extract_key_points(self, messages: list[dict[str, Any]]) -> list[str]:
        return [msg.get("content", "")[:50] + "..." for msg in messages[-3:]]

    def get_context(self, last_n: int = 10) -> list[dict[str, Any]]:
        context: list[dict[str, Any]] = []
        if self.summaries:
            context.extend(self.summaries[-2:])
        context.extend(list(self.conversation_history)[-last_n:])
        return context

    def cleanup(self) -> None:
        self.conversation_history.clear()
        self.summaries.clear()


class MemoryManagedAgent:
    def __init__(self, name: str, memory_limit_mb: int = 100):
        self.name = name
        self.memory_limit_mb = memory_limit_mb
        self.created_at = datetime.now()
        self.last_cleanup = datetime.now()
        self._memory_store: dict[str, Any] = {}
        self._weak_refs: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    def store_memory(self, key: str, value: Any, weak: bool = False) -> None:
        if weak:
            self._weak_refs[key] = value
        else:
            self._memory_store[key] = value
        if self._estimate_memory_usage() > self.memory_limit_mb:
            self._cleanup_old_memories()

    def _estimate_memory_usage(self) -> float:
        total_size = 0
        for obj in self._memory_store.values():
            total_size += sys.getsizeof(obj)
        return total_size / (1024 * 1024)

    def _cleanup_old_memories(self) -> None:
        if hasattr(self, "memory_importance"):
            sorted_keys = sorted(self._memory_store.keys(),
                                 key=lambda k: self.memory_importance.get(k, 0))
        else:
            sorted_keys = list(self._memory_store.keys())
        remove_count = len(sorted_keys) // 5
        for key in sorted_keys[:remove_count]:
            del self._memory_store[key]
        gc.collect()
        self.last_cleanup = datetime.now()

    def periodic_cleanup(self) -> None:
        if datetime.now() - self.last_cleanup > timedelta(minutes=30):
            self._cleanup_old_memories()
            gc.collect()


class AutomaticMemoryManager:
    """As in the guide, minus the ``schedule`` loop (the guide never runs it)."""

    def __init__(self) -> None:
        self.cleanup_callbacks: list[Any] = []
        self.last_gc_stats: dict[str, Any] | None = None

    def register_cleanup(self, callback: Any) -> None:
        self.cleanup_callbacks.append(callback)

    def aggressive_cleanup(self) -> dict[str, Any]:
        for callback in self.cleanup_callbacks:
            try:
                callback()
            except Exception as e:
                print(f"Cleanup callback failed: {e}")
        gc.collect(2)
        self.last_gc_stats = {"collected": sum(gc.get_count()), "uncollectable": len(gc.garbage),
                              "timestamp": datetime.now()}
        return self.last_gc_stats


# -- cases --------------------------------------------------------------------------------------


def _copy(cls: type) -> type:
    """A separate class with the same methods: patching it leaves ``cls`` untouched."""
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    return type(cls.__name__, (), body)


MESSAGE = {"role": "user", "content": "What is the status of order 1234?", "timestamp": 1.0}


def _add_cases(label: str, bare: Any, tracked: Any) -> list[Case]:
    def run_bare(n: int) -> None:
        add = bare.add_message
        m = MESSAGE
        for _ in range(n):
            add(m)

    def run_tracked(n: int) -> None:
        add = tracked.add_message
        m = MESSAGE
        for _ in range(n):
            add(m)

    base = f"message: {label}, uninstrumented"
    return [Case(base, run_bare),
            Case(f"message: {label}, memexport.conversation", run_tracked, base,
                 target="<= +100 ns")]


def _conversation_cases(reg: Registry) -> list[Case]:
    import memexport

    bare_cls = _copy(MemoryEfficientConversationManager)
    tracked_cls = _copy(MemoryEfficientConversationManager)
    out = _add_cases("guide manager add_message", bare_cls(),
                     memexport.conversation(tracked_cls(), name="bench_guide", registry=reg))

    plain: deque[object] = deque(maxlen=100)
    tracked: deque[object] = memexport.conversation(deque(maxlen=100), name="bench_deque",
                                                    registry=reg)

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
    out += [Case(base, deque_bare),
            Case("message: deque(maxlen=100).append, memexport.conversation", deque_tracked,
                 base, target="<= +100 ns")]
    try:
        import warnings

        from langchain_core.chat_history import InMemoryChatMessageHistory
        from langchain_core.messages import HumanMessage
    except ImportError:
        return out

    class BareHistory(InMemoryChatMessageHistory):
        def add_message(self, message: Any) -> None:
            self.messages.append(message)

    class TrackedHistory(InMemoryChatMessageHistory):
        def add_message(self, message: Any) -> None:
            self.messages.append(message)

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
                 "memexport.kinds.conversation", lc_run(lc_tracked), base, target="<= +100 ns")]
    return out


def _agent_cases(reg: Registry) -> list[Case]:
    import memexport

    bare_cls = _copy(MemoryManagedAgent)
    tracked_cls = memexport.agent(_copy(MemoryManagedAgent), name="bench_agent", registry=reg)
    instance_cls = _copy(MemoryManagedAgent)
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
                 base, target="tracking < creating (< 2.00x)"),
            Case("agent: create + free MemoryManagedAgent, memexport.agent(obj)",
                 create_tracked_instance, base)]


def _session_cases(reg: Registry) -> list[Case]:
    """A conversation object per session: what tracking one costs (no target)."""
    import memexport

    bare_cls = _copy(MemoryEfficientConversationManager)
    tracked_cls = _copy(MemoryEfficientConversationManager)
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


def cases(quick: bool) -> list[Case]:
    reg = Registry()  # private: the bench's components never reach an app's /metrics
    out = _conversation_cases(reg) + _session_cases(reg) + _agent_cases(reg)
    # Tracked objects hold their registry weakly: keep it alive while the cases run.
    cases.registry = reg  # type: ignore[attr-defined]
    return out
