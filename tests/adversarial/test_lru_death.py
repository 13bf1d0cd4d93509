"""Issue 11 item 12: an lru_cache wrapper's counts since the last scrape survive its death.

memexport pulls an lru_cache's counts from ``cache_info()`` at scrape; before, a wrapper that
died kept only what the last scrape had read (5 misses scraped, 10 more, death: 5), and a
wrapper used and dropped between scrapes counted nothing. The weak reference's callback now
reads the dying wrapper's fields (``memexport.instrument.lru``).
"""

from __future__ import annotations

import functools
import gc
from typing import Any

import pytest

import memexport
from tests.adversarial.support import Registry, value

REQ = "memexport_cache_requests_total"


def lru(maxsize: int | None = 8) -> Any:
    return functools.lru_cache(maxsize=maxsize)(lambda x: x)


def test_counts_since_the_last_scrape_survive_the_wrappers_death() -> None:
    reg = Registry()
    f = memexport.cache(lru(), name="lru", registry=reg)
    for i in range(5):
        f(i)
    assert value(reg, REQ, cache="lru", result="miss") == 5
    for i in range(5, 15):
        f(i)
    f(14)
    info = f.cache_info()
    del f
    assert value(reg, REQ, cache="lru", result="miss") == 15
    assert value(reg, REQ, cache="lru", result="hit") == 1
    assert value(reg, "memexport_cache_puts_total", cache="lru") == 15
    assert value(reg, "memexport_cache_evictions_total", cache="lru") == info.misses - info.currsize


@pytest.mark.parametrize("maxsize", [4, None])
def test_a_wrapper_used_and_dropped_between_scrapes_counts(maxsize: int | None) -> None:
    reg = Registry()
    assert value(reg, REQ, cache="short") is None
    f = memexport.cache(lru(maxsize), name="short", registry=reg)
    for i in range(7):
        f(i)
    f(6)
    del f
    assert value(reg, REQ, cache="short", result="miss") == 7
    assert value(reg, REQ, cache="short", result="hit") == 1


def test_a_reset_before_death_carries_on_from_the_total() -> None:
    reg = Registry()
    f = memexport.cache(lru(), name="reset", registry=reg)
    for i in range(6):
        f(i)
    assert value(reg, REQ, cache="reset", result="miss") == 6
    f.cache_clear()
    for i in range(2):
        f(i)
    del f
    assert value(reg, REQ, cache="reset", result="miss") == 8


def test_a_wrapper_in_a_reference_cycle_counts_when_the_gc_frees_it() -> None:
    reg = Registry()

    def make() -> Any:
        @functools.lru_cache(maxsize=4)
        def fib(n: int) -> int:
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        return fib

    f = memexport.cache(make(), name="fib", registry=reg)
    f(20)
    misses = f.cache_info().misses
    del f
    gc.collect()
    assert value(reg, REQ, cache="fib", result="miss") == misses


def test_without_a_confirmed_layout_a_dying_wrapper_keeps_the_last_reading(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from memexport.instrument import lru as lru_module

    assert lru_module.death_reader(True, object) is None  # a look-alike class: never read
    monkeypatch.setattr(lru_module, "OFFSETS", None)
    assert lru_module.death_reader(True) is None
    reg = Registry()
    f = memexport.cache(lru(3), name="fallback", registry=reg)
    for i in range(5):
        f(i)
    assert value(reg, REQ, cache="fallback", result="miss") == 5
    f(99)
    del f
    assert value(reg, REQ, cache="fallback", result="miss") == 5
