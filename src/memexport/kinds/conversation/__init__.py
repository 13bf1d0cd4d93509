"""Conversation histories: messages, bytes, summaries, and messages lost without a summary.

``memexport.conversation(obj_or_class, name)`` tracks chat histories. Many objects share one
name (one per session is normal): series are per name, never per conversation id. Each
tracked object is one registry component in its name's group, read at scrape time with a
profile built once per class; only adding a message is an event, counted by a wrapper that
the tracked object's class method is replaced with once (objects that are not tracked pass
straight through it), or by the tracked list a LangChain ``InMemoryChatMessageHistory`` is
given in place of its own (``held``): no other attribute of the app's object is touched.

Recognised without configuration: deque/list-based managers such as the guide's
``MemoryEfficientConversationManager``, plain ``deque``/``list`` histories (a tracking
subclass is returned: ``memexport.kinds.conversation.shapes``), LangChain chat message
histories, AutoGen ``ChatCompletionContext`` variants and LangGraph ``InMemorySaver``
(adapters in ``memexport.integrations``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from memexport.core.registry import REGISTRY, Component, Registry
from memexport.instrument.kind import NOT_GIVEN, ClassPlan, KindSpec
from memexport.kinds.conversation.shapes import UNSEEN, BuiltinShape, ObjectShape
from memexport.kinds.conversation.table import (
    EVENTS,
    KIND,
    ConversationInfo,
    ConversationOptions,
    options,
)

__all__ = ["EVENTS", "KIND", "SPEC", "ConversationInfo", "ConversationOptions", "conversation"]

T = TypeVar("T")


class ConversationSpec(KindSpec):
    """The conversation kind: a decorated class's instance learns its history at its first
    add (its attributes do not exist yet when ``__new__`` registers it)."""

    def on_new_instance(self, comp: Component, instance: Any, plan: ClassPlan) -> None:
        comp.state = UNSEEN


SPEC = ConversationSpec(
    KIND, EVENTS, (BuiltinShape(), ObjectShape()), what="conversation",
    hint="pass history='attribute' (a list or deque of messages) or history=callable, and "
         "add='method' naming the method that adds a message")


@overload
def conversation(obj: T, name: str, *, history: str | Callable[[Any], Any] | None = ...,
                 summaries: str | Callable[[Any], Any] | None = ...,
                 add: str | Iterable[str] | None = ..., summarize: str | Iterable[str] | None
                 = ..., registry: Registry = ...) -> T: ...


@overload
def conversation(*, name: str, history: str | Callable[[Any], Any] | None = ...,
                 summaries: str | Callable[[Any], Any] | None = ...,
                 add: str | Iterable[str] | None = ..., summarize: str | Iterable[str] | None
                 = ..., registry: Registry = ...) -> Callable[[T], T]: ...


def conversation(obj: Any = NOT_GIVEN, name: Any = None, *, history: Any = None,
                 summaries: Any = None, add: Any = None, summarize: Any = None,
                 registry: Registry = REGISTRY) -> Any:
    """Track a conversation history (or every instance of a class) under ``name``.

    ``history = memexport.conversation(MemoryEfficientConversationManager(), "support")``
    returns the same object, tracked; ``@memexport.conversation(name="support")`` on a class
    tracks each instance it creates. A plain ``deque`` or ``list`` comes back as a tracked
    one holding the same messages: use the returned object. For other shapes pass
    ``history`` (attribute name or callable returning the message container), optionally
    ``summaries``, ``add`` (the method(s) adding one message each) and ``summarize`` (the
    method(s) moving messages into summaries: what they remove from the history counts as
    summarised). The object is held weakly; nothing it contains is ever exported.
    """
    opts = options(history=history, summaries=summaries, add=add, summarize=summarize)
    if obj is NOT_GIVEN:
        SPEC.check_call(name, registry)
        return lambda target: SPEC.instrument(target, name, registry, opts)
    return SPEC.instrument(obj, name, registry, opts)
