"""Bench case for a tracemalloc tick on a large heap (800k traced blocks; 50k with --quick).

Starts tracemalloc (1 frame) and keeps it on until the process exits, so this module runs
last. The tick groups the traces by line first and filters the few rows after; before
issue 12 it filtered every trace against five filename patterns (about 10 s of CPU at 800k).
"""

from __future__ import annotations

import time
import tracemalloc

from memexport.bench import Case
from memexport.process.tracesites import TraceSites

_HEAP: list[str] = []


def cases(quick: bool) -> list[Case]:
    blocks = 50_000 if quick else 800_000
    sites = TraceSites(10)

    def tick(n: int) -> None:
        if not _HEAP:  # built on first use (calibration), not when another case is chosen
            if not tracemalloc.is_tracing():
                tracemalloc.start(1)
            _HEAP.extend(str(i) * 3 for i in range(blocks))
        for _ in range(n):
            sites.read(60.0)  # no time box: the whole heap is grouped

    label = "800k" if blocks == 800_000 else f"{blocks // 1000}k"
    return [Case(f"process: tracemalloc tick, {label} traced blocks (CPU)", tick,
                 target="<= 1 s at 800k blocks", clock=time.thread_time_ns)]
