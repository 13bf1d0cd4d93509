"""Conversations: exact values after scripted sessions for every supported kind of history."""

from __future__ import annotations

import asyncio
import gc
import sys
import uuid
import warnings
from collections import deque
from typing import Any

import pytest
from helpers import exposition, guide, samples
from prometheus_client.parser import text_string_to_metric_families

import memexport
from memexport.core.registry import Registry
from memexport.core.sizing import deep_size_many


def scrape_text(reg: Registry) -> str:
    return exposition(reg)


def conv(s: dict[Any, float], metric: str, name: str) -> float | None:
    return s.get((metric, (("conversation", name),)))


def expected_bytes(*containers: Any) -> int:
    """What the sampler computes for small histories: every entry once, plus the containers."""
    seen: set[int] = set()
    total = sum(deep_size_many((e,), seen) for c in containers for e in c)
    return total + sum(sys.getsizeof(c) for c in containers)


def message(i: int, content: str = "hello") -> dict[str, Any]:
    return {"role": "user", "content": f"{content} {i}", "timestamp": 1_700_000_000.0 + i}


def test_guide_manager_scripted_session_exact_values() -> None:
    reg = Registry()
    history = memexport.conversation(guide.MemoryEfficientConversationManager(),
                                     name="support", registry=reg)
    for i in range(120):
        history.add_message(message(i))
    # Summaries at the 50th, 75th and 100th message, each taking the 25 oldest.
    assert len(history.summaries) == 3 and len(history.conversation_history) == 45
    s = samples(reg)
    assert conv(s, "memexport_conversations", "support") == 1
    assert conv(s, "memexport_conversation_messages", "support") == 45
    assert conv(s, "memexport_conversation_largest_messages", "support") == 45
    assert conv(s, "memexport_conversation_summaries", "support") == 3
    assert conv(s, "memexport_conversation_messages_added_total", "support") == 120
    assert conv(s, "memexport_conversation_messages_summarized_total", "support") == 75
    assert conv(s, "memexport_conversation_messages_dropped_total", "support") == 0
    assert conv(s, "memexport_conversation_bytes", "support") == expected_bytes(
        history.conversation_history, history.summaries)


def test_guide_failing_cleanup_test_expressed_through_metrics() -> None:
    """The guide's test_conversation_manager_cleanup asserts summaries were made; with
    max_history_length=10 below summary_threshold=50 none is, and the deque silently drops
    the 10 oldest messages. memexport shows exactly that."""
    reg = Registry()
    manager = memexport.conversation(
        guide.MemoryEfficientConversationManager(max_history_length=10), name="guide",
        registry=reg)
    for i in range(20):
        manager.add_message(message(i))
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages", "guide") == 10  # its first assertion
    assert conv(s, "memexport_conversation_summaries", "guide") == 0  # why its second fails
    assert conv(s, "memexport_conversation_messages_dropped_total", "guide") == 10
    assert conv(s, "memexport_conversation_messages_summarized_total", "guide") == 0
    assert conv(s, "memexport_conversation_messages_added_total", "guide") == 20


def test_untracked_instances_of_a_patched_class_behave_as_before() -> None:
    reg = Registry()
    memexport.conversation(guide.MemoryEfficientConversationManager(), name="p", registry=reg)
    plain = guide.MemoryEfficientConversationManager(max_history_length=10,
                                                     summary_threshold=4)
    for i in range(9):
        plain.add_message(message(i))
    assert [m["content"] for m in plain.conversation_history] == ["hello 6", "hello 7",
                                                                  "hello 8"]
    assert [x["message_count"] for x in plain.summaries] == [2, 2, 2]
    assert conv(samples(reg), "memexport_conversation_messages_added_total", "p") == 0


