"""Objects tracked in place by moving them into a subclass of their class.

A patch shape's hot methods go on a subclass made once per class and options (no slots of
its own, the same name, pickled and copied as the original class), and the tracked object's
``__class__`` is set to it: other instances of the class never meet memexport (a replaced
class method costs every untracked call a lookup, about 70 ns). A class that might notice
(another metaclass, an ``__init_subclass__`` hook, its own ``__eq__``, a dataclass) keeps
the class patch instead.
"""

from __future__ import annotations

import abc
import copyreg
import inspect
import weakref
from collections.abc import Callable, Hashable, Mapping, Set
from typing import Any

from memexport.instrument import patching

__all__ = ["MOVED", "Factories", "Moved", "movable", "move", "moved_base", "moved_class",
           "new_plain", "new_plain_ex", "restore", "subclass"]

#: What a patch shape gives: attribute -> (original method -> replacement).
Factories = dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]

#: Set on every subclass made here: the class it was made from.
MOVED = "__memexport_moved__"


class Moved:
    """The marker base of every subclass made here (after the original class in its MRO,
    so what the app registers for its class, a YAML representer say, still applies)."""

    __slots__ = ()

_PLAIN_META = (type, abc.ABCMeta)
#: ``__eq__``s that compare contents, never types: a moved object still equals its peers.
_CONTENT_EQ = frozenset({Mapping.__eq__, Set.__eq__})
_UNKNOWN: Any = object()


def movable(cls: type) -> bool:
    """Whether instances of ``cls`` can move into a subclass without the app seeing it."""
    if type(cls) not in _PLAIN_META or issubclass(cls, Moved):
        return False
    if hasattr(cls, "__dataclass_fields__") or hasattr(cls, "__attrs_attrs__"):
        return False  # their __eq__ and replace() compare or copy the exact class
    if any(vars(k)["__eq__"] not in _CONTENT_EQ for k in cls.__mro__[:-1]
           if "__eq__" in vars(k)):
        return False  # equality may compare type(self) with type(other)
    return not any("__init_subclass__" in vars(k) for k in cls.__mro__[:-1])


def new_plain(cls: type, *args: Any) -> Any:
    """``cls.__new__(cls, *args)``: what a moved object pickles to (as ``copyreg.__newobj__``,
    which pickle will not accept for another class than the object's)."""
    return cls.__new__(cls, *args)


def new_plain_ex(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``cls.__new__(cls, *args, **kwargs)`` (as ``copyreg.__newobj_ex__``)."""
    return cls.__new__(cls, *args, **kwargs)


_NEW = {copyreg.__newobj__: new_plain,  # type: ignore[attr-defined]
        copyreg.__newobj_ex__: new_plain_ex}  # type: ignore[attr-defined]


def _as_base(base: type, moved: type, rv: Any) -> Any:
    """The reduce value ``rv`` of a moved object, naming ``base`` instead of ``moved``."""
    if isinstance(rv, tuple) and len(rv) >= 2 and isinstance(rv[1], tuple) and rv[1] \
            and rv[1][0] is moved:
        func = _NEW.get(rv[0], rv[0])
        return (func, (base, *rv[1][1:]), *rv[2:])
    return rv


def subclass(cls: type, methods: dict[str, Callable[..., Any]]) -> type:
    """The subclass of ``cls`` with ``methods``, pickling and copying as ``cls``."""
    reduce_ex: Callable[[Any, Any], Any] = cls.__reduce_ex__  # type: ignore[assignment]
    moved: type

    def __reduce_ex__(self: Any, protocol: Any) -> Any:
        return _as_base(cls, moved, reduce_ex(self, protocol))

    ns: dict[str, Any] = {"__slots__": (), "__module__": cls.__module__,
                          "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
                          MOVED: cls, "__reduce_ex__": __reduce_ex__, **methods}
    own_copy = getattr(cls, "__copy__", None)
    if callable(own_copy):  # cachetools' makes ``type(self).__new__``: a copy counts nothing
        def __copy__(self: Any) -> Any:
            clone = own_copy(self)
            if clone is not self and type(clone) is moved:
                _set_attr(clone, "__class__", cls)
            return clone
        ns["__copy__"] = __copy__
    moved = type(cls)(cls.__name__, (cls, Moved), ns)
    return moved


def moved_class(made: weakref.WeakKeyDictionary[type, dict[Hashable, Any]], key: Hashable,
                cls: type, patches: Callable[[], Factories]) -> type | None:
    """The subclass of ``cls`` for ``key``, or None when the class is to be patched instead.
    ``made`` keeps weak references (the subclass lives while an object is in it), so
    neither keeps ``cls`` alive."""
    try:
        per = made.setdefault(cls, {})
    except TypeError:  # a class that takes no weak reference
        return None
    ref = per.get(key, _UNKNOWN)
    if ref is None:
        return None
    moved: type | None = ref() if ref is not _UNKNOWN else None
    if moved is None:
        if not movable(cls):
            per[key] = None
            return None
        methods = {attr: factory(getattr(cls, attr)) for attr, factory in patches().items()
                   if inspect.isfunction(getattr(cls, attr, None))}
        if not methods:
            per[key] = None
            return None
        moved = subclass(cls, methods)
        per[key] = weakref.ref(moved)
    return moved


def _marked(value: Any) -> bool:
    return getattr(getattr(value, "__func__", value), patching.MARK, None) is not None


_get_attr = object.__getattribute__
_set_attr = object.__setattr__


def move(obj: Any, moved: type) -> None:
    """Set ``obj``'s class to ``moved`` (``TypeError`` if it cannot be). Its attributes then
    move to a combined dict: CPython specialises attribute reads on one, not on the split
    dict a class change leaves (about 40 ns more per method call otherwise). The copy and
    the swap run with no thread switch between them, so no attribute write is lost."""
    _set_attr(obj, "__class__", moved)
    try:
        attrs = _get_attr(obj, "__dict__")
    except AttributeError:
        return
    if type(attrs) is dict:
        _set_attr(obj, "__dict__", {**attrs})


def moved_base(cls: type) -> type | None:
    """The class ``cls`` was made from, if it is one of these subclasses."""
    base = vars(cls).get(MOVED)
    return base if isinstance(base, type) else None


def restore(obj: Any) -> None:
    """Move ``obj`` back to its original class, unless another kind patched the subclass
    since: it then stays, its methods pass through for an object no longer tracked."""
    cls = type(obj)
    base = moved_base(cls)
    if base is None or any(_marked(v) for v in vars(cls).values()):
        return
    try:
        move(obj, base)
    except TypeError:  # pragma: no cover - the layouts are the same by construction
        pass
