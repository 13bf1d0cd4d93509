"""Tracked builtins: a ``dict``, ``deque`` or ``list`` that counts, and still is one.

A builtin's methods cannot be wrapped in place and a proxy of one fails every C-level type
check (``json.dumps``, ``PyDict_Check`` fast paths). So ``memexport.cache({...})`` and
``memexport.conversation(deque(...))`` return an instance of a subclass holding the same
items, one class per kind, name and variant, with the name's counters bound into its
methods. It pickles and copies as the plain builtin (the counts belong to this process).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from typing import Any

__all__ = ["TRACKED", "is_tracked", "tracked_base"]

_bases: dict[tuple[type, tuple[str, ...]], type] = {}
_lock = threading.RLock()


def _reduce_dict(self: Any) -> Any:
    return (dict, (dict(self),))


def _reduce_ordered(self: Any) -> Any:
    return (OrderedDict, (list(self.items()),))


def _reduce_default(self: Any) -> Any:
    return (defaultdict, (self.default_factory, dict(self)))


def _reduce_deque(self: Any) -> Any:
    return (deque, (list(self), self.maxlen))


def _reduce_list(self: Any) -> Any:
    return (list, (list(self),))


def _plain_copy(self: Any) -> Any:
    """``copy.copy``: the plain builtin (deque and defaultdict would copy as their type)."""
    make, args = self.__reduce__()
    return make(*args)


#: Builtins that have a tracked form, and how they pickle (as themselves).
_REDUCE: dict[type, Callable[[Any], Any]] = {
    dict: _reduce_dict, OrderedDict: _reduce_ordered, defaultdict: _reduce_default,
    deque: _reduce_deque, list: _reduce_list,
}
TRACKED: tuple[type, ...] = tuple(_REDUCE)


def is_tracked(obj: Any) -> bool:
    """Whether ``obj`` is a tracked builtin made by memexport."""
    return getattr(type(obj), "__memexport_tracked__", False) is True


def tracked_base(builtin: type, slots: tuple[str, ...] = ()) -> type:
    """The tracked subclass base of ``builtin`` with per-object ``slots`` (made once)."""
    key = (builtin, slots)
    base = _bases.get(key)
    if base is None:
        with _lock:
            base = _bases.get(key)
            if base is None:
                def __init__(self: Any, *args: Any, __b: Any = builtin, **kwargs: Any) -> None:
                    __b.__init__(self, *args, **kwargs)
                    self._me_component = None  # copies made through the type count nothing

                ns: dict[str, Any] = {
                    "__slots__": (*(("__weakref__",) if not builtin.__weakrefoffset__ else ()),
                                  "_me_component", *slots),
                    "__init__": __init__,
                    "__reduce__": _REDUCE[builtin],
                    "__copy__": _plain_copy,
                    "__memexport_tracked__": True,
                    "__module__": __name__,
                }
                base = _bases[key] = type(f"Tracked{builtin.__name__.title()}",
                                          (builtin,), ns)
    return base
