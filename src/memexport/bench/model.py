"""What a bench module hands the runner: timed cases, one-shot measures, derived figures,
skipped cases, and the targets they are judged on (data, so met/missed is computed)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Case",
    "Derived",
    "Entry",
    "Measure",
    "Result",
    "Skipped",
    "Target",
    "at_least",
    "at_most",
    "delta_at_most",
    "ratio_at_most",
    "shown",
]

#: What a target bounds: the figure itself, its ratio to the baseline, or the difference.
Of = Literal["value", "ratio", "delta"]
Op = Literal["<=", ">="]
#: A measure or derivation returns its value, or its value and a note for the table.
Reading = float | tuple[float, str]


def shown(value: float, unit: str) -> str:
    """``value`` in ``unit`` for people: times (ns) scaled to µs/ms/s, bytes to KiB/MiB."""
    if unit == "ns":
        for scale, name in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:,.2f} {name}"
        return f"{value:,.1f} ns"
    if unit == "B":
        for scale, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:,.2f} {name}"
        return f"{value:,.0f} B"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ratio":
        return f"{value:.3f}"
    if unit == "objects":
        return f"{value:,.3f} objects"
    return f"{value:,.2f} {unit}" if unit else f"{value:,.2f}"


@dataclass(frozen=True)
class Target:
    """A bound from the issue: ``<figure> <op> limit``, the figure being the value, the
    ratio to the baseline (``of="ratio"``) or the difference from it (``of="delta"``)."""

    limit: float
    of: Of = "value"
    op: Op = "<="
    unit: str = "ns"  # unit of ``limit`` (ignored for ratios)

    def check(self, value: float, ratio: float | None, delta: float | None) -> bool | None:
        figure = {"value": value, "ratio": ratio, "delta": delta}[self.of]
        if figure is None:
            return None
        return figure <= self.limit if self.op == "<=" else figure >= self.limit

    def __str__(self) -> str:
        if self.of == "ratio":
            return f"{self.op} {self.limit:.2f}x"
        text = shown(self.limit, self.unit)
        return f"{self.op} +{text}" if self.of == "delta" else f"{self.op} {text}"

    def as_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "of": self.of, "op": self.op, "unit": self.unit,
                "text": str(self)}


def at_most(limit: float, unit: str = "ns") -> Target:
    return Target(limit, "value", "<=", unit)


def at_least(limit: float, unit: str = "ns") -> Target:
    return Target(limit, "value", ">=", unit)


def ratio_at_most(limit: float) -> Target:
    return Target(limit, "ratio", "<=", "x")


def delta_at_most(limit: float, unit: str = "ns") -> Target:
    return Target(limit, "delta", "<=", unit)


@dataclass(frozen=True)
class Case:
    """One timed operation, run in interleaved rounds: ``op(n)`` performs it ``n`` times;
    the figure is the median time per operation (ns). The clock is the calling thread's CPU
    time, which other processes on a shared machine do not inflate; cases running threads
    of their own use the wall clock (``time.perf_counter_ns``)."""

    name: str
    op: Callable[[int], object]
    baseline: str | None = None  # the case of the same module this one is compared with
    target: Target | None = None
    clock: Callable[[], int] = time.thread_time_ns
    gc: bool = False  # run with the cyclic GC enabled (its pauses are part of the cost)
    note: str | Callable[[], str] = ""
    per: int = 1  # operations one count of ``op`` performs (the figure is per operation)


@dataclass(frozen=True)
class Measure:
    """A figure taken once, after the module's timed cases: ``fn()`` returns it (in
    ``unit``), or it and a note. ``baseline`` may name a case or an earlier measure."""

    name: str
    fn: Callable[[], Reading]
    unit: str
    target: Target | None = None
    baseline: str | None = None


@dataclass(frozen=True)
class Derived:
    """A figure computed from other results of the module (``needs``), after them."""

    name: str
    needs: tuple[str, ...]
    fn: Callable[[Mapping[str, Result]], Reading]
    unit: str
    target: Target | None = None


@dataclass(frozen=True)
class Skipped:
    """A case that could not run here (a package missing): listed, never dropped."""

    name: str
    reason: str


Entry = Case | Measure | Derived | Skipped


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value is None or self.baseline_value == 0:
            return None
        return self.value / self.baseline_value

    @property
    def delta(self) -> float | None:
        return None if self.baseline_value is None else self.value - self.baseline_value

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.check(self.value, self.ratio,
                                                                  self.delta)

    def as_json(self) -> dict[str, Any]:
        ratio, delta = self.ratio, self.delta
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_value": (None if self.baseline_value is None
                               else round(self.baseline_value, 3)),
            "ratio": None if ratio is None else round(ratio, 4),
            "delta": None if delta is None else round(delta, 3),
            "target": None if self.target is None else self.target.as_json(),
            "met": self.met,
            "note": self.note,
        }
