"""Argument checks shared by every public call: names, positive numbers, values shown safely.

An error names the bad value so the caller can find it, but never quotes user data: strings
are truncated, numbers shown as they are, any other object only by its type.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["cached_options", "positive_number", "shown", "validate_name"]

#: Characters of a shown string value before it is cut.
SHOWN_CHARS = 60

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``value`` for an error message: a truncated repr of a str or number, else its type."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else f"{text[:limit]}...' ({len(value)} characters)"
    if isinstance(value, tuple) and len(value) <= 4 and all(
            v is None or isinstance(v, str | bool | int | float) for v in value):
        return "(" + ", ".join(shown(v, limit // 2) for v in value) + ")"
    try:
        name = type(value).__qualname__
    except Exception:  # a metaclass that refuses: still a clear message
        name = "object"
    return f"a {name} object"


def validate_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid component name, else raise ``ValueError`` naming it."""
    if not isinstance(name, str):
        raise ValueError(f"{kind} name must be a str, got {shown(name)}")
    if name.startswith("__"):
        raise ValueError(f"{kind} name {shown(name)} is reserved: names starting with '__' "
                         f"are ours")
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid {kind} name {shown(name)}: use 1-128 characters from "
                         f"A-Z a-z 0-9 _ . : / -")
    return name


def positive_number(value: object, what: str, *, allow_zero: bool = False,
                    minimum: float | None = None) -> float:
    """``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``), and at
    least ``minimum`` when given; else a ``ValueError`` naming ``what`` and the value."""
    ok = (not isinstance(value, bool) and isinstance(value, int | float)
          and math.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if ok and minimum is not None and value < minimum:  # type: ignore[operator]
        raise ValueError(f"{what} must be at least {minimum!r}, got {shown(value)}")
    if not ok:
        which = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{what} must be a {which} finite number, got {shown(value)}")
    return float(value)  # type: ignore[arg-type]


Opts = TypeVar("Opts")


def cached_options(validate: Callable[..., Opts]) -> Callable[..., Opts]:
    """Cache a kind's keyword-only options validator: the same plain arguments (the usual
    case: one call site per session or request) give the same validated options without the
    work. Only names, numbers and types are cached: a callable argument could hold the app's
    objects, which a cache must not keep alive."""
    cached = functools.lru_cache(maxsize=256)(validate)

    @functools.wraps(validate)
    def options(**kwargs: Any) -> Opts:
        if all(_plain(v) for v in kwargs.values()):
            return cached(**kwargs)
        return validate(**kwargs)
    return options


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str | type):
        return True
    return isinstance(value, tuple) and all(_plain(v) for v in value)
