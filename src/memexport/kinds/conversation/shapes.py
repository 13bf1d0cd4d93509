"""The shapes of conversation memexport recognises: deques and lists, and history objects.

- a plain ``deque`` or ``list`` (``tracked``): a subclass holding the same messages, counting
  what is appended and what a deque's ``maxlen`` pushes out;
- deque/list-based managers such as the guide's ``MemoryEfficientConversationManager``
  (``patch``): a history attribute plus ``add_message``, summaries in ``summaries``. The
  class's add and summarise methods are replaced once (``HistoryShape``), and pass objects
  that are not tracked straight through.

Lengths are read at scrape time; only adding a message is an event. Bytes are deep sizes
sampled on the collector thread; message content is measured, never exported.
"""

from __future__ import annotations

import inspect
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sized
from operator import attrgetter
from typing import Any

from memexport.core.checks import shown
from memexport.core.model import Kind
from memexport.core.registry import Component, Index, Profile, SizeSpec, profile_now
from memexport.core.sizing import shallow_size
from memexport.instrument.kind import Shape
from memexport.instrument.readers import container_len, instance_attr
from memexport.instrument.templates import compile_functions
from memexport.instrument.tracked import tracked_base
from memexport.kinds.conversation import named
from memexport.kinds.conversation.named import positional_arity
from memexport.kinds.conversation.table import (
    LARGEST,
    MESSAGES,
    SUMMARIES,
    ConversationInfo,
    ConversationOptions,
)

__all__ = ["UNSEEN", "BuiltinShape", "HistoryShape", "ObjectShape", "history_profile",
           "list_methods", "sized_of"]

#: Attributes the generic recogniser looks for, in order.
HISTORY_ATTRS = ("conversation_history", "history", "messages", "chat_history", "_history",
                 "_messages", "buffer")
SUMMARY_ATTRS = ("summaries", "_summaries")
ADD_METHODS = ("add_message", "append_message", "add")
SUMMARIZE_METHODS = ("_create_summary", "create_summary", "_summarize", "summarize")

#: A component's state before its first add: whether its history is bounded is not known.
UNSEEN: Any = object()
_UNSEEN = UNSEEN


def _length_of(get: Callable[[Any], Any]) -> Callable[[Any], int | None]:
    def length(obj: Any) -> int | None:
        c = get(obj)
        return None if c is None else container_len(c)
    return length


def history_profile(kind: Kind, info: ConversationInfo, *,
                    summaries: Callable[[Any], Any] | None = None,
                    readable: bool = True,
                    sized: Callable[[Any], list[Any]] | None = None, overhead: bool = True,
                    gauges: dict[str, Callable[[Any], Any]] | None = None) -> Profile:
    """The profile of a history shape: lengths (only where the history is held in memory:
    ``readable``), summaries, and the deep size of ``sized(obj)``'s containers (default: the
    history and the summaries)."""
    readers: dict[Any, Any] = dict(gauges or {})
    history = info.history if readable else None
    if history is not None:
        readers[MESSAGES] = readers[LARGEST] = _length_of(history)
    if summaries is not None:
        readers[SUMMARIES] = _length_of(summaries)
    if sized is None and (history is not None or summaries is not None):
        getters = [g for g in (history, summaries) if g is not None]

        def sized(o: Any) -> list[Any]:
            return [c for c in (g(o) for g in getters) if c is not None]

    size = None
    if sized is not None:
        containers = sized
        size = SizeSpec(lambda o: itertools.chain.from_iterable(containers(o)),
                        lambda o: sum(len(c) for c in containers(o)),
                        (lambda o: sum(shallow_size(c) for c in containers(o)))
                        if overhead else (lambda o: 0))
    return Profile(kind, readers, size=size, extra=info)


# -- the hot path of patched classes ----------------------------------------------------------


