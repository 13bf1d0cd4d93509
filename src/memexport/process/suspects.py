"""Leak suspects: keys (allocation sites, types) ranked by growth across collector windows.

A key enters the ranking only after it grew in ``windows`` consecutive windows (one window is
one reading: a collector tick), so a one-off burst or the GC sawtooth never shows; it leaves
after as many windows without growth. Members are ranked by their growth since their streak
began; the top ``top`` are exported by name and the rest summed under ``__overflow__``, so the
series stay few and stable. State is kept for at most ``cap`` keys (the largest by value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["OVERFLOW", "GrowthRanker"]

OVERFLOW = "__overflow__"


@dataclass
class _State:
    last: float
    base: float  # value when the current streak began
    streak: int = 0  # consecutive windows with growth
    quiet: int = 0  # consecutive windows without growth while a member
    member: bool = False


def _check(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int from {low} to {high}, got {value!r}")
    return value


class GrowthRanker:
    """Ranks keys by sustained growth between successive ``update`` calls (not thread-safe:
    the collector thread alone updates it)."""

    def __init__(self, top: int = 10, windows: int = 3, *, min_growth: float = 0.0,
                 cap: int = 2000) -> None:
        self.top = _check("top", top, 1, 100)
        self.windows = _check("windows", windows, 1, 100)
        self.cap = _check("cap", cap, 1, 1_000_000)
        self.min_growth = float(min_growth)
        self._state: dict[str, _State] = {}
        self.updates = 0

    def update(self, values: Mapping[str, float]) -> None:
        """One window: the current value of each key (a key absent is worth 0)."""
        self.updates += 1
        if len(values) > self.cap:
            keep = sorted(values, key=values.__getitem__, reverse=True)[: self.cap]
            members = [k for k, s in self._state.items() if s.member and k not in values]
            current = {k: values[k] for k in keep}
            current.update((k, values.get(k, 0.0)) for k in members)
        else:
            current = dict(values)
        for key, st in list(self._state.items()):
            if key not in current:
                if st.member:
                    current[key] = 0.0
                else:
                    del self._state[key]
        for key, value in current.items():
            found = self._state.get(key)
            if found is None:
                self._state[key] = _State(last=value, base=value)
                continue
            st = found
            if value - st.last > self.min_growth:
                st.streak += 1
                st.quiet = 0
            elif st.member:
                st.quiet += 1
                if st.quiet >= self.windows:
                    st.member, st.streak, st.quiet, st.base = False, 0, 0, value
            else:
                st.streak, st.base = 0, value
            if not st.member and st.streak >= self.windows:
                st.member = True
            st.last = value
        if len(self._state) > self.cap + self.top:  # absent members pile up: drop the least
            drop = sorted(self._state, key=lambda k: self._state[k].last)
            for key in drop[: len(self._state) - self.cap]:
                if not self._state[key].member:
                    del self._state[key]

    def suspects(self) -> list[tuple[str, float, float]]:
        """(key, growth since the streak began, current value) of the top members, largest
        growth first, then ``(OVERFLOW, growth, value)`` summing the other members."""
        members = [(k, s.last - s.base, s.last) for k, s in self._state.items() if s.member]
        members.sort(key=lambda m: (-m[1], m[0]))
        head, tail = members[: self.top], members[self.top:]
        head.append((OVERFLOW, sum(m[1] for m in tail), sum(m[2] for m in tail)))
        return head

    def reset(self) -> None:
        self._state.clear()