def test_sessions_share_a_name_and_a_dropped_session_keeps_its_counts() -> None:
    reg = Registry()
    sessions = [memexport.conversation(guide.MemoryEfficientConversationManager(10, 50),
                                       name="chat", registry=reg) for _ in range(3)]
    for n, session in zip((3, 12, 7), sessions, strict=True):
        for i in range(n):
            session.add_message(message(i))
    del session
    s = samples(reg)
    assert conv(s, "memexport_conversations", "chat") == 3
    assert conv(s, "memexport_conversation_messages", "chat") == 3 + 10 + 7
    assert conv(s, "memexport_conversation_largest_messages", "chat") == 10
    assert conv(s, "memexport_conversation_messages_added_total", "chat") == 22
    assert conv(s, "memexport_conversation_messages_dropped_total", "chat") == 2
    del sessions[1]
    gc.collect()
    s = samples(reg)
    assert conv(s, "memexport_conversations", "chat") == 2
    assert conv(s, "memexport_conversation_messages", "chat") == 10
    assert conv(s, "memexport_conversation_largest_messages", "chat") == 7
    assert conv(s, "memexport_conversation_messages_added_total", "chat") == 22
    assert conv(s, "memexport_conversation_messages_dropped_total", "chat") == 2
    assert conv(s, "memexport_conversations_created_total", "chat") == 3
    assert conv(s, "memexport_conversations_finalized_total", "chat") == 1
    # Series are per name: no session id, no per-object label anywhere.
    assert all(dict(labels).keys() <= {"conversation"} for (m, labels) in s
               if m.startswith("memexport_conversation"))
    sessions.clear()
    gc.collect()
    s = samples(reg)
    assert conv(s, "memexport_conversations", "chat") == 0
    assert conv(s, "memexport_conversation_messages", "chat") is None
    assert conv(s, "memexport_conversation_messages_added_total", "chat") == 22


def test_class_decorator_tracks_every_instance() -> None:
    reg = Registry()

    @memexport.conversation(name="decorated", registry=reg)
    class Manager(guide.MemoryEfficientConversationManager):
        pass

    a, b = Manager(5, 50), Manager(100, 50)
    for i in range(8):
        a.add_message(message(i))
        b.add_message(message(i))
    s = samples(reg)
    assert conv(s, "memexport_conversations", "decorated") == 2
    assert conv(s, "memexport_conversation_messages", "decorated") == 5 + 8
    assert conv(s, "memexport_conversation_messages_dropped_total", "decorated") == 3
    assert conv(s, "memexport_conversation_messages_added_total", "decorated") == 16


def test_plain_deque_and_list_histories() -> None:
    reg = Registry()
    d = memexport.conversation(deque([message(0)], maxlen=4), name="dq", registry=reg)
    assert isinstance(d, deque) and d.maxlen == 4 and len(d) == 1
    for i in range(1, 6):
        d.append(message(i))
    d.extend([message(6), message(7)])
    lst = memexport.conversation([], name="ls", registry=reg)
    lst.append(message(0))
    lst.extend(message(i) for i in range(1, 4))
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages", "dq") == 4
    assert conv(s, "memexport_conversation_messages_added_total", "dq") == 7
    assert conv(s, "memexport_conversation_messages_dropped_total", "dq") == 4
    assert conv(s, "memexport_conversation_bytes", "dq") == expected_bytes(d)
    assert conv(s, "memexport_conversation_messages", "ls") == 4
    assert conv(s, "memexport_conversation_messages_added_total", "ls") == 4
    assert conv(s, "memexport_conversation_messages_dropped_total", "ls") == 0


def test_bytes_follow_the_history_through_the_sizer_job() -> None:
    reg = Registry()
    history = memexport.conversation(guide.MemoryEfficientConversationManager(1000, 2000),
                                     name="grow", registry=reg)
    history.add_message(message(0))
    first = conv(samples(reg), "memexport_conversation_bytes", "grow")
    assert first == expected_bytes(history.conversation_history, history.summaries)
    for i in range(1, 200):
        history.add_message(message(i, "x" * 200))
    reg.run_tick_jobs(budget_seconds=5.0)  # what the collector thread does on each tick
    assert conv(samples(reg), "memexport_conversation_bytes", "grow") == expected_bytes(
        history.conversation_history, history.summaries)


def _langchain_history() -> Any:
    from langchain_core.chat_history import InMemoryChatMessageHistory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in langchain-core 1.x, still shipped
        return InMemoryChatMessageHistory()


