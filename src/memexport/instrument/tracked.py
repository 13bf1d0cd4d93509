"""Tracked builtins: a ``dict``, ``deque`` or ``list`` that counts, and still is one.

A builtin's methods cannot be wrapped in place and a proxy of one fails every C-level type
check (``json.dumps``, ``PyDict_Check`` fast paths). So ``memexport.cache({...})`` and
``memexport.conversation(deque(...))`` return an instance of a subclass holding the same
items, one class per kind, name and variant, with the name's counters bound into its
methods. It pickles and copies as the plain builtin (the counts belong to this process).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from typing import Any

from memexport.core import forks

__all__ = ["ROOTS", "TRACKED", "is_tracked", "plain", "tracked_base"]

_bases: dict[tuple[type, tuple[str, ...]], type] = {}
_lock = forks.RLock()


def _plain_dict(self: Any) -> Any:
    return dict(self)  # the C-level copy: no counted lookup


def _plain_ordered(self: Any) -> Any:
    return OrderedDict(OrderedDict.items(self))


def _plain_default(self: Any) -> Any:
    return defaultdict(self.default_factory, dict(self))


def _plain_deque(self: Any) -> Any:
    return deque(self, self.maxlen)


def _plain_list(self: Any) -> Any:
    return list(self)


#: Builtins that have a tracked form, and the plain builtin holding the same items.
_PLAIN: dict[type, Callable[[Any], Any]] = {
    dict: _plain_dict, OrderedDict: _plain_ordered, defaultdict: _plain_default,
    deque: _plain_deque, list: _plain_list,
}
TRACKED: tuple[type, ...] = tuple(_PLAIN)


def plain(obj: Any) -> Any:
    """The plain builtin holding ``obj``'s items (``obj`` itself if it is not tracked)."""
    for klass in type(obj).__mro__:
        if klass in _PLAIN:
            return _PLAIN[klass](obj) if is_tracked(obj) else obj
    return obj


#: How each tracked form pickles: as the plain builtin with the same items.
_REDUCE: dict[type, Callable[[Any], Any]] = {
    dict: lambda self: (dict, (dict(self),)),
    OrderedDict: lambda self: (OrderedDict, (list(OrderedDict.items(self)),)),
    defaultdict: lambda self: (defaultdict, (self.default_factory, dict(self))),
    deque: lambda self: (deque, (list(self), self.maxlen)),
    list: lambda self: (list, (list(self),)),
}


def _root(builtin: type) -> type:
    def __init__(self: Any, *args: Any, __b: type = builtin, **kwargs: Any) -> None:
        __b.__init__(self, *args, **kwargs)  # type: ignore[misc]
        self._me_component = None  # copies made through the type count nothing

    to_plain = _PLAIN[builtin]
    ns: dict[str, Any] = {
        "__slots__": (*(("__weakref__",) if not builtin.__weakrefoffset__ else ()),
                      "_me_component"),
        "__init__": __init__,
        # Pickles and copies as the plain builtin: the counts belong to this process.
        "__reduce__": _REDUCE[builtin],
        "__copy__": to_plain,
        "copy": to_plain,
        "__memexport_tracked__": True,
        "__module__": __name__,
    }
    return type(f"Tracked{builtin.__name__.title()}", (builtin,), ns)


#: builtin -> the root of its tracked classes (every tracked object is an instance of one:
#: what serialiser adapters such as ``memexport.integrations.yaml`` register).
ROOTS: dict[type, type] = {builtin: _root(builtin) for builtin in TRACKED}


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
                root = ROOTS[builtin]
                base = root if not slots else type(
                    root.__name__, (root,), {"__slots__": slots, "__module__": __name__})
                _bases[key] = base
    return base
