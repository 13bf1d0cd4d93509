"""The add and summarise methods of a conversation manager moved into its name's own
subclass (``ObjectShape.moved_methods``): the name's counters and the history getter are
bound in, so an add makes no lookup of the object's component. Adds of one message only;
anything else (bulk adds, coroutines, other signatures) keeps the shared subclass.
"""

from __future__ import annotations

import inspect
import keyword
from collections import deque
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from memexport.instrument.templates import compile_functions
from memexport.kinds.conversation.table import ConversationInfo

__all__ = ["bound", "bounded_deque", "methods", "positional_arity"]

# A manager moved into its name's own subclass: the name's counters and the history getter
# are bound in, so an add makes no index lookup (see ``ObjectShape.moved_methods``). A
# bounded history's subclass is made per ``maxlen`` (the moved key): the deque's own
# ``maxlen`` (an attribute read the interpreter cannot specialise) is read only once the
# history is that long, so a history replaced by a longer deque counts no false drop.
_NAMED_ADD = '''
def {name}(self, message):
    result = _original(self, message)
    _added()
    return result
'''
_NAMED_ADD_BOUNDED = '''
def {name}(self, message):
    try:
        c = {hist}
        n = len(c)
        full = n >= _maxlen and n >= c.maxlen  # maxlen read only when it may be reached
    except Exception:
        full = False
    result = _original(self, message)
    if full:
        _dropped()
    _added()
    return result
'''
_NAMED_SUMMARIZE = '''
def {name}(self, *args, **kwargs):
    try:
        n0 = len({hist})
    except Exception:
        return _original(self, *args, **kwargs)
    try:
        return _original(self, *args, **kwargs)
    finally:
        try:
            gone = n0 - len({hist})
        except Exception:
            gone = 0
        if gone > 0:
            _summarized(gone)
'''


def bounded_deque(getter: Callable[[Any], Any] | None, obj: Any) -> bool:
    """Whether ``getter(obj)`` is a deque with a ``maxlen`` (whose drops are counted)."""
    return bound(getter, obj) is not None


def bound(getter: Callable[[Any], Any] | None, obj: Any) -> int | None:
    """The ``maxlen`` of ``getter(obj)`` if it is a bounded deque, else None."""
    try:
        c = getter(obj) if getter is not None else None
    except Exception:
        return None
    return c.maxlen if isinstance(c, deque) else None


def methods(cls: type, info: ConversationInfo, obj: Any, handles: Any
            ) -> dict[str, Any] | None:
    """The methods of ``cls``'s subclass for one name, or None when one cannot be written
    out (the manager then shares the class's subclass)."""
    hist = info.history
    if hist is None:
        return None
    maxlen = bound(hist, obj)
    read = _attribute_read(hist)
    out: dict[str, Any] = {}
    for method, bulk in info.adds:
        fn = getattr(cls, method, None)
        if bulk or not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn) \
                or positional_arity(fn) != 1 or not method.isidentifier():
            return None
        names = {"_original": fn, "_hist": hist, "_added": handles.added,
                 "_dropped": handles.dropped, "_maxlen": maxlen}
        out[method] = compile_functions(_NAMED_ADD_BOUNDED if maxlen is not None else _NAMED_ADD,
                                        names, name=method, hist=read)[method]
    for method in info.summarize:
        fn = getattr(cls, method, None)
        if not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn) \
                or not method.isidentifier():
            return None
        names = {"_original": fn, "_hist": hist, "_summarized": handles.summarized}
        out[method] = compile_functions(_NAMED_SUMMARIZE, names, name=method,
                                        hist=read)[method]
    return out


def _attribute_read(getter: Callable[[Any], Any]) -> str:
    """How a template reads the history: ``self.<attr>`` for ``attrgetter("<attr>")`` (an
    attribute load the interpreter specialises, where the getter is a call), else the call."""
    if type(getter) is attrgetter:
        try:
            args = getter.__reduce__()[1]
        except Exception:
            args = ()
        if len(args) == 1 and isinstance(args[0], str) and args[0].isidentifier() \
                and not keyword.iskeyword(args[0]):
            return f"self.{args[0]}"
    return "_hist(self)"


def positional_arity(fn: Callable[..., Any]) -> int | None:
    """The number of positional parameters after ``self`` if that is all ``fn`` takes."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
           for p in params):
        return len(params)
    return None
