"""mem0 (``mem0ai``) local memory as an agent memory store, an adapter.

Asked only once ``mem0`` is imported. ``memexport.agent(memory, name)`` takes a
``mem0.Memory`` or ``AsyncMemory`` (open-source, local). Its memories live in its vector store
(Qdrant, Chroma, FAISS, ...), which a scrape never queries: memexport counts them where they
change, through one wrapper per *instance* of the memory's vector store (instance
attributes: the class and other stores are untouched): ``insert`` adds ``len(ids)``,
``delete`` removes one, ``delete_col`` (``reset()``) removes them all. Every mem0 path (``add``
with or without inference, ``update`` events, ``delete``, ``delete_all``, ``reset``) goes
through those three. The count starts from the collection's size when instrumented where
the store can tell it cheaply (Qdrant's ``count``), else 0.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

from memexport.core.model import Kind
from memexport.core.registry import Component, Profile
from memexport.instrument.kind import Shape
from memexport.kinds.agent.table import ITEMS, AgentInfo, AgentOptions

__all__ = ["MemoryShape", "shapes"]

_WRAPPED = "_memexport_wrapped"


def _classes() -> tuple[type, ...]:
    mod = sys.modules.get("mem0.memory.main")
    if mod is None:
        return ()
    return tuple(c for c in (getattr(mod, "Memory", None), getattr(mod, "AsyncMemory", None))
                 if isinstance(c, type))


class _Count:
    __slots__ = ("n", "undo")

    def __init__(self, n: int) -> None:
        self.n = n
        self.undo: Callable[[], None] = lambda: None


def _counted(_obj: Any, comp: Component) -> int | None:
    return comp.state.n if isinstance(comp.state, _Count) else None


def _initial(store: Any) -> int:
    client, name = getattr(store, "client", None), getattr(store, "collection_name", None)
    count = getattr(client, "count", None)
    if not callable(count) or not isinstance(name, str):
        return 0
    try:
        return int(count(collection_name=name, exact=True).count)
    except Exception:  # another store, or the collection does not exist yet
        return 0


def _wrap(store: Any, state: _Count) -> Callable[[], None]:
    """Count ``store``'s inserts and deletes on this instance; return the undo."""
    if getattr(store, _WRAPPED, False):
        return lambda: None
    cls = type(store)
    ref = weakref.ref(store)

    def insert(*args: Any, **kwargs: Any) -> Any:
        s = ref()
        if s is None:
            raise RuntimeError("memexport: the mem0 vector store is gone")
        result = cls.insert(s, *args, **kwargs)
        ids = kwargs.get("ids")
        vectors = kwargs.get("vectors", args[0] if args else ())
        state.n += len(ids) if ids is not None else len(vectors or ())
        return result

    def delete(*args: Any, **kwargs: Any) -> Any:
        s = ref()
        if s is None:
            raise RuntimeError("memexport: the mem0 vector store is gone")
        result = cls.delete(s, *args, **kwargs)
        state.n = max(0, state.n - 1)
        return result

    def delete_col(*args: Any, **kwargs: Any) -> Any:
        s = ref()
        if s is None:
            raise RuntimeError("memexport: the mem0 vector store is gone")
        result = cls.delete_col(s, *args, **kwargs)
        state.n = 0
        return result

    attrs = {n: f for n, f in (("insert", insert), ("delete", delete),
                               ("delete_col", delete_col)) if callable(getattr(cls, n, None))}
    for name, fn in attrs.items():
        fn.__doc__ = getattr(cls, name).__doc__
        setattr(store, name, fn)
    setattr(store, _WRAPPED, True)

    def undo() -> None:
        s = ref()
        if s is not None:
            for name in (*attrs, _WRAPPED):
                try:
                    delattr(s, name)
                except AttributeError:
                    pass
    return undo


class MemoryShape(Shape):
    """A mem0 ``Memory`` / ``AsyncMemory``: memories counted at its vector store (its class
    is not patched: ``read`` style, plus the per-instance store wrapper)."""

    style = "read"
    label = "a mem0 Memory"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        classes = _classes()
        return (not opts.explicit and bool(classes) and isinstance(obj, classes)
                and getattr(obj, "vector_store", None) is not None)

    def profile(self, obj: Any, opts: AgentOptions, kind: Kind) -> Profile:
        return Profile(kind, {}, extra=AgentInfo(), with_comp={ITEMS: _counted})

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        store = obj.vector_store
        state = _Count(_initial(store))
        state.undo = _wrap(store, state)
        comp.state = state


_SHAPES = (MemoryShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _SHAPES if kind == "agent" else ()
