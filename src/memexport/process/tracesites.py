"""tracemalloc on the collector thread: traced bytes, the top sites, and growing sites.

One snapshot per tick, grouped by allocation line first (a dict over the raw traces) and only
then filtered: rows whose file is tracemalloc's, importlib's or this package's are dropped
(a few thousand rows, not every trace as ``Snapshot.filter_traces`` does). The grouping loop
allocates no object per trace, since tracemalloc would trace each one. The reading is
time-boxed in CPU time of the collector thread (``time.thread_time``: a loaded host's
preemption does not shrink it), from the moment tracemalloc has handed over its traces (that
copy, one C call linear in the heap, cannot stop early; on a slow host it took most of a box
that included it): past the deadline the traces not yet grouped are left out
and the sums scaled up from the share grouped (``memexport_tracemalloc_coverage_ratio`` says
how much); the tick's wall time stays exported as
``memexport_collector_duration_seconds{collector="tracemalloc"}``. Growth between ticks
feeds a ``GrowthRanker``: the leak suspects.

The same pass sums the traces over 512 bytes (pymalloc's limit): Python allocations that
live in the C allocator, which the RSS ledger moves from ``malloc_used`` to Python objects.
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import os
import time
import tracemalloc as _tm
from dataclasses import dataclass, field

from memexport.core.model import Family
from memexport.process.suspects import GrowthRanker

__all__ = ["SMALL_REQUEST_THRESHOLD", "TraceReading", "TraceSites", "group_traces"]

#: Names of the metrics this module exports (the shipped dashboards read them).
TRACED_BYTES = "memexport_tracemalloc_traced_bytes"
PEAK_BYTES = "memexport_tracemalloc_peak_bytes"
OVERHEAD_BYTES = "memexport_tracemalloc_overhead_bytes"
COVERAGE_RATIO = "memexport_tracemalloc_coverage_ratio"
SITE_BYTES = "memexport_tracemalloc_site_bytes"
SITE_GROWTH_BYTES = "memexport_tracemalloc_site_growth_bytes"

#: Requests up to this size are served by pymalloc; larger ones by the C allocator.
SMALL_REQUEST_THRESHOLD = 512
_CHUNK = 65_536  # traces grouped between two looks at the clock
_OWN_DIR = os.path.dirname(os.path.abspath(__file__))
#: Files whose allocation sites are never reported (patterns, as tracemalloc.Filter takes).
EXCLUDED_FILES = (
    _tm.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
    os.path.join(_OWN_DIR, "*"),
)

Frame = tuple[str, int]


@dataclass
class TraceReading:
    """One tick of tracemalloc: totals, sites by bytes, and what the tick covered."""

    traced: int
    peak: int
    overhead: int  # memory tracemalloc itself uses (its tables; in the C heap)
    large: int  # bytes in traces over 512 B (scaled up with coverage < 1)
    small_blocks: int  # traces of 512 B or less (pymalloc blocks), scaled likewise
    coverage: float  # share of traces grouped within the time box
    traces: int
    sites: dict[str, float] = field(default_factory=dict)  # "file.py:line" -> bytes


def group_traces(traces: list[tuple[int, int, tuple[Frame, ...], int]], deadline: float
                 ) -> tuple[dict[Frame | None, int], int, int, int]:
    """Bytes per most recent frame, bytes and count of large traces, over the traces grouped
    before ``deadline`` (``time.thread_time()``, this thread's CPU seconds); returns
    (by_frame, large, n_large, grouped).

    The loop over the traces allocates nothing (an ``int`` made per trace would be traced
    too: tracemalloc's hooks cost several times the loop): each trace's size, an ``int``
    that already exists, is appended to its stack's list; the lists are summed in C and
    emptied after each chunk, so they never hold more than a chunk.
    """
    by: dict[tuple[Frame, ...], list[int]] = {}
    get = by.get
    by_frame: dict[Frame | None, int] = {}
    large = n_large = 0
    n = len(traces)
    done = 0
    while done < n:
        end = min(n, done + _CHUNK)
        for _domain, size, frames, _total in traces[done:end]:
            sizes = get(frames)
            if sizes is None:
                by[frames] = sizes = []
            sizes.append(size)
        done = end
        chunk_large, chunk_n = _fold(by, by_frame)
        large += chunk_large
        n_large += chunk_n
        if time.thread_time() > deadline:
            break
    return by_frame, large, n_large, done


def _fold(by: dict[tuple[Frame, ...], list[int]], by_frame: dict[Frame | None, int]
          ) -> tuple[int, int]:
    """Add the sizes listed per stack to ``by_frame`` and empty the lists; returns the bytes
    and count of the large traces among them."""
    limit = SMALL_REQUEST_THRESHOLD
    large = n_large = 0
    for frames, sizes in by.items():  # a list per distinct stack: few
        if not sizes:
            continue
        if max(sizes) > limit:
            sizes.sort()
            first = bisect.bisect_right(sizes, limit)
            n_large += len(sizes) - first
            large += sum(itertools.islice(sizes, first, None))
        key = frames[0] if frames else None
        by_frame[key] = by_frame.get(key, 0) + sum(sizes)
        sizes.clear()
    return large, n_large


class TraceSites:
    """Reads tracemalloc once per tick; ``top`` sites by size, suspects by growth."""

    def __init__(self, top: int = 10, *, suspects: GrowthRanker | None = None) -> None:
        self.top = top
        self.suspects = suspects if suspects is not None else GrowthRanker(top=top)
        self._excluded: dict[str, bool] = {}

    def _is_excluded(self, filename: str) -> bool:
        hit = self._excluded.get(filename)
        if hit is None:
            hit = any(fnmatch.fnmatch(filename, p) for p in EXCLUDED_FILES)
            if len(self._excluded) < 100_000:
                self._excluded[filename] = hit
        return hit

    def read(self, budget_seconds: float) -> TraceReading | None:
        """A reading now, or None when tracemalloc is not tracing (series absent)."""
        if not _tm.is_tracing():
            return None
        current, peak = _tm.get_traced_memory()
        overhead = _tm.get_tracemalloc_memory()
        traces = _tm._get_traces()  # type: ignore[attr-defined]  # what take_snapshot() wraps
        # The box starts after tracemalloc's copy: that copy is one C call, linear in the
        # heap and not divisible; the grouping is what can stop early.
        deadline = time.thread_time() + budget_seconds
        by_frame, large, n_large, grouped = group_traces(traces, deadline)
        n = len(traces)
        del traces
        scale = n / grouped if grouped else 0.0
        sites: dict[str, float] = {}
        for frame, size in by_frame.items():
            if frame is None:
                label = "<unknown>:0"
            else:
                if self._is_excluded(frame[0]):
                    continue
                label = f"{os.path.basename(frame[0])}:{frame[1]}"
            sites[label] = sites.get(label, 0.0) + size * scale
        self.suspects.update(sites)
        return TraceReading(traced=int(current), peak=int(peak), overhead=int(overhead),
                            large=int(large * scale), small_blocks=int((grouped - n_large) * scale),
                            coverage=grouped / n if n else 1.0,
                            traces=n, sites=sites)

    def families(self, r: TraceReading) -> list[Family]:
        top = sorted(r.sites.items(), key=lambda kv: (-kv[1], kv[0]))[: self.top]
        out = [
            Family(TRACED_BYTES, "gauge",
                   "Bytes currently allocated by Python and traced by tracemalloc.", "bytes",
                   [({}, float(r.traced))]),
            Family(PEAK_BYTES, "gauge",
                   "Peak of traced bytes since tracemalloc started.", "bytes",
                   [({}, float(r.peak))]),
            Family(OVERHEAD_BYTES, "gauge",
                   "Memory tracemalloc itself uses for its traces (in the C heap).", "bytes",
                   [({}, float(r.overhead))]),
            Family(COVERAGE_RATIO, "gauge",
                   "Share of traces grouped by the last tick within its time box (1 = all; "
                   "below 1 the site sizes are scaled up from a sample).", "ratio",
                   [({}, r.coverage)]),
            Family(SITE_BYTES, "gauge",
                   "Bytes traced by tracemalloc per allocation site (top N by size).", "bytes",
                   [({"site": s}, float(n)) for s, n in top]),
        ]
        growth = Family(SITE_GROWTH_BYTES, "gauge",
                        "Leak suspects: growth of the allocation sites that grew in several "
                        "consecutive collector ticks, since their growth began (top N; the "
                        "rest summed in site=\"__overflow__\").", "bytes")
        for site, grown, _value in self.suspects.suspects():
            growth.add({"site": site}, float(grown))
        out.append(growth)
        return out
