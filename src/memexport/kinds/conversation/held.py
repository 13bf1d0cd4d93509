"""Histories held as a plain ``list`` attribute of an object whose class cannot move (a
pydantic model: LangChain's ``InMemoryChatMessageHistory``): the list is swapped for the
name's tracked list holding the same messages, so its appends count the adds.

No add method is replaced, so other instances of the class never meet memexport (a class
patch costs every untracked add a lookup and a frame, about 60 ns). Methods that put a new
list in the attribute (``clear``) are patched once per class: after the original, the new
list of a tracked object is swapped in turn. A list assigned by the app itself is read at
scrape time as before, but its appends are no longer counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from memexport.core.registry import Component
from memexport.instrument import patching
from memexport.instrument.derive import derived_class
from memexport.instrument.detach import detach
from memexport.instrument.shape import Shape
from memexport.instrument.tracked import ROOTS, is_tracked, tracked_base
from memexport.kinds.conversation.shapes import list_methods

__all__ = ["Held", "HeldListShape", "counting_list", "hold"]

_TRACKED_LIST = ROOTS[list]


def counting_list(handles: Any) -> type:
    """The name's tracked list class for held histories (made once per name): the kind's
    counting list methods, as a plain list given to ``memexport.conversation`` gets."""
    return derived_class(handles.classes, "held-list", tracked_base(list),
                         lambda: list_methods(handles))


def _attrs(obj: Any) -> dict[str, Any] | None:
    try:
        d = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
    return d if type(d) is dict else None


def plain_list(value: Any) -> bool:
    """Whether ``value`` is a list no name counts (a plain one, or one released)."""
    return type(value) is list or (type(value) is _TRACKED_LIST
                                   and getattr(value, "_me_component", None) is None)


def hold(obj: Any, attr: str, comp: Component, cls: type) -> bool:
    """Put a ``cls`` list holding the messages of ``obj.<attr>`` in its place, counting for
    ``comp``. Appends another thread made to the old list meanwhile are carried over."""
    d = _attrs(obj)
    old: Any = d.get(attr) if d is not None else None
    if d is None or not plain_list(old):
        return False
    new = cls(old)
    n = len(new)
    new._me_component = comp
    d[attr] = new
    if len(old) > n:  # appended to between the copy and the swap
        list.extend(new, old[n:])
    return True


class Held:
    """A held history's component state: ``undo()`` stops its list counting."""

    __slots__ = ("attr", "comp")

    def __init__(self, attr: str, comp: Component) -> None:
        self.attr = attr
        self.comp = comp

    def undo(self) -> None:
        obj = self.comp()
        d = _attrs(obj) if obj is not None else None
        value: Any = d.get(self.attr) if d is not None else None
        if is_tracked(value) and value._me_component is self.comp:
            detach(value)  # a plain tracked list, counting nothing: same object, same items


def _rehold(attr: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A patch factory for a method that replaces ``obj.<attr>``: a tracked object's new
    list is swapped in after it (untracked objects: one dict read more)."""
    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def replaced(self: Any, *args: Any, **kwargs: Any) -> Any:
            d = _attrs(self)
            old: Any = d.get(attr) if d is not None else None
            result = original(self, *args, **kwargs)
            comp = old._me_component if is_tracked(old) else None
            if comp is not None and comp() is self:
                try:
                    hold(self, attr, comp, type(old))
                except Exception as exc:  # never hurt the app: counted, logged once
                    owner = comp.group.owner()
                    if owner is not None:
                        owner.errors.record(comp.group.kind.name,
                                            f"conversation {comp.group.name!r} (re-hold)", exc)
            return result
        return replaced
    return factory


class HeldListShape(Shape):
    """An object holding its messages in the list attribute ``attr``, added by methods that
    only append to it; ``resets`` are its methods that assign a new list (adapters subclass
    it and say which objects match)."""

    style = "listen"
    by_type = False  # the list is the instance's
    attr: str = "messages"
    resets: tuple[str, ...] = ()

    def variant(self, obj: Any, opts: Any) -> Any:
        return (type(obj), "held")

    def listen(self, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        cls = counting_list(handles)
        for method in self.resets:
            patching.patch(type(obj), method, _rehold(self.attr), f"conversation:held-{method}")
        comp.state = Held(self.attr, comp)
        hold(obj, self.attr, comp, cls)
