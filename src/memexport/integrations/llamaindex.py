"""LlamaIndex (llama-index-core) chat memory as conversations, an adapter.

Asked only once ``llama_index`` is imported. ``memexport.conversation(memory, name)`` takes:

- a chat-store memory (``ChatMemoryBuffer``, ``ChatSummaryMemoryBuffer`` and every
  ``BaseChatStoreMemory``): with the default ``SimpleChatStore`` the messages are read at
  scrape from the store's dict (one ``len``: the whole history, not the token-limited window
  ``get()`` shows); with another chat store (Redis, a database) they are counted instead;
- the ``Memory`` of llama-index-core 0.12+ (``llama_index.core.memory.Memory``), whose chat
  history lives in a SQL chat store (an in-memory SQLite by default) that a scrape never
  queries: its messages are counted where they are added and reset.

Added: ``put``/``aput`` (one message), ``put_messages``/``aput_messages`` (their length);
dropped: what ``reset``/``areset`` removed. A sync method running its async twin (``Memory.put``
runs ``aput``), or a bulk add calling ``put`` per message, counts once. ``set``/``aset``
replace the history: its length is taken as the new count, nothing is added or dropped.
"""

from __future__ import annotations

import contextvars
import inspect
import sys
from collections.abc import Callable
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Component, Index, Profile, SizeSpec
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape
from memexport.kinds.conversation.table import LARGEST, MESSAGES, ConversationOptions

__all__ = ["MemoryShape", "shapes"]

_ADD_ONE = ("put", "aput")
_ADD_MANY = ("put_messages", "aput_messages")
_SET = ("set", "aset")
_RESET = ("reset", "areset")
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("memexport_llamaindex",
                                                               default=False)
Patches = dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]


def _class(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _chat_store_memory(obj: Any) -> bool:
    """A ``BaseMemory`` over a chat store (``BaseChatStoreMemory``, ``ChatSummaryMemoryBuffer``)."""
    cls = _class("llama_index.core.memory.types", "BaseMemory")
    return (cls is not None and isinstance(obj, cls) and hasattr(obj, "chat_store")
            and isinstance(getattr(obj, "chat_store_key", None), str))


def _new_memory(obj: Any) -> bool:
    cls = _class("llama_index.core.memory.memory", "Memory")
    return cls is not None and isinstance(obj, cls)


def _readable(obj: Any) -> bool:
    """The history is held in this process: a ``SimpleChatStore``'s dict."""
    simple = _class("llama_index.core.storage.chat_store.simple_chat_store", "SimpleChatStore")
    store = getattr(obj, "chat_store", None)
    return simple is not None and isinstance(store, simple) and isinstance(
        getattr(store, "store", None), dict)


def _history(obj: Any) -> Any:
    return obj.chat_store.store.get(obj.chat_store_key, ())


class _Items:
    __slots__ = ("n",)

    def __init__(self, n: int = 0) -> None:
        self.n = n


def _state(comp: Component) -> _Items:
    state = comp.state
    if not isinstance(state, _Items):
        state = comp.state = _Items()
    return state


def _counted(_obj: Any, comp: Component) -> int | None:
    return comp.state.n if isinstance(comp.state, _Items) else None


def _length(obj: Any) -> int:
    return len(_history(obj))


def _patch(index: Index, method: str, is_async: bool
           ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    get = index.get

    def settle(comp: Component, self: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
               before: int | None) -> None:
        state = _state(comp)
        h = comp.group.handles
        if method in _ADD_ONE:
            state.n += 1
            h.added()
        elif method in _ADD_MANY:
            items = args[0] if args else next(iter(kwargs.values()), ())
            k = len(items) if hasattr(items, "__len__") else 0
            state.n += k
            if k:
                h.added_many(k)
        elif method in _SET:
            items = args[0] if args else next(iter(kwargs.values()), ())
            state.n = len(items) if hasattr(items, "__len__") else state.n
        else:  # reset
            lost = before if before is not None else state.n
            state.n = 0
            if lost:
                h.dropped_many(lost)

    def before_of(comp: Component, self: Any) -> int | None:
        if method not in _RESET or not _readable(self):
            return None
        try:
            return _length(self)
        except Exception:
            return None

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        if is_async:
            async def wrapper_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                comp = get(id(self))
                if comp is None or _inside.get():
                    return await original(self, *args, **kwargs)
                token = _inside.set(True)
                try:
                    before = before_of(comp, self)
                    result = await original(self, *args, **kwargs)
                    settle(comp, self, args, kwargs, before)
                    return result
                finally:
                    _inside.reset(token)
            wrapper_async.__name__ = method
            return wrapper_async

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(self))
            if comp is None or _inside.get():
                return original(self, *args, **kwargs)
            token = _inside.set(True)
            try:
                before = before_of(comp, self)
                result = original(self, *args, **kwargs)
                settle(comp, self, args, kwargs, before)
                return result
            finally:
                _inside.reset(token)
        wrapper.__name__ = method
        return wrapper
    return factory


class MemoryShape(Shape):
    """A LlamaIndex chat memory: ``BaseChatStoreMemory`` or the SQL-backed ``Memory``."""

    style = "patch"
    label = "a LlamaIndex chat memory"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return not opts.explicit and (_chat_store_memory(obj) or _new_memory(obj))

    def variant(self, obj: Any, opts: ConversationOptions) -> Any:
        return (type(obj), _readable(obj))

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        if _readable(obj):
            size = SizeSpec(lambda o: list(_history(o)), _length,
                            lambda o: shallow_size(_history(o)))
            return Profile(kind, {MESSAGES: _length, LARGEST: _length}, size=size)
        return Profile(kind, {}, with_comp={MESSAGES: _counted, LARGEST: _counted})

    def patches(self, cls: type, index: Index, opts: ConversationOptions,
                profile: Profile | None) -> Patches:
        # The SQL-backed Memory's sync methods run their async twins: count those only.
        methods: tuple[str, ...] = (*_ADD_ONE, *_ADD_MANY, *_SET, *_RESET)
        memory_cls = _class("llama_index.core.memory.memory", "Memory")
        if memory_cls is not None and issubclass(cls, memory_cls):
            methods = tuple(m for m in methods if m.startswith("a"))
        return {m: _patch(index, m, inspect.iscoroutinefunction(getattr(cls, m)))
                for m in methods if callable(getattr(cls, m, None))}

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        comp.state = _Items(_length(obj) if _readable(obj) else 0)


_SHAPES = (MemoryShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "conversation" else ()
