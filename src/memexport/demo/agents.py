"""Demo parts for agent apps: chat sessions that start and end, agents per task, cleanup jobs.

``healthy``: sessions end after a few turns, task agents are freed, histories stay bounded.
``leak``: sessions never end and their histories keep growing, task agents are kept alive,
and one cleanup job fails. Public API only; LangChain and LangGraph only if importable.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections import deque
from datetime import datetime
from typing import Any

import memexport
from memexport.demo.app import Part

#: Turns a healthy session lasts; sessions started per tick.
SESSION_TURNS = 8
SESSIONS_PER_TICK = 2


class SupportManager:
    """A conversation manager like the guide's: a bounded deque plus summaries."""

    def __init__(self, max_history_length: int = 100, summary_threshold: int = 50) -> None:
        self.summary_threshold = summary_threshold
        self.conversation_history: deque[dict[str, Any]] = deque(maxlen=max_history_length)
        self.summaries: list[dict[str, Any]] = []

    def add_message(self, message: dict[str, Any]) -> None:
        self.conversation_history.append(message)
        if len(self.conversation_history) >= self.summary_threshold:
            self._create_summary()

    def _create_summary(self) -> None:
        n = self.summary_threshold // 2
        taken = [self.conversation_history.popleft() for _ in range(n)]
        self.summaries.append({"type": "summary", "message_count": len(taken)})


class Conversations:
    """Support sessions (guide-style managers), a chat window deque, LangChain and LangGraph."""

    def __init__(self, leak: bool) -> None:
        self.leak = leak
        self.sessions: list[tuple[SupportManager, int]] = []
        # A chat window whose maxlen drops messages that were never summarised (in leak).
        self.window: deque[Any] = memexport.conversation(deque(maxlen=20), name="chat_window")
        self.lc: Any = None
        self.lc_cls: Any = None
        self.graph: Any = None
        self.saver: Any
        try:  # the saver now (its gauges read 0 until the graph runs), the graph later
            from langgraph.checkpoint.memory import InMemorySaver

            self.saver = memexport.conversation(InMemorySaver(), name="graph_threads")
        except ImportError:
            self.saver = None
        # LangChain and LangGraph's graph take seconds to import: load them off start-up.
        threading.Thread(target=self._load_libraries, name="demo-agent-libs",
                         daemon=True).start()

    def _load_libraries(self) -> None:
        try:
            import warnings

            from langchain_core.chat_history import InMemoryChatMessageHistory
            from langchain_core.messages import HumanMessage

            self.lc_cls = InMemoryChatMessageHistory
            self.human = HumanMessage
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.lc = memexport.conversation(InMemoryChatMessageHistory(),
                                                 name="langchain_sessions")
        except ImportError:
            pass
        try:
            if self.saver is not None:
                self._build_graph()
        except ImportError:
            pass

    def _build_graph(self) -> None:
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        class State(TypedDict):
            turns: int

        def step(state: State) -> State:
            return {"turns": state["turns"] + 1}

        builder = StateGraph(State)
        builder.add_node("step", step)
        builder.add_edge(START, "step")
        builder.add_edge("step", END)
        self.graph = builder.compile(checkpointer=self.saver)

    def step(self, tick: int) -> None:
        for _ in range(SESSIONS_PER_TICK if tick % 2 == 0 else 0):
            # In leak, nothing bounds a history: no maxlen reached, no summary made.
            manager = (SupportManager(10_000, 10_000) if self.leak
                       else SupportManager(100, 20))
            memexport.conversation(manager, name="support")
            self.sessions.append((manager, tick))
        for manager, _started in self.sessions:
            for turn in range(3):
                manager.add_message({"role": "user", "content": f"turn {tick}.{turn}",
                                     "timestamp": float(tick)})
        if not self.leak:  # sessions end: their objects go, their counts stay
            self.sessions = [(m, t) for m, t in self.sessions if tick - t < SESSION_TURNS]
        if not self.leak and tick % 3 == 0:
            self.window.clear()  # healthy: the window is reset before its maxlen drops anything
        for i in range(5):
            self.window.append({"content": f"window {tick}.{i}"})
        if self.lc is not None:
            self.lc.add_message(self.human(f"question {tick}"))
            if not self.leak and len(self.lc.messages) > 50:
                self.lc.clear()
        if self.graph is not None:
            thread = f"t{tick % 4}" if not self.leak else f"t{tick}"
            self.graph.invoke({"turns": 0}, {"configurable": {"thread_id": thread}})
            if not self.leak and tick % 4 == 3:
                for t in range(4):
                    self.saver.delete_thread(f"t{t}")