def _bounded(comp: Component, obj: Any) -> Callable[[Any], Any] | None:
    """The history getter of ``obj`` if its history is a bounded deque, else None (found at
    its first add: a decorated class's instance has its profile from then on)."""
    hist = comp.state
    if hist is _UNSEEN:
        info = profile_now(comp, obj).extra
        getter = info.history if isinstance(info, ConversationInfo) else None
        hist = getter if named.bounded_deque(getter, obj) else None
        comp.state = hist
    return hist  # type: ignore[no-any-return]


def _bulk_items(args: tuple[Any, ...], kwargs: dict[str, Any],
                ) -> tuple[tuple[Any, ...], dict[str, Any], int]:
    """The messages argument of a bulk add, a generator materialised once; and its length."""
    items = args[0] if args else next(iter(kwargs.values()), ())
    if not isinstance(items, Sized):
        items = list(items)
        if args:
            args = (items, *args[1:])
        else:
            kwargs = {next(iter(kwargs)): items}
    return args, kwargs, len(items)


def _room(hist: Callable[[Any], Any] | None, obj: Any, k: int) -> int:
    """Room left in a bounded history before adding ``k`` messages (``k`` when unbounded)."""
    if hist is None:
        return k
    try:
        c = hist(obj)
        return int(c.maxlen - len(c))
    except Exception:  # never hurt the app: no drop counted
        return k


def _count(h: Any, k: int, room: int) -> None:
    if k == 1:
        h.added()
    elif k > 1:
        h.added_many(k)
    lost = k - room
    if lost == 1:
        h.dropped()
    elif lost > 1:
        h.dropped_many(lost)


_ADD_ONE = '''
def {name}(self, message):
    comp = _get(id(self))
    if comp is None:
        return _original(self, message)
    hist = comp.state
    if hist is _UNSEEN:
        hist = _bounded(comp, self)
    h = comp.group.handles
    if hist is None:
        result = _original(self, message)
        h.added()
        return result
    try:
        c = hist(self)
        full = len(c) >= c.maxlen
    except Exception:
        full = False
    result = _original(self, message)
    if full:
        h.dropped()
    h.added()
    return result
'''
_ADD_ANY = '''
{def_} {name}(self, *args, **kwargs):
    comp = _get(id(self))
    if comp is None:
        return {aw}_original(self, *args, **kwargs)
    k = 1
    if _bulk:
        args, kwargs, k = _bulk_items(args, kwargs)
    room = _room(_bounded(comp, self), self, k)
    result = {aw}_original(self, *args, **kwargs)
    _count(comp.group.handles, k, room)
    return result
'''


