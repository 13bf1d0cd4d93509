"""Memory and GC-tracked objects per component, for every kind and shape.

For each shape, ``N`` bare objects are built (with tracemalloc tracing), then each is
instrumented under one name (the original dropped where instrumenting returns a new object),
scraped once and given one collector tick; the figures are the differences in traced bytes
and in ``len(gc.get_objects())``, divided by ``N``. Two objects of the name were instrumented,
scraped and ticked before, so once-per-name and once-per-class costs (a proxy class, a
patched class, lazy imports) are not in the figure; one row shows a cache per name instead.
Targets (issue 12): at most 1 KiB and 5 GC-tracked objects per component.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from memexport.bench import compat
from memexport.bench.model import Entry, Measure, at_most
from memexport.bench.shapes import Shape, available

__all__ = ["cases", "per_component"]

BYTES = at_most(1024, "B")
OBJECTS = at_most(5, "objects")


def per_component(shape: Shape, n: int, names: Callable[[int], str] | None = None
                  ) -> tuple[float, float]:
    """(bytes, GC-tracked objects) added per instrumented object of ``shape``."""
    reg = compat.new_registry(max_names_per_kind=n + 10)
    prom = compat.prometheus_registry(reg)
    collector = compat.process_collector(reg)
    label = "bench_" + "".join(ch if ch.isalnum() else "_" for ch in shape.label)[:60]
    name_of = names or (lambda i: label)
    warm = [shape.instrument(shape.make(), label, reg) for _ in range(2)]
    compat.exposition(prom)
    collector.tick()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    try:
        bare: list[Any] = [shape.make() for _ in range(n)]
        out: list[Any] = [None] * n
        gc.collect()
        m0 = tracemalloc.get_traced_memory()[0]
        g0 = len(gc.get_objects())
        for i in range(n):
            out[i] = shape.instrument(bare[i], name_of(i), reg)
            bare[i] = None  # kept alive by the instrumented object when it wraps it
        compat.exposition(prom)
        collector.tick()
        gc.collect()
        m1 = tracemalloc.get_traced_memory()[0]
        g1 = len(gc.get_objects())
    finally:
        if started:
            tracemalloc.stop()
    del out, bare, warm
    return (m1 - m0) / n, (g1 - g0) / n


def cases(quick: bool) -> list[Entry]:
    n = 300 if quick else 1000
    shapes, skipped = available("memory")
    results: dict[str, tuple[float, float]] = {}

    def figures(shape: Shape, names: Callable[[int], str] | None = None,
                key: str = "") -> tuple[float, float]:
        k = shape.label + key
        if k not in results:
            results[k] = per_component(shape, n, names)
        return results[k]

    out: list[Entry] = []
    for shape in shapes:
        def mem(shape: Shape = shape) -> tuple[float, str]:
            return figures(shape)[0], f"{n:,} components of one name"

        def objs(shape: Shape = shape) -> tuple[float, str]:
            return figures(shape)[1], f"{n:,} components of one name"

        out.append(Measure(f"memory: {shape.label}, bytes per component", mem, "B", BYTES))
        out.append(Measure(f"memory: {shape.label}, GC objects per component", objs,
                           "objects", OBJECTS))
    caches = [s for s in shapes if s.label == "cache: cachetools LRUCache"] or shapes[:1]
    for shape in caches:
        def own_name(i: int, shape: Shape = shape) -> str:
            return f"bench_mem_{i}"

        def mem_named(shape: Shape = shape) -> tuple[float, str]:
            return (figures(shape, own_name, "named")[0],
                    "per-name costs included (a group, its series, a class per name)")

        def objs_named(shape: Shape = shape) -> tuple[float, str]:
            return figures(shape, own_name, "named")[1], "per-name costs included"

        out.append(Measure(f"memory: {shape.label}, a name each, bytes per component",
                           mem_named, "B"))
        out.append(Measure(f"memory: {shape.label}, a name each, GC objects per component",
                           objs_named, "objects"))
    return out + list(skipped)
