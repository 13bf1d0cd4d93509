"""What a kind recognises: a ``Shape`` (a family of objects and how to instrument them),
and the helpers shapes share (readers of a proxy's target, patch factories).

See ``instrument.kind`` for the styles and the one entry that asks the shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, ClassVar, Literal

from memexport.core.model import Kind
from memexport.core.registry import Component, Index, Profile, SizeSpec

__all__ = ["Shape", "Style", "on_target", "proxied", "replacing"]

Style = Literal["read", "proxy", "tracked", "patch", "listen"]


class on_target:
    """Marks a reader of the registered object itself (a proxy's own slot): the readers of
    a proxy shape's profile are otherwise given the wrapped object."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, obj: Any) -> Any:
        return self.fn(obj)


def proxied(profile: Profile) -> Profile:
    """``profile`` for a proxy: its readers and sizes get the wrapped object."""
    def unwrap(r: Any) -> Any:
        return r if isinstance(r, on_target) else (lambda p: r(p.__wrapped__))

    size = profile.size
    if size is not None:
        entries, length, overhead = size.entries, size.length, size.overhead
        size = SizeSpec(lambda p: entries(p.__wrapped__), lambda p: length(p.__wrapped__),
                        lambda p: overhead(p.__wrapped__), size.pairs)
    out = Profile(profile.kind, {k: unwrap(r) for k, r in profile.readers.items()},
                  {k: unwrap(r) for k, r in profile.pulled}, size, profile.death, profile.extra)
    out.with_comp = profile.with_comp
    return out


class Shape:
    """A family of objects a kind recognises, and how it instruments them (see module doc)."""

    style: ClassVar[Style] = "read"
    #: What the shape is, for error texts and docs ("a cachetools cache").
    label: ClassVar[str] = ""
    #: Whether the match, the checks and the variant depend on the object's type (and the
    #: options) alone: then they are worked out once per type, and instrumenting another
    #: object of it costs its registration only. Shapes reading the instance say False.
    by_type: ClassVar[bool] = True
    #: A tracked shape whose new object is a view sharing the original's state (a queue):
    #: it keeps the original (``_me_origin``), is found by it, and ``uninstrument`` gives it.
    view: ClassVar[bool] = False

    def matches(self, obj: Any, opts: Any) -> bool:
        """Whether this shape handles ``obj`` (explicit options included)."""
        return False

    def matches_class(self, cls: type, opts: Any) -> bool:
        """Whether this shape handles a class decorated with the kind."""
        return False

    def check(self, obj: Any, opts: Any) -> None:
        """Raise ``ValueError``/``TypeError`` for options this shape cannot honour."""

    def variant(self, obj: Any, opts: Any) -> Hashable:
        """What distinguishes objects needing another profile or class (default: the type)."""
        cls: Any = type(obj)
        return cls  # type: ignore[no-any-return]

    def profile(self, obj: Any, opts: Any, kind: Kind) -> Profile:
        """The scrape-time readers of objects of this variant (built once per variant)."""
        return Profile(kind, {})

    def class_profile(self, obj: Any, opts: Any, kind: Kind, index: Index) -> Profile:
        """The readers of an instance of a decorated class (default: ``profile``)."""
        return self.profile(obj, opts, kind)

    # -- proxy / tracked ------------------------------------------------------------------

    def base(self, obj: Any) -> type:
        """The proxy or tracked base class for ``obj``."""
        raise NotImplementedError

    def methods(self, handles: Any, obj: Any, opts: Any) -> dict[str, Any]:
        """The hot methods of the name's class (``self.__wrapped__`` is the object)."""
        return {}

    def build(self, cls: type, obj: Any, opts: Any) -> Any:
        """Make the proxy / tracked object of class ``cls`` for ``obj``."""
        return cls(obj)

    def moved_methods(self, obj: Any, handles: Any, opts: Any) -> dict[str, Any] | None:
        """A proxy shape's methods for a subclass of ``obj``'s class (one per variant) bound
        to the name's ``handles``: an object of a class that can move (``moving.movable``)
        moves into it, tracked in place, with no proxy and no ``__wrapped__`` read per call.
        None: always a proxy (a patch shape: the class's shared subclass, or its patch)."""
        return None

    def moved_key(self, obj: Any, opts: Any) -> Hashable:
        """What else than the variant tells ``moved_methods`` apart (read per object)."""
        return None

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        """Called once ``target`` (what the caller gets back) is registered as ``comp``."""

    # -- patch ----------------------------------------------------------------------------

    def patches(self, cls: type, index: Index, opts: Any, profile: Profile | None
                ) -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
        """``{method: factory(original) -> replacement}``; replacements find the object's
        component with ``index.get(id(self))`` and pass untracked objects through.
        ``profile`` is the object's (None for a decorated class: no instance yet)."""
        return {}

    # -- listen ---------------------------------------------------------------------------

    def listen(self, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        """Attach the library's listeners for ``obj``; ``comp.state.undo()`` removes them."""
        raise NotImplementedError


def replacing(fn: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A patch factory that ignores the original: ``fn`` already calls it."""
    def factory(_original: Callable[..., Any]) -> Callable[..., Any]:
        return fn
    return factory
