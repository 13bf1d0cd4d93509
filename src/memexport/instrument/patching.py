"""Class patching: replace a class's methods once, register its instances, and undo both.

Used by decorated classes (``@memexport.cache(name=...)``: every instance counted) and by
objects tracked in place (``memexport.conversation(history)``: the class's method is
replaced once and passes untracked instances straight through). Each replacement records the
original, so ``unpatch`` restores the class exactly; a method replaced by someone else since
is left alone. Instances are registered in ``__new__``: every instance, however made (copy
and unpickling skip ``__init__``).
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from memexport.core import forks

__all__ = ["MARK", "patch", "patched_method", "register_new", "unpatch", "unregister_new"]

#: Attribute set on every replacement: the tag of who made it.
MARK = "__memexport_patched__"

_lock = forks.RLock()
#: (id(cls), attr) -> (class, original as found in cls.__dict__ or _ABSENT, replacement)
_records: dict[tuple[int, str], tuple[weakref.ref[type], Any, Any]] = {}
_ABSENT: Any = object()


def patched_method(cls: type, attr: str) -> Any:
    """The method ``attr`` as ``cls`` finds it (its original if memexport replaced it)."""
    fn = getattr(cls, attr, None)
    return getattr(fn, "__wrapped__", fn) if getattr(fn, MARK, None) else fn


def patch(cls: type, attr: str, factory: Callable[[Callable[..., Any]], Callable[..., Any]],
          tag: str, *, any_method: bool = False) -> bool:
    """Set ``cls.attr`` to ``factory(original)``, once per class, attribute and tag.

    The replacement is set on ``cls`` itself (its subclasses inherit it, other classes are
    untouched). Returns whether the method is (now) replaced; False for a method that is not
    a plain function (a builtin, a property: unless ``any_method``, for a class decorated
    with a kind, which replaces what its instances inherit from a builtin too) or a class
    that cannot be changed.
    """
    with _lock:
        current = getattr(cls, attr, None)
        if getattr(current, MARK, None) == tag:
            return True
        if not (inspect.isfunction(current) or (any_method and callable(current))):
            return False
        own = cls.__dict__.get(attr, _ABSENT)
        # A base class's method replaced by memexport (another kind or name): wrap its
        # original, so an object of this class is counted once, by this replacement.
        original = current
        while getattr(original, MARK, None) and getattr(original, "__wrapped__", None):
            original = original.__wrapped__  # type: ignore[union-attr]
        try:
            wrapper = factory(original)
            functools.update_wrapper(wrapper, original)
            setattr(wrapper, MARK, tag)
            setattr(cls, attr, wrapper)
        except (TypeError, AttributeError):  # an immutable (builtin/extension) type
            return False
        _records[(id(cls), attr)] = (weakref.ref(cls), own, wrapper)
        return True


def unpatch(cls: type, attr: str) -> bool:
    """Restore ``cls.attr`` as it was before ``patch`` (False if not ours, or changed since)."""
    with _lock:
        record = _records.get((id(cls), attr))
        if record is None or record[0]() is not cls:
            return False
        _ref, own, wrapper = record
        if cls.__dict__.get(attr) is not wrapper:
            return False  # replaced by someone else since: theirs now
        del _records[(id(cls), attr)]
        if own is _ABSENT:
            delattr(cls, attr)
        else:
            setattr(cls, attr, own)
        return True


def register_new(cls: type, on_new: Callable[[Any], None], tag: str) -> bool:
    """Call ``on_new(instance)`` for every instance of ``cls`` as ``__new__`` makes it.

    ``on_new`` must never raise (it counts its own failures): the app's constructor must not
    fail because of memexport.
    """
    def factory(orig: Callable[..., Any]) -> Callable[..., Any]:
        plain = orig is object.__new__

        def __new__(klass: type, *args: Any, **kwargs: Any) -> Any:
            self = orig(klass) if plain else orig(klass, *args, **kwargs)
            on_new(self)
            return self
        return __new__

    with _lock:
        current = cls.__dict__.get("__new__", _ABSENT)
        if getattr(getattr(current, "__func__", current), MARK, None) == tag:
            return True
        orig = cls.__new__  # a staticmethod resolved to its function
        own = current
        wrapper = factory(orig)
        wrapper.__qualname__ = f"{cls.__qualname__}.__new__"
        wrapper.__wrapped__ = orig  # type: ignore[attr-defined]
        setattr(wrapper, MARK, tag)
        try:
            cls.__new__ = staticmethod(wrapper)  # type: ignore[method-assign]
        except (TypeError, AttributeError):
            return False
        _records[(id(cls), "__new__")] = (weakref.ref(cls), own, cls.__dict__["__new__"])
        return True


def unregister_new(cls: type) -> bool:
    """Stop registering the instances of ``cls`` (undo ``register_new``)."""
    return unpatch(cls, "__new__")