def test_langchain_in_memory_history() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    reg = Registry()
    h = memexport.conversation(_langchain_history(), name="lc", registry=reg)
    h.add_user_message("hi")
    h.add_ai_message("hello")
    h.add_messages([HumanMessage("a"), AIMessage("b"), HumanMessage("c")])
    asyncio.run(h.aadd_messages([AIMessage("d")]))
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages", "lc") == 6
    assert conv(s, "memexport_conversation_messages_added_total", "lc") == 6
    assert conv(s, "memexport_conversation_bytes", "lc") == expected_bytes(h.messages)
    h.clear()
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages", "lc") == 0
    assert conv(s, "memexport_conversation_messages_added_total", "lc") == 6


def test_langchain_custom_history_counts_adds_without_reading_messages() -> None:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import HumanMessage

    class RemoteHistory(BaseChatMessageHistory):
        """Stands in for a database-backed history: reading ``messages`` is a query."""

        def __init__(self) -> None:
            self.stored: list[Any] = []
            self.queries = 0

        @property
        def messages(self) -> list[Any]:  # type: ignore[override]
            self.queries += 1
            return list(self.stored)

        def add_messages(self, messages: Any) -> None:
            self.stored.extend(messages)

        def clear(self) -> None:
            self.stored = []

    reg = Registry()
    h = memexport.conversation(RemoteHistory(), name="remote", registry=reg)
    h.add_messages([HumanMessage("a"), HumanMessage("b")])
    h.add_user_message("c")
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages_added_total", "remote") == 3
    assert conv(s, "memexport_conversation_messages", "remote") is None
    assert h.queries == 0


def test_autogen_contexts_show_what_the_buffer_hides() -> None:
    from autogen_core.model_context import (
        BufferedChatCompletionContext,
        UnboundedChatCompletionContext,
    )
    from autogen_core.models import AssistantMessage, UserMessage

    reg = Registry()
    buffered = memexport.conversation(BufferedChatCompletionContext(buffer_size=5),
                                      name="ag", registry=reg)
    unbounded = memexport.conversation(UnboundedChatCompletionContext(), name="ag",
                                       registry=reg)

    async def session() -> int:
        for i in range(30):
            await buffered.add_message(UserMessage(content=f"q{i}", source="user"))
            await unbounded.add_message(AssistantMessage(content=f"a{i}", source="bot"))
        return len(await buffered.get_messages())

    assert asyncio.run(session()) == 5  # the window the model sees
    s = samples(reg)
    assert conv(s, "memexport_conversations", "ag") == 2
    assert conv(s, "memexport_conversation_messages", "ag") == 60  # what memory holds
    assert conv(s, "memexport_conversation_largest_messages", "ag") == 30
    assert conv(s, "memexport_conversation_messages_added_total", "ag") == 60
    assert conv(s, "memexport_conversation_bytes", "ag") == (
        expected_bytes(buffered._messages) + expected_bytes(unbounded._messages))


def test_langgraph_in_memory_saver() -> None:
    from typing import TypedDict

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        messages: list[str]

    def reply(state: State) -> State:
        return {"messages": [*state["messages"], "reply"]}

    reg = Registry()
    saver = memexport.conversation(InMemorySaver(), name="graph", registry=reg)
    builder = StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    graph = builder.compile(checkpointer=saver)
    for thread in ("t1", "t2"):
        for turn in range(3):
            graph.invoke({"messages": [f"hi {turn}"]},
                         {"configurable": {"thread_id": thread}})
    checkpoints = sum(len(ns) for t in saver.storage.values() for ns in t.values())
    writes = sum(len(w) for w in saver.writes.values())
    assert checkpoints > 0
    s = samples(reg)
    assert conv(s, "memexport_conversations", "graph") == 1
    assert conv(s, "memexport_conversation_threads", "graph") == 2
    assert conv(s, "memexport_conversation_checkpoints", "graph") == checkpoints
    assert conv(s, "memexport_conversation_checkpoint_writes", "graph") == writes
    seen: set[int] = set()
    assert conv(s, "memexport_conversation_bytes", "graph") == sum(
        deep_size_many((c,), seen) for c in (saver.storage, saver.writes, saver.blobs))
    saver.delete_thread("t1")
    assert conv(samples(reg), "memexport_conversation_threads", "graph") == 1


