"""Leak suspects: sustained growth enters, bursts and sawtooth do not."""

from __future__ import annotations

import time
from typing import Any

import pytest

from memexport.core.registry import Registry
from memexport.process.collector import ProcessCollector
from memexport.process.suspects import OVERFLOW, GrowthRanker


def names(r: GrowthRanker) -> list[str]:
    return [k for k, _g, _v in r.suspects() if k != OVERFLOW]


def test_a_key_enters_after_windows_of_growth_and_is_ranked_by_growth() -> None:
    r = GrowthRanker(top=2, windows=3)
    for i in range(3):
        r.update({"leak.py:1": 100.0 * (i + 1), "slow.py:2": 10.0 + i, "flat.py:3": 500.0})
        assert names(r) == []  # not yet: growth seen in fewer than 3 windows
    r.update({"leak.py:1": 400.0, "slow.py:2": 13.0, "flat.py:3": 500.0})
    assert names(r) == ["leak.py:1", "slow.py:2"]
    assert r.suspects()[0] == ("leak.py:1", 300.0, 400.0)


def test_burst_and_sawtooth_never_enter() -> None:
    r = GrowthRanker(top=5, windows=3)
    saw = [100.0, 200.0, 300.0, 100.0, 200.0, 300.0, 100.0, 200.0]
    for i, v in enumerate(saw):
        r.update({"saw.py:1": v, "burst.py:2": 1000.0 if i >= 3 else 0.0})
    assert names(r) == []


def test_overflow_sums_members_beyond_top_and_members_leave_after_quiet_windows() -> None:
    r = GrowthRanker(top=1, windows=2)
    for i in range(3):
        r.update({"a:1": 10.0 * i, "b:2": 20.0 * i, "c:3": 5.0 * i})
    sus = r.suspects()
    assert sus[0][0] == "b:2"
    assert sus[-1] == (OVERFLOW, 20.0 + 10.0, 20.0 + 10.0)
    r.update({"a:1": 20.0, "b:2": 40.0, "c:3": 10.0})  # no growth: quiet 1
    assert names(r) == ["b:2"]
    r.update({"a:1": 20.0, "b:2": 40.0, "c:3": 10.0})  # quiet 2: they leave
    assert names(r) == [] and r.suspects() == [(OVERFLOW, 0.0, 0.0)]


def test_state_is_capped() -> None:
    r = GrowthRanker(top=3, windows=2, cap=50)
    for i in range(5):
        r.update({f"s{j}:1": float(j * (i + 1)) for j in range(1000)})
    assert len(r._state) <= 50 + 3
    assert names(r) == ["s999:1", "s998:1", "s997:1"]


@pytest.mark.parametrize(("arg", "value"), [("top", 0), ("windows", 101), ("cap", True)])
def test_bad_settings_are_named(arg: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{arg} must be an int"):
        GrowthRanker(**{arg: value})  # type: ignore[arg-type]


def test_no_probe_holds_objects_another_thread_is_building() -> None:
    """A tuple another thread is building must keep one reference (else CPython raises
    SystemError there): the collector's probes must never list the heap's objects. A type
    census through gc.get_objects() broke this (seen in the demo) and was removed."""
    import threading

    reg = Registry()
    c = ProcessCollector(reg, tracemalloc=True)
    errors: list[BaseException] = []
    stop = threading.Event()

    def slow_items() -> Any:
        for i in range(2000):
            if i % 50 == 0:
                time.sleep(0)  # let the collector thread run mid-construction
            yield (i,)

    def build() -> None:
        try:
            while not stop.is_set():
                tuple(slow_items())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=build)
    t.start()
    try:
        for _ in range(20):
            c.tick()
    finally:
        stop.set()
        t.join(10)
        c.stop()
    assert not errors, errors