class Worker:
    """An agent with a memory store (a dict), a limit and weak references, like the guide's."""

    def __init__(self, task: int) -> None:
        self.task = task
        self.memory_limit_mb = 1
        self.last_cleanup = datetime.now()
        self._memory_store: dict[str, Any] = {}
        self._weak_refs: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    def work(self) -> None:
        for i in range(4):
            self._memory_store[f"step{i}"] = "observation " * 20

    def _cleanup_old_memories(self) -> None:
        for key in list(self._memory_store)[: max(1, len(self._memory_store) // 5)]:
            del self._memory_store[key]
        self.last_cleanup = datetime.now()


@memexport.agent(name="task_worker")
class TaskWorker(Worker):
    """An agent created per task: every instance is tracked."""


class _Note:
    """A weakly-referenced scratch note."""

    def __init__(self, text: str) -> None:
        self.text = text


class Agents:
    """Task agents (freed after their task, or kept in ``leak``) and a long-lived planner."""

    def __init__(self, leak: bool) -> None:
        self.leak = leak
        self.kept: list[TaskWorker] = []
        self.planner = memexport.agent(Worker(-1), name="planner")
        self.notes = [_Note(f"note {i}") for i in range(3)]
        for i, note in enumerate(self.notes):
            self.planner._weak_refs[f"note{i}"] = note

    def step(self, tick: int) -> None:
        for i in range(3):
            worker = TaskWorker(tick * 3 + i)
            worker.work()
            if self.leak:
                self.kept.append(worker)
        self.planner._memory_store[f"plan{tick}"] = "step " * (50 if self.leak else 5)
        if not self.leak and tick % 5 == 0:
            self.planner._cleanup_old_memories()
        if self.leak and tick % 10 == 0:
            self.planner._cleanup_old_memories()  # runs, but cannot keep up


class Cleanups:
    """A periodic cleanup job (period exported) and, in ``leak``, one that keeps failing."""

    def __init__(self, leak: bool, conversations: Conversations) -> None:
        self.leak = leak
        self.conversations = conversations

        @memexport.cleanup(name="trim_histories", period=60, tracked=True)
        def trim_histories() -> None:
            if self.leak:
                return  # the job runs and succeeds, but trims nothing: histories keep growing
            for manager, _ in self.conversations.sessions:
                while len(manager.conversation_history) > 30:
                    manager.conversation_history.popleft()
            gc.collect()

        @memexport.cleanup(name="flush_tool_cache", period=30)
        def flush_tool_cache() -> None:
            if self.leak:
                raise ConnectionError("tool cache backend unreachable")

        self.trim_histories = trim_histories
        self.flush_tool_cache = flush_tool_cache

    def step(self, tick: int) -> None:
        if tick % 10 == 0:
            self.trim_histories()
        if tick % 5 == 0:
            try:
                self.flush_tool_cache()
            except ConnectionError:
                pass  # the app logs and goes on, as the guide's AutomaticMemoryManager does


def parts(scenario: str) -> list[Part]:
    leak = scenario == "leak"
    conversations = Conversations(leak)
    agents = Agents(leak)
    # Budgets next to the bytes they bound (the kinds exist once something is tracked).
    memexport.budget(4 * 2**20, kind="conversation", name="support")
    memexport.budget(2**20, kind="agent", name="planner")
    return [conversations, agents, Cleanups(leak, conversations)]
