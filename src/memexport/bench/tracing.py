"""A tracemalloc tick on a large heap: ``ProcessCollector(tracemalloc=True).tick()``, the
public entry, at 800k traced blocks (50k with --quick), whatever the tick does inside.

tracemalloc is started (1 frame) before the heap of ``BLOCKS`` strings is built, and stopped
and the heap freed after, so other cases are not slowed. The figure is the median CPU time
of the calling thread over a few ticks (the tick runs on the collector thread in an app);
the note gives the wall time. A second figure is the share of traces the tick grouped
(``memexport_tracemalloc_coverage_ratio``), which its time box may cut; before that metric
existed the tick had no time box and walked every trace. Targets (issue 12): at most 1 s,
with every trace grouped (the time box is the net for larger heaps, not how 800k meets 1 s).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from typing import NamedTuple

from memexport.bench import compat
from memexport.bench.model import Entry, Measure, at_least, at_most

__all__ = ["cases"]


def _coverage(collector: object) -> float | None:
    families = getattr(collector, "families", None)
    for fam in families() if families is not None else ():
        if getattr(fam, "name", "") == "memexport_tracemalloc_coverage_ratio":
            for sample in getattr(fam, "samples", None) or []:
                value = sample[1] if isinstance(sample, tuple) else getattr(sample, "value",
                                                                            None)
                if value is not None:
                    return float(value)
    return None


class Ticks(NamedTuple):
    cpu: float
    wall: float
    coverage: float | None
    blocks: int


def _tick(blocks: int, ticks: int) -> Ticks:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    heap = [str(i) * 3 for i in range(blocks)]
    try:
        collector = compat.process_collector(compat.new_registry(), tracemalloc=True)
        cpu, wall = [], []
        for _ in range(ticks):
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            collector.tick()
            cpu.append(time.thread_time_ns() - c0)
            wall.append(time.perf_counter_ns() - w0)
        coverage = _coverage(collector)
        blocks_traced = len(heap)
    finally:
        del heap
        if started:
            tracemalloc.stop()
        gc.collect()
    return Ticks(statistics.median(cpu), statistics.median(wall), coverage, blocks_traced)


def cases(quick: bool) -> list[Entry]:
    blocks, ticks = (50_000, 1) if quick else (800_000, 3)
    label = f"{blocks // 1000}k"
    memo: list[Ticks] = []

    def run() -> Ticks:
        if not memo:
            memo.append(_tick(blocks, ticks))
        return memo[0]

    def cpu() -> tuple[float, str]:
        r = run()
        return r.cpu, (f"{r.blocks:,} blocks in the heap; wall {r.wall / 1e6:,.0f} ms; "
                       f"median of {ticks} ticks")

    def covered() -> tuple[float, str]:
        value = run().coverage
        if value is None:  # no time box in this version: the tick walks every trace
            return 1.0, "not exported (no time box: every trace grouped)"
        return value, "memexport_tracemalloc_coverage_ratio after the last tick"

    return [Measure(f"process: tracemalloc tick, {label} traced blocks (CPU)", cpu, "ns",
                    at_most(1e9)),
            Measure(f"process: tracemalloc tick, {label} traced blocks, share grouped",
                    covered, "ratio", at_least(1.0, "ratio"))]
