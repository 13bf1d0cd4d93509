"""What ``uninstrument`` gives back, once an object's component is retired: a proxy stops
counting and forwards, a tracked builtin or view becomes plain again, an object moved into
a subclass goes back to its class."""

from __future__ import annotations

from typing import Any

from memexport.instrument import moving

__all__ = ["detach", "is_proxy"]

#: ``object.__class__``'s own setter: wrapt's ``__class__`` property would set the wrapped's.
_SET_CLASS = object.__dict__["__class__"].__set__


def is_proxy(obj: Any) -> bool:
    """Whether ``obj`` is one of memexport's proxies still counting."""
    try:
        return object.__getattribute__(obj, "_self_component") is not None
    except AttributeError:
        return False


def _plain_base(cls: type) -> type:
    """The first class above the per-name ones: the kind's proxy base."""
    for klass in cls.__mro__:
        if vars(klass).get("__memexport_base__"):
            return klass
    return cls


def detach(obj: Any) -> Any:
    """Make ``obj`` (what instrumenting returned) plain; return what the app gets back."""
    if moving.moved_base(type(obj)) is not None:
        moving.restore(obj)
    if is_proxy(obj):
        # The proxy the app may still hold stops counting: back to its kind's plain base
        # (same slots), whose methods only forward.
        _SET_CLASS(obj, _plain_base(type(obj)))
        obj._self_component = None
        return obj.__wrapped__
    if hasattr(type(obj), "__memexport_tracked__"):
        detached = type(obj).__mro__[1]  # the tracked base: a plain builtin subclass
        object.__setattr__(obj, "__class__", detached)
        object.__setattr__(obj, "_me_component", None)
        original = getattr(obj, "_me_origin", None)  # a view sharing an object's state
        if original is not None:  # what the view changed (counts, flags) goes back
            vars(original).update(
                {k: v for k, v in vars(obj).items() if not k.startswith("_me_")})
            return original
    return obj
