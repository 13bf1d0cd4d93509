"""The collector's sampling at 1,000 caches of 100 entries each: the time the sizer job takes
in one tick and the share of components it sized (``memexport_sizer_coverage_ratio``).

Dict caches of chat-message values are instrumented under a name each, with deep sizes
sampled by the collector (the default for a dict). Ticks are called directly, as the
collector thread does; the figures are read from a scrape
(``memexport_collector_duration_seconds{collector="sizer"}`` and the coverage). Targets
(issue 12): sampling within the tick's 50 ms budget (taken as at most 55 ms: the job stops at
the first entry past its deadline) and the coverage exported.
"""

from __future__ import annotations

from typing import Any

import memexport
from memexport.bench import compat
from memexport.bench.model import Entry, Measure, at_least, at_most

__all__ = ["cases", "gauge"]

CACHES, ENTRIES = 1_000, 100
TICKS = 4  # a minute of ticks at the default 15 s interval


def gauge(prom: Any, name: str, **labels: str) -> float | None:
    """The value of one sample in a scrape of ``prom``, or None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(compat.exposition(prom)):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def _run() -> dict[str, Any]:
    reg = compat.new_registry(max_names_per_kind=CACHES + 10)
    prom = compat.prometheus_registry(reg)
    keep = []
    for i in range(CACHES):
        d = {f"k{j}": {"role": "assistant", "content": f"answer {i} {j} " + "x" * 200}
             for j in range(ENTRIES)}
        keep.append(memexport.cache(d, name=f"bench_sampled{i}", registry=reg))
    compat.exposition(prom)  # the first scrape, with its time-boxed first reads
    collector = compat.process_collector(reg)
    sizer: list[float | None] = []
    coverage: list[float | None] = []
    for _ in range(TICKS):
        collector.tick()
        sizer.append(gauge(prom, "memexport_collector_duration_seconds", collector="sizer"))
        coverage.append(gauge(prom, "memexport_sizer_coverage_ratio"))
    del keep
    return {"sizer": sizer, "coverage": coverage}


def cases(quick: bool) -> list[Entry]:
    memo: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        if not memo:
            memo.update(_run())
        return memo

    def sizer_time() -> tuple[float, str]:
        times = run()["sizer"]
        if times[0] is None:
            return float("nan"), "memexport_collector_duration_seconds{collector=\"sizer\"} absent"
        shown = ", ".join(f"{t * 1e3:.1f}" for t in times if t is not None)
        return max(t for t in times if t is not None) * 1e9, f"slowest of ticks: {shown} ms"

    def exported() -> tuple[float, str]:
        cov = run()["coverage"]
        if cov[-1] is None:
            return 0.0, "memexport_sizer_coverage_ratio absent"
        shown = ", ".join(f"{c:.3f}" for c in cov if c is not None)
        return 1.0, f"coverage after each of {TICKS} ticks: {shown}"

    def covered() -> tuple[float, str]:
        cov = run()["coverage"]
        return (float("nan") if cov[-1] is None else cov[-1]), f"after {TICKS} ticks"

    where = f"{CACHES:,} caches of {ENTRIES} entries"
    return [
        Measure(f"sampling: sizer time per tick, {where}", sizer_time, "ns", at_most(55e6)),
        Measure(f"sampling: memexport_sizer_coverage_ratio exported, {where}", exported, "",
                at_least(1, "")),
        Measure(f"sampling: sizer coverage after {TICKS} ticks, {where}", covered, "ratio"),
    ]
