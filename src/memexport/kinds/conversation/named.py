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

from memexport.instrument.inlining import method_with
from memexport.instrument.templates import is_count_step
from memexport.kinds.conversation.table import ConversationInfo

__all__ = ["bound", "bounded_deque", "methods", "positional_arity"]

# A manager moved into its name's own subclass: the name's counters and the history getter
# are bound in, so an add makes no index lookup (see ``ObjectShape.moved_methods``). The
# bookkeeping goes into the method's own body where its source allows
# (``instrument.inlining``: no frame and call more than the app's), else around it. A
# bounded history's subclass is made per ``maxlen`` (the moved key), a constant of the code
# compared as a jump the interpreter specialises: the deque's own ``maxlen`` (an attribute
# read it cannot specialise) is read only once the history is that long, so a history
# replaced by a longer deque counts no false drop.
_BOUNDED = '''
_me_full = False
try:
    _me_c = {hist}
    if _me_len(_me_c) >= {maxlen}:
        _me_full = _me_len(_me_c) >= _me_c.maxlen
except Exception:
    pass
'''
_BOUNDED_DONE = '''
if _me_full:
    _me_dropped()
_me_next(_me_added)
'''
_ADD_DONE = '''
_me_next(_me_added)
'''
# Whatever the summarising method takes out of the history, however it ends.
_SUMMARIZE = '''
try:
    _me_n0 = _me_len({hist})
except Exception:
    _me_n0 = -1
'''
_SUMMARIZE_DONE = '''
if _me_n0 >= 0:
    try:
        _me_gone = _me_n0 - _me_len({hist})
    except Exception:
        _me_gone = 0
    if _me_gone > 0:
        _me_summarized(_me_gone)
'''


def _reading(hist: Callable[[Any], Any], names: dict[str, Any]) -> str:
    """How the bookkeeping reads the history (``{self}`` is the method's first parameter)."""
    read = _attribute_read(hist, "{self}", "_me_hist")
    if "_me_hist" in read:
        names["_me_hist"] = hist
    return read


def _summarize(fn: Any, hist: Callable[[Any], Any], handles: Any) -> Any:
    """The summarising method ``fn`` counting what it removes from the history."""
    names: dict[str, Any] = {"_me_len": len, "_me_summarized": handles.summarized}
    read = _reading(hist, names)
    return method_with(fn, _SUMMARIZE.replace("{hist}", read),
                       _SUMMARIZE_DONE.replace("{hist}", read), names, always=True)


def _add(fn: Any, hist: Callable[[Any], Any], maxlen: int | None, handles: Any) -> Any:
    """The add method ``fn`` counting the message, and a bounded history's drop."""
    names: dict[str, Any] = {"_me_next": next, "_me_added": _iterator(handles.added)}
    if maxlen is None:
        return method_with(fn, "", _ADD_DONE, names)
    names.update(_me_len=len, _me_dropped=handles.dropped)
    prologue = _BOUNDED.replace("{hist}", _reading(hist, names)).replace(
        "{maxlen}", str(int(maxlen)))
    return method_with(fn, prologue, _BOUNDED_DONE, names)


def _iterator(step: Callable[[], Any]) -> Any:
    """What ``next()`` steps for the counter step ``step`` (an iterator calling it else)."""
    return step.__self__ if is_count_step(step) else iter(step, _NEVER)  # type: ignore[attr-defined]


_NEVER = object()


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
    out: dict[str, Any] = {}
    for method, bulk in info.adds:
        fn = getattr(cls, method, None)
        if bulk or not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn) \
                or positional_arity(fn) != 1 or not method.isidentifier():
            return None
        out[method] = _add(fn, hist, maxlen, handles)
    for method in info.summarize:
        fn = getattr(cls, method, None)
        if not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn) \
                or not method.isidentifier():
            return None
        out[method] = _summarize(fn, hist, handles)
    return out


def _attribute_read(getter: Callable[[Any], Any], this: str = "self",
                    call: str = "_hist") -> str:
    """How a template reads the history: ``self.<attr>`` for ``attrgetter("<attr>")`` (an
    attribute load the interpreter specialises, where the getter is a call), else the call."""
    if type(getter) is attrgetter:
        try:
            args = getter.__reduce__()[1]
        except Exception:
            args = ()
        if len(args) == 1 and isinstance(args[0], str) and args[0].isidentifier() \
                and not keyword.iskeyword(args[0]):
            return f"{this}.{args[0]}"
    return f"{call}({this})"


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