def test_canary_never_reaches_the_exposition() -> None:
    from langchain_core.messages import HumanMessage

    canary = f"canary-{uuid.uuid4().hex}"
    reg = Registry()
    manager = memexport.conversation(guide.MemoryEfficientConversationManager(10, 4),
                                     name="canary_guide", registry=reg)
    d = memexport.conversation(deque(maxlen=3), name="canary_deque", registry=reg)
    lc = memexport.conversation(_langchain_history(), name="canary_lc", registry=reg)
    for i in range(12):
        manager.add_message({"content": f"{canary} {i}", "timestamp": float(i),
                             canary: canary})
        d.append(canary)
        lc.add_message(HumanMessage(canary))
    reg.run_tick_jobs(budget_seconds=5.0)
    text = scrape_text(reg)
    assert canary not in text
    assert "canary" not in text.replace("canary_guide", "").replace(
        "canary_deque", "").replace("canary_lc", "")
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            assert all(canary not in v for v in smp.labels.values())


def test_explicit_arguments_and_errors() -> None:
    reg = Registry()

    class Transcript:
        def __init__(self) -> None:
            self.turns: deque[str] = deque(maxlen=2)
            self.digests: list[str] = []

        def say(self, text: str) -> None:
            self.turns.append(text)

        def digest(self) -> None:
            self.digests.append("d")
            self.turns.popleft()

    t = memexport.conversation(Transcript(), name="explicit", history="turns",
                               summaries="digests", add="say", summarize="digest",
                               registry=reg)
    for w in "abc":
        t.say(w)
    t.digest()
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages", "explicit") == 1
    assert conv(s, "memexport_conversation_summaries", "explicit") == 1
    assert conv(s, "memexport_conversation_messages_added_total", "explicit") == 3
    assert conv(s, "memexport_conversation_messages_dropped_total", "explicit") == 1
    assert conv(s, "memexport_conversation_messages_summarized_total", "explicit") == 1

    class Opaque:
        pass

    with pytest.raises(TypeError, match="history="):
        memexport.conversation(Opaque(), name="x", registry=reg)
    with pytest.raises(ValueError, match="'has space'"):
        memexport.conversation(deque(), name="has space", registry=reg)
    with pytest.raises(ValueError, match="'nope'"):
        memexport.conversation(Transcript(), name="x", history="turns", add="nope",
                               registry=reg)
    with pytest.raises(ValueError, match="3"):
        memexport.conversation(Transcript(), name="x", history=3, registry=reg)  # type: ignore[arg-type]


def test_tracking_twice_counts_once_and_freed_ids_are_forgotten() -> None:
    reg = Registry()
    cls = type("Manager", (guide.MemoryEfficientConversationManager,), {})
    m = cls(10, 50)
    assert memexport.conversation(m, name="once", registry=reg) is m
    assert memexport.conversation(m, name="once", registry=reg) is m  # tracked once
    with pytest.raises(ValueError, match="already instrumented as conversation 'once'"):
        memexport.conversation(m, name="again", registry=reg)
    for i in range(3):
        m.add_message(message(i))
    s = samples(reg)
    assert conv(s, "memexport_conversations", "once") == 1
    assert conv(s, "memexport_conversation_messages_added_total", "once") == 3
    assert conv(s, "memexport_conversations", "again") is None
    del m
    gc.collect()
    # Untracked instances of the patched class, some likely at the freed object's address:
    # the wrapper must not take them for the tracked one.
    others = [cls(10, 50) for _ in range(50)]
    for o in others:
        o.add_message(message(0))
    s = samples(reg)
    assert conv(s, "memexport_conversations", "once") == 0
    assert conv(s, "memexport_conversations_finalized_total", "once") == 1
    assert conv(s, "memexport_conversation_messages_added_total", "once") == 3


def test_tracked_objects_copy_and_pickle_as_before() -> None:
    import copy
    import pickle

    reg = Registry()
    d = memexport.conversation(deque([message(0)], maxlen=2), name="copies", registry=reg)
    for c in (copy.copy(d), d.copy(), d + deque([message(1)])):
        c.append(message(2))  # a copy works, and counts nothing
        c.extend([message(3)])
    assert pickle.loads(pickle.dumps(d)) == d
    lst = memexport.conversation([message(0)], name="copies_list", registry=reg)
    assert copy.copy(lst) == lst and pickle.loads(pickle.dumps(lst)) == lst
    manager = memexport.conversation(guide.MemoryEfficientConversationManager(),
                                     name="copies_guide", registry=reg)
    manager.add_message(message(0))
    clone = pickle.loads(pickle.dumps(manager))  # nothing of memexport's on the instance
    assert list(clone.conversation_history) == list(manager.conversation_history)
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages_added_total", "copies") == 0
    assert conv(s, "memexport_conversation_messages_added_total", "copies_guide") == 1


