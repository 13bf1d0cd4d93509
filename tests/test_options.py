"""A kind's options: ``memexport.cache`` with no option skips validation (the usual call),
explicit options are validated at the call, and options hash as they compare."""

from __future__ import annotations

import cachetools
import pytest

import memexport
from memexport.core.registry import Registry
from memexport.kinds.cache.table import DEFAULT_OPTIONS, CacheOptions
from memexport.kinds.cache.table import options as cache_options


class _NoEquality:
    def __eq__(self, other: object) -> bool:
        raise AssertionError("an app's __eq__ must not run")

    __hash__ = object.__hash__


def test_default_and_explicit_options() -> None:
    assert DEFAULT_OPTIONS == cache_options() and hash(DEFAULT_OPTIONS) == hash(CacheOptions())
    assert cache_options(sizer="sampled") != DEFAULT_OPTIONS
    odd = _NoEquality()
    reg = Registry()
    c = memexport.cache(cachetools.LRUCache(4), "opts_miss", miss=odd, registry=reg)
    assert c.get("absent", odd) is odd
    with pytest.raises(ValueError, match="sizer"):
        memexport.cache(cachetools.LRUCache(4), "opts_bad", sizer="fast", registry=reg)
