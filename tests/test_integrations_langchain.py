"""LangChain's memory as the installed langchain-core recommends it, for real.

langchain-core 1.6.4+ deprecates ``BaseChatMessageHistory`` and ``InMemoryChatMessageHistory``
for LangGraph persistence: a checkpointer (short-term memory: ``InMemorySaver``, read as a
conversation) and a store (long-term memory: ``InMemoryStore``, read as an agent memory
store). A real chat model (langchain-core's ``GenericFakeChatModel``) runs in a real
``StateGraph`` with both; the deprecated classes stay recognised for apps that still use them.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest
from integration_support import series

import memexport
from memexport.core.registry import Registry

langchain_core = pytest.importorskip("langchain_core")
langgraph = pytest.importorskip("langgraph")


def test_installed_langchain_core_deprecates_the_history_classes() -> None:
    """Read the PEP 702 marker: the runtime warning fires once per process, not per test."""
    from langchain_core.chat_history import InMemoryChatMessageHistory

    marker = getattr(InMemoryChatMessageHistory, "__deprecated__", None)
    doc = InMemoryChatMessageHistory.__doc__ or ""
    assert marker or "deprecated" in doc.lower(), langchain_core.__version__


def _graph(saver: Any, store: Any) -> Any:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langgraph.graph import START, MessagesState, StateGraph

    model = GenericFakeChatModel(messages=iter([AIMessage(content=f"reply {i}")
                                                for i in range(100)]))

    def call(state: MessagesState) -> dict[str, Any]:
        from langgraph.config import get_store

        reply = model.invoke(state["messages"])
        get_store().put(("memories", "user-1"), f"m{len(state['messages'])}",
                  {"text": "something the user said"})
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call)
    builder.add_edge(START, "model")
    return builder.compile(checkpointer=saver, store=store)


def test_checkpointer_and_store_as_the_replacement(fresh_registry: Registry) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    saver = memexport.conversation(InMemorySaver(), "chat", registry=fresh_registry)
    store = memexport.agent(InMemoryStore(), "memories", registry=fresh_registry)
    graph = _graph(saver, store)
    for thread in ("t1", "t2"):
        for turn in range(3):
            out = graph.invoke({"messages": [("user", f"hi {turn}")]},
                               {"configurable": {"thread_id": thread}})
    assert len(out["messages"]) == 6
    c = series(fresh_registry, "conversation", "chat")
    assert c["conversation_threads"] == 2
    assert c["conversation_checkpoints"] >= 6
    a = series(fresh_registry, "agent", "memories")
    assert a["agent_memory_items"] == len(store.search(("memories", "user-1"), limit=100)) == 3
    store.delete(("memories", "user-1"), "m1")
    assert series(fresh_registry, "agent", "memories")["agent_memory_items"] == 2
    saver.delete_thread("t1")
    assert series(fresh_registry, "conversation", "chat")["conversation_threads"] == 1
    del graph, store
    gc.collect()
    assert series(fresh_registry, "agent", "memories")["agents"] == 0


def test_deprecated_history_is_still_recognised(fresh_registry: Registry) -> None:
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        history = memexport.conversation(InMemoryChatMessageHistory(), "legacy",
                                         registry=fresh_registry)
        history.add_messages([HumanMessage("a"), AIMessage("b")])
    v = series(fresh_registry, "conversation", "legacy")
    assert v["conversation_messages"] == 2 == v["conversation_messages_added_total"]


class History(pytest.importorskip("langchain_core.chat_history")  # type: ignore[misc]
              .InMemoryChatMessageHistory):
    """This module's own history class (what memexport patches stays here)."""


def test_in_memory_history_counts_through_its_list_and_stays_a_model(
        fresh_registry: Registry) -> None:
    """The model keeps its class and behaviour; only its list is the name's tracked one."""
    import copy
    import json
    import pickle

    from langchain_core.messages import AIMessage, HumanMessage

    add = History.add_message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        h, other = History(), History()
        h.add_message(HumanMessage("before"))
        assert memexport.conversation(h, "held", registry=fresh_registry) is h
    assert type(h) is History and isinstance(h.messages, list)
    # No add method of the class is replaced: other instances never meet memexport.
    assert History.add_message is add and "add_message" not in vars(History)
    other.add_message(HumanMessage("elsewhere"))
    h.add_user_message("a")
    h.add_messages([AIMessage("b"), AIMessage("c")])
    h.messages.extend([AIMessage("d")])
    v = series(fresh_registry, "conversation", "held")
    assert v["conversation_messages"] == 5 and v["conversation_messages_added_total"] == 4
    # A pydantic model as before: dumps, equality, copies and pickles hold plain lists.
    dumped = h.model_dump()
    assert type(dumped["messages"]) is list and len(dumped["messages"]) == 5
    json.loads(h.model_dump_json())
    twin = History(messages=list(h.messages))
    assert h == twin and repr(h) == repr(twin)
    for clone in (copy.deepcopy(h), pickle.loads(pickle.dumps(h))):
        assert type(clone.messages) is list and clone == h
    # clear() puts a new list in: it is counted in turn; a shallow copy's own clear is not.
    h.clear()
    h.add_message(HumanMessage("after"))
    shallow = h.model_copy()
    shallow.clear()
    shallow.add_message(HumanMessage("copy"))
    v = series(fresh_registry, "conversation", "held")
    assert v["conversation_messages"] == 1 and v["conversation_messages_added_total"] == 5
    assert type(shallow.messages) is list and type(other.messages) is list
    # Instrumented once: the same name gives it back, another name is refused; its list
    # is no history of its own.
    assert memexport.conversation(h, "held", registry=fresh_registry) is h
    with pytest.raises(ValueError, match="already instrumented"):
        memexport.conversation(h, "elsewhere", registry=fresh_registry)
    with pytest.raises(TypeError):
        memexport.conversation(h.messages, "its_list", registry=fresh_registry)
    # Undone: the same list object, counting nothing; instrumenting again counts again.
    held = h.messages
    assert memexport.uninstrument(h) is h and h.messages is held
    h.add_message(HumanMessage("untracked"))
    assert series(fresh_registry, "conversation", "held")[
        "conversation_messages_added_total"] == 5
    memexport.conversation(h, "again", registry=fresh_registry)
    h.add_message(HumanMessage("tracked"))
    again = series(fresh_registry, "conversation", "again")
    assert again["conversation_messages"] == 3
    assert again["conversation_messages_added_total"] == 1


def test_in_memory_history_is_freed(fresh_registry: Registry) -> None:
    import weakref

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        h = memexport.conversation(History(), "freed", registry=fresh_registry)
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None
    assert series(fresh_registry, "conversation", "freed")["conversations"] == 0
