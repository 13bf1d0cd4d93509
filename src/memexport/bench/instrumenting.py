"""What instrumenting one object costs, for every kind and shape, with none and with many of
its kind alive (the cost must stay flat as the number alive grows).

Per shape: bare objects are built beforehand; the figure is the median, over batches, of
the CPU time of instrumenting a batch under one name divided by its size, with the cyclic
GC enabled (its collections are part of what registration costs an app). The same is then
measured with ``ALIVE`` instrumented objects of that name alive. Targets (issue 12): at most
10 µs for a cache and 50 µs for a pool; flat taken as at most 1.5x with them alive (the
noise of this shared machine is about ±20 %).
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any

from memexport.bench import compat
from memexport.bench.model import Entry, Measure, Target, at_most, ratio_at_most
from memexport.bench.shapes import Shape, available

__all__ = ["cases", "instrument_cost"]

TARGETS: dict[str, Target] = {"cache": at_most(10_000), "pool": at_most(50_000)}
FLAT = ratio_at_most(1.5)


def instrument_cost(shape: Shape, reg: Any, name: str, batch: int, batches: int) -> float:
    """Median ns per instrumented object over ``batches`` batches (objects freed after)."""
    per_object = []
    for _ in range(batches):
        bare = [shape.make() for _ in range(batch)]
        out: list[Any] = [None] * batch
        instrument = shape.instrument
        gc_was = gc.isenabled()
        gc.enable()
        try:
            t0 = time.thread_time_ns()
            for i in range(batch):
                out[i] = instrument(bare[i], name, reg)
            dt = time.thread_time_ns() - t0
        finally:
            if not gc_was:
                gc.disable()
        per_object.append(dt / batch)
        del out, bare
        gc.collect()
    return statistics.median(per_object)


def cases(quick: bool) -> list[Entry]:
    alive = 1_000 if quick else 10_000
    batch, batches = (100, 3) if quick else (300, 5)
    shapes, skipped = available("instrument")
    cost: dict[str, tuple[float, float]] = {}

    def figures(shape: Shape) -> tuple[float, float]:
        if shape.label not in cost:
            reg = compat.new_registry()
            name = "bench_instrument"
            keep = [shape.instrument(shape.make(), name, reg) for _ in range(2)]  # per class
            empty = instrument_cost(shape, reg, name, batch, batches)
            keep += [shape.instrument(shape.make(), name, reg) for _ in range(alive)]
            full = instrument_cost(shape, reg, name, batch, batches)
            cost[shape.label] = (empty, full)
            del keep
            gc.collect()
        return cost[shape.label]

    out: list[Entry] = []
    for shape in shapes:
        base = f"instrument: {shape.label}, none alive"

        def empty(shape: Shape = shape) -> float:
            return figures(shape)[0]

        def full(shape: Shape = shape) -> float:
            return figures(shape)[1]

        out.append(Measure(base, empty, "ns", TARGETS.get(shape.kind)))
        out.append(Measure(f"instrument: {shape.label}, {alive:,} alive", full, "ns", FLAT,
                           baseline=base))
    return out + list(skipped)
