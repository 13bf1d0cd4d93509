"""Hot methods compiled from templates: a counter's step called as ``_x()`` stays exact when
the template calls ``next(count)`` for it."""

from __future__ import annotations

import itertools

from memexport.core.counters import Counter, NumberedCounter
from memexport.instrument.templates import compile_functions

TEMPLATE = '''
def hit(self):
    n = _hit()
    other._hit()
    return n

def plain():
    return _plain()
'''


class _Other:
    def __init__(self) -> None:
        self.calls = 0

    def _hit(self) -> None:
        self.calls += 1


def test_count_steps_are_called_through_next_and_stay_exact() -> None:
    counter, other = NumberedCounter(), _Other()
    funcs = compile_functions(TEMPLATE, {"_hit": counter.inc, "other": other,
                                         "_plain": lambda: "plain"})
    assert [funcs["hit"](None) for _ in range(3)] == [0, 1, 2]  # inc's value is kept
    plain = Counter()  # counts down a repeat: no value, the same rewrite
    tally = compile_functions(TEMPLATE, {"_hit": plain.inc, "other": _Other(), "_plain": int})
    assert [tally["hit"](None) for _ in range(3)] == [None] * 3 and plain.value() == 3
    assert "_mx_next" in tally["hit"].__code__.co_names
    assert counter.value() == 3 and other.calls == 3  # an attribute call is left alone
    assert funcs["plain"]() == "plain"
    assert "_mx_next" in funcs["hit"].__code__.co_names


def test_same_template_with_and_without_a_count_step() -> None:
    steps = itertools.count()
    with_step = compile_functions(TEMPLATE, {"_hit": steps.__next__, "other": _Other(),
                                             "_plain": int})
    without = compile_functions(TEMPLATE, {"_hit": lambda: "called", "other": _Other(),
                                           "_plain": int})
    assert with_step["hit"](None) == 0 and without["hit"](None) == "called"
