"""Reading a ``functools.lru_cache`` wrapper's counts as it dies (placeholder: none yet)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["death_reader"]


def death_reader(bounded: bool) -> Callable[[Any], list[float] | None] | None:
    """A reader of the wrapper's hits and misses at its death, where CPython allows it."""
    return None
