"""Objects tracked in place move into a subclass of their class (instrument/moving.py): other
instances of the class never meet memexport, the tracked one pickles, copies and compares as
its class, and uninstrument moves it back. Classes that could notice keep the class patch."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

from integration_support import series

import memexport
from memexport.core.registry import Registry
from memexport.instrument import moving, patching
from memexport.kinds.agent import SPEC as AGENT
from memexport.kinds.conversation import SPEC as CONVERSATION


class History:
    """A conversation manager of the guide's shape: a list of messages and an add method."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def add_message(self, message: Any) -> None:
        self.messages.append(message)


class Agent:
    """An agent with a memory store and a cleanup method, also holding a history."""

    def __init__(self) -> None:
        self.memory: dict[str, Any] = {}
        self.messages: list[Any] = []

    def add_message(self, message: Any) -> None:
        self.messages.append(message)

    def cleanup_memory(self) -> None:
        self.memory.clear()


def added(reg: Registry, name: str) -> float:
    return series(reg, "conversation", name)["conversation_messages_added_total"]


def test_only_the_tracked_object_changes_class(fresh_registry: Registry) -> None:
    original = History.__dict__["add_message"]
    tracked, other = History(), History()
    tracked.messages.append("kept")
    assert memexport.conversation(tracked, "chat", registry=fresh_registry) is tracked
    assert History.__dict__["add_message"] is original  # the class is not patched
    assert type(other) is History and type(tracked) is not History
    assert isinstance(tracked, History)
    assert type(tracked).__name__ == "History"
    assert type(tracked).__qualname__ == History.__qualname__
    assert moving.moved_base(type(tracked)) is History
    assert tracked.messages == ["kept"] and vars(tracked) == {"messages": ["kept"]}
    tracked.add_message("a")
    other.add_message("b")
    assert added(fresh_registry, "chat") == 1
    assert memexport.conversation(tracked, "chat", registry=fresh_registry) is tracked


def test_pickles_and_copies_as_its_class(fresh_registry: Registry) -> None:
    tracked = memexport.conversation(History(), "chat", registry=fresh_registry)
    tracked.add_message("m")
    for clone in (pickle.loads(pickle.dumps(tracked)), copy.copy(tracked),
                  copy.deepcopy(tracked), pickle.loads(pickle.dumps(tracked, protocol=0))):
        assert type(clone) is History and clone.messages == ["m"]
        clone.add_message("not counted")
    assert added(fresh_registry, "chat") == 1


def test_uninstrument_moves_it_back(fresh_registry: Registry) -> None:
    tracked = memexport.conversation(History(), "chat", registry=fresh_registry)
    tracked.add_message("m")
    assert memexport.uninstrument(tracked) is tracked
    assert type(tracked) is History and tracked.messages == ["m"]
    tracked.add_message("after")
    assert added(fresh_registry, "chat") == 1
    assert memexport.conversation(tracked, "again", registry=fresh_registry) is tracked
    tracked.add_message("again")
    assert added(fresh_registry, "again") == 1


def test_two_kinds_on_one_object_both_count_whatever_is_undone_first() -> None:
    for first in ("conversation", "agent"):
        reg = Registry()
        obj = Agent()
        memexport.conversation(obj, "chat", registry=reg)
        memexport.agent(obj, "planner", registry=reg, cleanup="cleanup_memory")
        obj.add_message("m")
        obj.cleanup_memory()
        assert added(reg, "chat") == 1
        assert series(reg, "agent", "planner")["agent_cleanups_total"] == 1
        if first == "agent":
            AGENT.uninstrument(obj)
            obj.add_message("m2")
            assert added(reg, "chat") == 2  # the conversation still counts
        else:
            CONVERSATION.uninstrument(obj)
            obj.cleanup_memory()
            assert series(reg, "agent", "planner")["agent_cleanups_total"] == 2
        assert isinstance(obj, Agent)


@dataclasses.dataclass
class DataHistory:
    messages: list[Any] = dataclasses.field(default_factory=list)

    def add_message(self, message: Any) -> None:
        self.messages.append(message)


class EqHistory(History):
    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]


class Plugin(History):
    registered: list[type] = []

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Plugin.registered.append(cls)


def test_classes_that_could_notice_keep_the_class_patch(fresh_registry: Registry) -> None:
    for i, cls in enumerate((DataHistory, EqHistory, Plugin)):
        before = list(Plugin.registered)
        tracked = memexport.conversation(cls(), f"c{i}", registry=fresh_registry)
        assert type(tracked) is cls, cls
        assert getattr(vars(cls)["add_message"], patching.MARK, None), cls
        assert Plugin.registered == before  # no subclass made behind the app's back
        tracked.add_message("m")
        cls().add_message("untracked")
        assert added(fresh_registry, f"c{i}") == 1
        if cls is not Plugin:  # equality that compares types still holds
            assert tracked == copy.copy(tracked)


def test_attributes_stay_the_objects_own() -> None:
    reg = Registry()
    obj = History()
    d_before = dict(vars(obj))
    memexport.conversation(obj, "chat", registry=reg)
    assert vars(obj) == d_before
    obj.extra = 1  # type: ignore[attr-defined]
    assert vars(obj)["extra"] == 1
    assert "__memexport" not in " ".join(vars(obj))


def test_a_copy_that_is_the_object_itself_stays_tracked() -> None:
    """A class whose ``__copy__`` returns the object (immutable-style) keeps it moved."""
    import copy

    import memexport
    from memexport.core.registry import Registry
    from memexport.instrument import moving

    class Same:
        def __init__(self) -> None:
            self.history: list[object] = []

        def add_message(self, message: object) -> None:
            self.history.append(message)

        def __copy__(self) -> Same:
            return self

    obj = memexport.conversation(Same(), name="same_copy", registry=Registry())
    assert copy.copy(obj) is obj and moving.moved_base(type(obj)) is Same