def add_patch(index: Index, bulk: bool, is_async: bool, arity: int | None
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A factory of add wrappers: count the messages added, and a bounded deque's drop when
    it is full (one ``len`` before the call: a message still in the history was never
    summarised). Nothing is counted when the call raises."""
    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        name = getattr(original, "__name__", "add")
        name = name if name.isidentifier() else "add"
        names = {"_get": index.get, "_original": original, "_bounded": _bounded,
                 "_UNSEEN": _UNSEEN,
                 "_bulk": bulk, "_bulk_items": _bulk_items, "_room": _room, "_count": _count}
        if arity == 1 and not bulk and not is_async:
            return compile_functions(_ADD_ONE, names, name=name)[name]  # type: ignore[no-any-return]
        return compile_functions(_ADD_ANY, names, name=name, aw="await " if is_async else "",  # type: ignore[no-any-return]
                                 def_="async def" if is_async else "def")[name]
    return factory


def _history_length(comp: Component, obj: Any) -> int | None:
    info = comp.profile.extra
    hist = info.history if isinstance(info, ConversationInfo) else None
    if hist is None:
        return None
    try:
        c = hist(obj)
        return None if c is None else len(c)
    except Exception:
        return None


def summarize_patch(index: Index) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A factory of summarising wrappers: what they take out of the history was summarised."""
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def summarize(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(self))
            if comp is None:
                return original(self, *args, **kwargs)
            _bounded(comp, self)  # resolves the profile of a decorated class's instance
            n0 = _history_length(comp, self)
            if n0 is None:
                return original(self, *args, **kwargs)
            try:
                return original(self, *args, **kwargs)
            finally:
                n1 = _history_length(comp, self)
                if n1 is not None and n0 > n1:
                    comp.group.handles.summarized(n0 - n1)
        return summarize
    return factory


class HistoryShape(Shape):
    """A history object whose class methods are replaced once (adapters subclass it)."""

    style = "patch"

    def info(self, obj_or_cls: Any, opts: ConversationOptions) -> ConversationInfo:
        raise NotImplementedError

    def patches(self, cls: type, index: Index, opts: ConversationOptions,
                profile: Profile | None
                ) -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
        info = profile.extra if profile is not None else self.info(cls, opts)
        out: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {}
        for method, bulk in info.adds:
            fn = getattr(cls, method, None)
            out[method] = add_patch(index, bulk, inspect.iscoroutinefunction(fn),
                                    positional_arity(fn) if fn is not None else None)
        for method in info.summarize:
            out[method] = summarize_patch(index)
        return out

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        comp.state = _UNSEEN  # the bounded-history check runs at the first add


# -- deques and lists -----------------------------------------------------------------------------

_DEQUE = '''
def append(self, message, /):
    if self._me_component is None:
        return _append(self, message)
    if _bounded and len(self) == _maxlen:  # full: the oldest message goes
        _append(self, message)
        _dropped()
    else:
        _append(self, message)
    _added()

def appendleft(self, message, /):
    if self._me_component is None:
        return _appendleft(self, message)
    full = _bounded and len(self) == _maxlen
    _appendleft(self, message)
    if full:
        _dropped()
    _added()

def extend(self, messages, /):
    _many(self, _extend, messages)

def extendleft(self, messages, /):
    _many(self, _extendleft, messages)

def __iadd__(self, messages):
    _many(self, _extend, messages)
    return self

def _many(self, op, messages):
    items = messages if isinstance(messages, (list, tuple)) else list(messages)
    if self._me_component is None:
        return op(self, items)
    k = len(items)
    bound = self.maxlen
    lost = max(0, len(self) + k - bound) if bound is not None else 0
    op(self, items)
    if k:
        _added_many(k)
    if lost:
        _dropped_many(lost)
'''
_LIST = '''
def append(self, message, /):
    _append(self, message)
    if self._me_component is not None:
        _added()

def insert(self, index, message, /):
    _insert(self, index, message)
    if self._me_component is not None:
        _added()

def extend(self, messages, /):
    items = messages if isinstance(messages, (list, tuple)) else list(messages)
    _extend(self, items)
    if self._me_component is not None and items:
        _added_many(len(items))

def __iadd__(self, messages):
    self.extend(messages)
    return self
'''


def list_methods(handles: Any) -> dict[str, Any]:
    """A tracked list's counting methods for one name (every append, insert, extend)."""
    names: dict[str, Any] = {"_added": handles.added, "_added_many": handles.added_many,
                             "_append": list.append, "_insert": list.insert,
                             "_extend": list.extend}
    return compile_functions(_LIST, names, filename="<memexport tracked list>")


def _identity(obj: Any) -> Any:
    return obj


class BuiltinShape(Shape):
    """A plain ``deque`` or ``list``: a tracked subclass holding the same messages."""

    style = "tracked"
    label = "a deque or list of messages"
    by_type = False  # a deque's class bakes in its maxlen (read once, not per append)

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return type(obj) in (deque, list) and opts.history is None

    def variant(self, obj: Any, opts: ConversationOptions) -> Any:
        return (type(obj), obj.maxlen if isinstance(obj, deque) else None)

    def base(self, obj: Any) -> type:
        return tracked_base(type(obj))

    def methods(self, handles: Any, obj: Any, opts: ConversationOptions) -> dict[str, Any]:
        names: dict[str, Any] = {
            "_added": handles.added, "_added_many": handles.added_many,
            "_dropped": handles.dropped, "_dropped_many": handles.dropped_many,
        }
        if isinstance(obj, deque):
            names.update(_maxlen=obj.maxlen, _bounded=obj.maxlen is not None,
                         _append=deque.append, _appendleft=deque.appendleft,
                         _extend=deque.extend, _extendleft=deque.extendleft)
            funcs = compile_functions(_DEQUE, names, filename="<memexport tracked deque>")
        else:
            return list_methods(handles)
        return {k: v for k, v in funcs.items() if k.startswith("__") or not k.startswith("_")}

    def build(self, cls: type, obj: Any, opts: ConversationOptions) -> Any:
        return cls(obj, obj.maxlen) if isinstance(obj, deque) else cls(obj)

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, ConversationInfo(_identity), sized=lambda o: [o])


