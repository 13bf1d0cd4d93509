"""Scrape-time readers: from what a user passes (a number, an attribute path, a callable) and
from what an object holds (the first numeric attribute among some names).

Readers never run a property or touch ``obj.__dict__``: on Python 3.11+ reading ``vars()``
materialises the instance's inline values into a dict for good, and every later attribute
access of the app's object gets slower.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from operator import attrgetter
from types import MemberDescriptorType
from typing import Any

from memexport.core.checks import shown
from memexport.core.registry import Reader

__all__ = ["container_len", "either", "first_number", "instance_attr", "is_number",
           "lazy_number", "len_of", "path_reader", "reader_from"]

_MISSING: Any = object()


def container_len(container: Any) -> int:
    """``len`` of a container of entries or messages; a str or bytes is not one (its length
    would be made up), nor is anything without a length (a ``TypeError``)."""
    if isinstance(container, str | bytes | bytearray):
        raise TypeError(f"expected a container, got a {type(container).__name__}")
    return len(container)


def is_number(value: object) -> bool:
    """A real number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def path_reader(path: str) -> Reader:
    """Read a dotted attribute path; a callable at the end is called (``"pool.qsize"``)."""
    get = attrgetter(path)

    def read(obj: Any) -> Any:
        value = get(obj)
        return value() if callable(value) else value

    return read


def reader_from(spec: Any, what: str, *, constants: bool = True) -> Reader | None:
    """Turn an explicit argument (``items=``, ``max_size=``, ``history=``...) into a reader.

    None is "not given". A number is a constant (finite, not negative; only with
    ``constants``), a string an attribute name or dotted path (called if it names a method),
    a callable is called with the object. Anything else is a ``ValueError`` naming ``what``.
    """
    if spec is None:
        return None
    if isinstance(spec, bool) or (not constants and is_number(spec)):
        raise ValueError(f"{what}={shown(spec)}: pass an attribute name or a callable")
    if is_number(spec):
        if not math.isfinite(spec) or spec < 0:
            raise ValueError(f"{what}={shown(spec)} must be a finite, non-negative number")
        value = spec
        return lambda _obj: value
    if isinstance(spec, str):
        if not spec or not all(part.isidentifier() for part in spec.split(".")):
            raise ValueError(f"{what}={shown(spec)} is not an attribute name or dotted path")
        return path_reader(spec)
    if callable(spec):
        return spec  # type: ignore[no-any-return]
    hint = "a number, an attribute name or a callable" if constants else (
        "an attribute name or a callable")
    raise ValueError(f"{what}={shown(spec)}: pass {hint}")


def instance_attr(obj: Any, name: str) -> Any:
    """``obj.name`` if it is data held by the instance (not a property), else None."""
    for klass in type(obj).__mro__:
        value = klass.__dict__.get(name, _MISSING)
        if value is not _MISSING:
            if hasattr(type(value), "__get__") and not isinstance(value, MemberDescriptorType):
                return None  # a property, a method, another descriptor: not instance data
            break
    try:
        return getattr(obj, name, None)
    except Exception:  # a __getattr__ that raises something else than AttributeError
        return None


def first_number(obj: Any, names: Iterable[str], scale: float = 1.0, *,
                 static: bool = False) -> Reader | None:
    """A reader of the first positive numeric attribute of ``obj`` among ``names``.

    With ``static``, looked up without running descriptors (``inspect.getattr_static``).
    None when there is none.
    """
    for attr in names:
        try:
            value = (inspect.getattr_static(obj, attr) if static
                     else instance_attr(obj, attr))
        except AttributeError:
            continue
        if is_number(value) and value > 0 and math.isfinite(value):
            getter = attrgetter(attr)
            if scale == 1.0:
                return getter
            def scaled(o: Any, g: Any = getter, s: float = scale) -> float:
                return float(g(o)) * s
            return scaled
    return None


def len_of(get: Callable[[Any], Any]) -> Callable[[Any], int]:
    """A reader of the length of what ``get`` returns (a container: a str is refused)."""
    def length(o: Any) -> int:
        return container_len(get(o))
    return length


def lazy_number(names: tuple[str, ...], scale: float = 1.0) -> Reader:
    """A reader of the first positive numeric attribute among ``names``, looked up at each
    read (for a class whose instances may differ): None when there is none."""
    def read(o: Any) -> float | None:
        for attr in names:
            value = instance_attr(o, attr)
            if is_number(value) and value > 0:
                return float(value) * scale
        return None
    return read


def either(*readers: Reader | None) -> Reader | None:
    """The first reader's value unless it is None, then the next one's (None if none)."""
    present = [r for r in readers if r is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def read(o: Any) -> float | int | None:
        for r in present:
            v = r(o)
            if v is not None:
                return v
        return None
    return read


Getter = Callable[[Any], Any]
