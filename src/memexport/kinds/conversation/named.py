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

from memexport.instrument.inlining import inlined
from memexport.instrument.templates import compile_functions, is_count_step
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


# The same bookkeeping put into the add method's own body (``instrument.inlining``), where
# its source compiles to the code that runs: no frame and call more than the app's.
# The maxlen is a constant of the code (one per subclass), compared as a jump the
# interpreter specialises; the deque's own is read only once the history is that long.
_INLINE_BOUNDED = '''
_me_full = False
try:
    _me_c = {hist}
    if _me_len(_me_c) >= {maxlen}:
        _me_full = _me_len(_me_c) >= _me_c.maxlen
except Exception:
    pass
'''
_INLINE_BOUNDED_DONE = '''
if _me_full:
    _me_dropped()
_me_next(_me_added)
'''
_INLINE_DONE = '''
_me_next(_me_added)
'''


_INLINE_SUMMARIZE = '''
try:
    _me_n0 = _me_len({hist})
except Exception:
    _me_n0 = -1
'''
_INLINE_SUMMARIZE_DONE = '''
if _me_n0 >= 0:
    try:
        _me_gone = _me_n0 - _me_len({hist})
    except Exception:
        _me_gone = 0
    if _me_gone > 0:
        _me_summarized(_me_gone)
'''


def _inlined_summarize(fn: Any, hist: Callable[[Any], Any], handles: Any) -> Any:
    """The summarising method ``fn`` with its count in its body, or None (then wrapped)."""
    read = _attribute_read(hist, "{self}", "_me_hist")
    names: dict[str, Any] = {"_me_len": len, "_me_summarized": handles.summarized}
    if "_me_hist" in read:
        names["_me_hist"] = hist
    return inlined(fn, _INLINE_SUMMARIZE.replace("{hist}", read),
                   _INLINE_SUMMARIZE_DONE.replace("{hist}", read), names, always=True)


def _inlined_add(fn: Any, hist: Callable[[Any], Any], maxlen: int | None, handles: Any
                 ) -> Any:
    """The add method ``fn`` with the bookkeeping in its body, or None (then wrapped)."""
    if not is_count_step(handles.added):
        return None
    names = {"_me_next": next, "_me_added": handles.added.__self__}
    if maxlen is None:
        return inlined(fn, "", _INLINE_DONE, names)
    read = _attribute_read(hist, "{self}", "_me_hist")
    names.update(_me_len=len, _me_dropped=handles.dropped)
    if "_me_hist" in read:
        names["_me_hist"] = hist
    prologue = _INLINE_BOUNDED.replace("{hist}", read).replace("{maxlen}", str(int(maxlen)))
    return inlined(fn, prologue, _INLINE_BOUNDED_DONE, names)


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
        add = _inlined_add(fn, hist, maxlen, handles)
        if add is None:
            names = {"_original": fn, "_hist": hist, "_added": handles.added,
                     "_dropped": handles.dropped, "_maxlen": maxlen}
            add = compile_functions(_NAMED_ADD_BOUNDED if maxlen is not None else _NAMED_ADD,
                                    names, name=method, hist=read)[method]
        out[method] = add
    for method in info.summarize:
        fn = getattr(cls, method, None)
        if not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn) \
                or not method.isidentifier():
            return None
        summarize = _inlined_summarize(fn, hist, handles)
        if summarize is None:
            names = {"_original": fn, "_hist": hist, "_summarized": handles.summarized}
            summarize = compile_functions(_NAMED_SUMMARIZE, names, name=method,
                                          hist=read)[method]
        out[method] = summarize
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