# -- objects holding a history ----------------------------------------------------------------


def _method_names(cls: type, given: tuple[str, ...] | None, defaults: tuple[str, ...],
                  what: str) -> list[str]:
    if given is None:
        return [n for n in defaults if callable(getattr(cls, n, None))][:1]
    for n in given:
        if not callable(getattr(cls, n, None)):
            raise ValueError(f"{what}={shown(n)}: {shown(cls.__qualname__)} has no method "
                             f"{shown(n)}")
    return list(given)


class ObjectShape(HistoryShape):
    """An object with a message history attribute (a list or deque) and an add method."""

    label = "a conversation manager"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return not isinstance(obj, type)

    def matches_class(self, cls: type, opts: ConversationOptions) -> bool:
        return True

    def _history(self, obj: Any, opts: ConversationOptions) -> Callable[[Any], Any] | None:
        if opts.history is not None:
            return opts.history
        for attr in HISTORY_ATTRS:
            if isinstance(instance_attr(obj, attr), list | deque):
                return attrgetter(attr)
        return None

    def _summaries(self, obj: Any, opts: ConversationOptions) -> Callable[[Any], Any] | None:
        if opts.summaries is not None or opts.history is not None:
            return opts.summaries
        for attr in SUMMARY_ATTRS:
            if isinstance(instance_attr(obj, attr), list | deque):
                return attrgetter(attr)
        return None

    def check(self, obj: Any, opts: ConversationOptions) -> None:
        cls = obj if isinstance(obj, type) else type(obj)
        self.info(cls, opts)  # ValueError for a method it does not have
        if not isinstance(obj, type) and self._history(obj, opts) is None:
            raise TypeError(
                f"memexport.conversation cannot find the message history of a "
                f"{shown(type(obj).__qualname__)}: pass history='attribute' (a list or deque "
                f"of messages) or history=callable, and add='method' naming the method that "
                f"adds a message (looked for {', '.join(HISTORY_ATTRS)})")

    def info(self, obj_or_cls: Any, opts: ConversationOptions) -> ConversationInfo:
        cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
        adds = _method_names(cls, opts.add, ADD_METHODS, "add")
        summarize = _method_names(cls, opts.summarize, SUMMARIZE_METHODS, "summarize")
        history = None if isinstance(obj_or_cls, type) else self._history(obj_or_cls, opts)
        return ConversationInfo(history, [(n, False) for n in adds], summarize)

    def variant(self, obj: Any, opts: ConversationOptions) -> Any:
        return (type(obj), tuple(a for a in HISTORY_ATTRS
                                 if isinstance(instance_attr(obj, a), list | deque)))

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return history_profile(kind, self.info(obj, opts), summaries=self._summaries(obj, opts))

    def moved_key(self, obj: Any, opts: ConversationOptions) -> Any:
        return named.bound(self._history(obj, opts), obj)

    def moved_methods(self, obj: Any, handles: Any, opts: ConversationOptions
                      ) -> dict[str, Any] | None:
        """The name's own add and summarise methods, for adds of one message each."""
        return named.methods(type(obj), self.info(obj, opts), obj, handles)


def sized_of(getters: Iterable[Callable[[Any], Any]]) -> Callable[[Any], list[Any]]:
    """The containers ``getters`` return, for a profile's ``sized``."""
    gs = list(getters)

    def sized(o: Any) -> list[Any]:
        return [c for c in (g(o) for g in gs) if c is not None]
    return sized

