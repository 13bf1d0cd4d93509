"""A tracemalloc tick on a large heap: ``ProcessCollector(tracemalloc=True).tick()``, the
public entry, at 800k traced blocks (50k with --quick), whatever the tick does inside.

tracemalloc is started (1 frame) before the heap of ``BLOCKS`` strings is built, and stopped
and the heap freed after, so other cases are not slowed. The figure is the median CPU time
of the calling thread over a few ticks (the tick runs on the collector thread in an app);
the note gives the wall time and the share of traces the tick grouped, which its time box
may cut (``memexport_tracemalloc_coverage_ratio``; absent before that metric existed).
Target (issue 12): at most 1 s.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc

from memexport.bench import compat
from memexport.bench.model import Entry, Measure, at_most

__all__ = ["cases"]


def _coverage(collector: object) -> str:
    families = getattr(collector, "families", None)
    if families is None:
        return "coverage not exported"
    for fam in families():
        if getattr(fam, "name", "") == "memexport_tracemalloc_coverage_ratio":
            samples = getattr(fam, "samples", None) or []
            for sample in samples:
                value = sample[1] if isinstance(sample, tuple) else getattr(sample, "value",
                                                                            None)
                if value is not None:
                    return f"coverage {float(value):.2f}"
    return "coverage not exported"


def _tick(blocks: int, ticks: int) -> tuple[float, str]:
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
        note = (f"{len(heap):,} blocks in the heap; wall {statistics.median(wall) / 1e6:,.0f} "
                f"ms; {_coverage(collector)}; median of {ticks} ticks")
    finally:
        del heap
        if started:
            tracemalloc.stop()
        gc.collect()
    return statistics.median(cpu), note


def cases(quick: bool) -> list[Entry]:
    blocks, ticks = (50_000, 1) if quick else (800_000, 3)
    label = f"{blocks // 1000}k"
    return [Measure(f"process: tracemalloc tick, {label} traced blocks (CPU)",
                    lambda: _tick(blocks, ticks), "ns", at_most(1e9))]