def test_managers_of_two_names_move_into_their_names_own_classes() -> None:
    """A manager tracked in place moves into a subclass of its name (counters bound in, no
    lookup per add); each name counts its own adds and drops, and uninstrument moves back."""
    reg = Registry()
    cls = guide.MemoryEfficientConversationManager
    a = memexport.conversation(cls(max_history_length=3), name="named_a", registry=reg)
    b = memexport.conversation(cls(max_history_length=3), name="named_b", registry=reg)
    listed = cls()
    listed.conversation_history = []  # an unbounded list: its own class of the name
    c = memexport.conversation(listed, name="named_a", registry=reg)
    assert type(a) is not type(b) and type(a) is not type(c)
    assert isinstance(a, cls) and type(a).__name__ == cls.__name__
    plain = cls()
    for i in range(5):
        a.add_message(message(i))
        plain.add_message(message(i))
    b.add_message(message(0))
    c.add_message(message(0))
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages_added_total", "named_a") == 6
    assert conv(s, "memexport_conversation_messages_dropped_total", "named_a") == 2
    assert conv(s, "memexport_conversation_messages_added_total", "named_b") == 1
    assert type(memexport.uninstrument(a)) is cls
    a.add_message(message(9))
    assert conv(samples(reg), "memexport_conversation_messages_added_total", "named_a") == 6


def test_a_bounded_history_replaced_by_a_longer_one_counts_its_own_drops() -> None:
    """The name's subclass is made per maxlen (read then only once the history is that
    long): a manager whose history becomes a longer deque counts no false drop."""
    reg = Registry()
    cls = guide.MemoryEfficientConversationManager
    small = memexport.conversation(cls(max_history_length=3), name="resized", registry=reg)
    other = memexport.conversation(cls(max_history_length=5), name="resized", registry=reg)
    assert type(small) is not type(other)  # one subclass per maxlen
    for i in range(4):
        small.add_message(message(i))
    assert conv(samples(reg), "memexport_conversation_messages_dropped_total", "resized") == 1
    small.conversation_history = deque(small.conversation_history, maxlen=6)
    for i in range(6):
        small.add_message(message(i))  # 3 -> 6 held, then 3 drops
    s = samples(reg)
    assert len(small.conversation_history) == 6
    assert conv(s, "memexport_conversation_messages_dropped_total", "resized") == 4
    assert conv(s, "memexport_conversation_messages_added_total", "resized") == 10


def test_a_manager_with_no_source_at_hand_is_wrapped_and_counts_the_same() -> None:
    """A class made by ``exec`` has no source to inline: its name's subclass wraps the
    methods, counting adds, drops and summaries as the inlined ones do."""
    scope: dict[str, Any] = {"deque": deque}
    exec("class Manager:\n"
         "    def __init__(self):\n"
         "        self.conversation_history = deque(maxlen=3)\n"
         "        self.summaries = []\n"
         "    def add_message(self, message):\n"
         "        self.conversation_history.append(message)\n"
         "        return len(self.conversation_history)\n"
         "    def _create_summary(self):\n"
         "        self.summaries.append(self.conversation_history.popleft())\n", scope)
    reg = Registry()
    m = memexport.conversation(scope["Manager"](), name="no_source", registry=reg)
    assert type(m).add_message.__code__.co_filename == "<memexport wrapper>"
    assert [m.add_message(message(i)) for i in range(5)] == [1, 2, 3, 3, 3]
    m._create_summary()
    s = samples(reg)
    assert conv(s, "memexport_conversation_messages_added_total", "no_source") == 5
    assert conv(s, "memexport_conversation_messages_dropped_total", "no_source") == 2
    assert conv(s, "memexport_conversation_messages_summarized_total", "no_source") == 1
    guide_m = memexport.conversation(guide.MemoryEfficientConversationManager(3),
                                     name="with_source", registry=reg)
    original = guide.MemoryEfficientConversationManager.add_message.__code__
    assert type(guide_m).add_message.__code__.co_filename == original.co_filename  # inlined
