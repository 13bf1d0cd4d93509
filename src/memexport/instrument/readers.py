"""Scrape-time readers from what a user passes: a number, an attribute path or a callable."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from memexport.core.registry import Reader

__all__ = ["path_reader", "reader_from"]


def path_reader(path: str) -> Reader:
    """Read a dotted attribute path; a callable at the end is called (``"pool.qsize"``)."""
    get = attrgetter(path)

    def read(obj: Any) -> Any:
        value = get(obj)
        return value() if callable(value) else value

    return read


def reader_from(spec: Any, what: str) -> Reader | None:
    """Turn an explicit ``items=``/``max_size=``/... argument into a reader (None: not given).

    A number is a constant, a string an attribute path (called if it names a method), a
    callable is called with the object. Anything else is a ``ValueError`` naming ``what``.
    """
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise ValueError(f"{what}={spec!r}: pass a number, an attribute name or a callable")
    if isinstance(spec, int | float):
        if spec < 0:
            raise ValueError(f"{what}={spec!r} must not be negative")
        value = spec
        return lambda _obj: value
    if isinstance(spec, str):
        if not spec or not all(part.isidentifier() for part in spec.split(".")):
            raise ValueError(f"{what}={spec!r} is not an attribute name or dotted path")
        return path_reader(spec)
    if callable(spec):
        return spec
    raise ValueError(f"{what}={spec!r}: pass a number, an attribute name or a callable")
