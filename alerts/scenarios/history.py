"""Synthetic scrape histories of one target, in the shape Prometheus stores them.

A :class:`History` steps through scrape times (every 15 or 30 s) and asks the app model for
each series. The process lives between starts: a restart (scheduled, or the model's own
OOM kill) is a failed scrape -- ``up`` is 0 and every other series is missing -- then a new
process with a new ``process_start_time_seconds`` whose counters start again from 0.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["Ctx", "History", "Series", "fmt_value", "series_key"]

Labels = tuple[tuple[str, str], ...]
#: ``(metric name, sorted labels)``
Series = tuple[str, Labels]


def series_key(name: str, **labels: str) -> Series:
    return name, tuple(sorted(labels.items()))


@dataclass
class Ctx:
    """What a model sees at one scrape."""

    t: float  # seconds since the history began
    step: float  # seconds since the previous scrape
    start: float  # start of the current process
    life: int  # 0 for the first process, then 1, 2, ...
    rng: random.Random
    #: set by the engine while a scrape is served: gauges and counter increments
    gauges: dict[Series, float] = field(default_factory=dict)
    incs: dict[Series, float] = field(default_factory=dict)
    marks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def uptime(self) -> float:
        return self.t - self.start

    def gauge(self, name: str, value: float | None, **labels: str) -> None:
        if value is not None and not math.isnan(value):
            self.gauges[series_key(name, **labels)] = float(value)

    def mark(self, what: str) -> None:
        """Record an event of the history (a threshold crossed), for the verdicts."""
        self.marks.append((self.t, what))

    def inc(self, name: str, by: float, **labels: str) -> None:
        """Add to a counter (created at 0 on first use; reset to 0 in every new process)."""
        key = series_key(name, **labels)
        self.incs[key] = self.incs.get(key, 0.0) + max(0.0, by)


class Model:
    """Part of the app: emits series at every scrape, may kill the process."""

    def on_start(self, ctx: Ctx) -> None:
        """A new process starts: reset in-process state."""

    def emit(self, ctx: Ctx) -> None:
        raise NotImplementedError

    def kills(self, ctx: Ctx) -> str | None:
        """A reason (``"oom"``, ``"crash"``) when the process dies at this scrape."""
        return None


@dataclass
class History:
    """One target's scrapes: ``up`` plus every model's series, with restarts."""

    hours: float
    step: float = 30.0
    job: str = "agents"
    instance: str = "app-1:9464"
    downtime: float = 60.0  # seconds between a death and the next process's first scrape
    restarts_at: Iterable[float] = ()  # planned restarts (deploys), seconds
    seed: int = 1

    def run(self, models: list[Model]) -> tuple[dict[Series, list[float | None]],
                                                 list[tuple[float, str]]]:
        """``({series: value per scrape or None}, [(time, reason) of each death or mark])``."""
        rng = random.Random(self.seed)
        n = int(self.hours * 3600 / self.step) + 1
        planned = sorted(self.restarts_at)
        cols: dict[Series, list[float | None]] = {}
        counters: dict[Series, float] = {}
        deaths: list[tuple[float, str]] = []
        start, life, down_until = 0.0, 0, -1.0
        alive = True
        ctx = Ctx(0.0, self.step, start, life, rng)
        for m in models:
            m.on_start(ctx)
        up_key = series_key("up", job=self.job, instance=self.instance)
        for i in range(n):
            t = i * self.step
            if not alive and t >= down_until:
                alive, life, start = True, life + 1, down_until
                counters = {}
                ctx = Ctx(t, self.step, start, life, rng, marks=ctx.marks)
                for m in models:
                    m.on_start(ctx)
            if alive and planned and t >= planned[0]:
                planned.pop(0)
                alive, down_until = False, t + self.downtime
                deaths.append((t, "restart"))
            ctx.t, ctx.gauges, ctx.incs = t, {}, {}
            if alive:
                for m in models:
                    m.emit(ctx)
                reason = next((r for m in models if (r := m.kills(ctx))), None)
                if reason:
                    alive, down_until = False, t + self.downtime
                    deaths.append((t, reason))
            if not alive:
                _put(cols, up_key, i, n, 0.0)
                continue
            _put(cols, up_key, i, n, 1.0)
            deaths.extend(ctx.marks)
            ctx.marks.clear()
            for key, by in ctx.incs.items():
                counters[key] = counters.get(key, 0.0) + by
            for key, v in counters.items():
                _put(cols, self._label(key), i, n, v)
            for key, v in ctx.gauges.items():
                _put(cols, self._label(key), i, n, v)
        return cols, deaths

    def _label(self, key: Series) -> Series:
        name, labels = key
        return name, tuple(sorted((*labels, ("instance", self.instance), ("job", self.job))))


def _put(cols: dict[Series, list[float | None]], key: Series, i: int, n: int, v: float) -> None:
    col = cols.get(key)
    if col is None:
        col = cols[key] = [None] * n
    col[i] = v


def fmt_value(v: float | None) -> str:
    if v is None:
        return "_"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.9g}"


def promtool_values(values: list[float | None]) -> str:
    """promtool's ``values`` notation: runs of equal values and gaps folded (``5+0x9``,
    ``_x3``); the first missing scrape after a present one is ``stale``, as Prometheus marks
    every series of a target that failed its scrape."""
    out: list[str] = []
    i, n = 0, len(values)
    while i < n:
        if values[i] is None and i > 0 and values[i - 1] is not None:
            out.append("stale")
            i += 1
            continue
        j = i
        while j + 1 < n and values[j + 1] == values[i]:
            j += 1
        run = j - i
        if values[i] is None:
            out.append(f"_x{run + 1}" if run else "_")
        elif run >= 2:
            out.append(f"{fmt_value(values[i])}+0x{run}")
        else:
            out.extend([fmt_value(values[i])] * (run + 1))
        i = j + 1
    return " ".join(out)


def labels_text(key: Series) -> str:
    name, labels = key
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def linear(a: float, b: float, x: float) -> float:
    return a + (b - a) * x


def saturate(x: float) -> float:
    return max(0.0, min(1.0, x))


Fn = Callable[[Ctx], float]
