"""Classes made per name: a base plus the hot methods of one kind, name and variant.

Proxies and tracked builtins both get their hot methods from a class made once per name (and
per variant of the object's shape), with the name's counters bound into the methods, so an
instrumented object costs its instance alone: no class, closure or finalizer per object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from memexport.core import forks

__all__ = ["derived_class", "named_as"]

_lock = forks.RLock()


def derived_class(classes: dict[Any, type], variant: Any, base: type,
                  methods: Callable[[], dict[str, Any]]) -> type:
    """The class for ``variant`` in a name's class cache, made from ``base`` and
    ``methods()`` on first use (special methods included: they must live on the type)."""
    cls = classes.get(variant)
    if cls is None:
        with _lock:
            cls = classes.get(variant)
            if cls is None:
                ns: dict[str, Any] = {"__slots__": (), "__module__": base.__module__,
                                      **named_as(methods(), base)}
                cls = classes[variant] = type(base.__name__, (base,), ns)
    return cls


def named_as(methods: dict[str, Any], owner: type) -> dict[str, Any]:
    """``methods`` with generated functions named as attributes of ``owner`` (tracebacks
    and ``repr`` show ``Owner.attr``, not the template's name)."""
    for attr, fn in methods.items():
        if callable(fn) and hasattr(fn, "__code__"):
            fn.__name__ = attr
            fn.__qualname__ = f"{owner.__qualname__}.{attr}"
    return methods
