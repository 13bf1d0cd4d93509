"""The sections of an evidence file: each is one function, listed by name in ``SECTIONS``.

A section is ``fn(state, ctx) -> JSON-able data``; the evidence action runs the sections it
was given in order until its deadline, and a section that raises leaves only its exception
type in the file. Adding a section is one entry in ``SECTIONS`` (the RSS ledger was added
that way when it landed). Sections hold code locations, type names, component names and
numbers, never an object's repr or content.

- ``tracemalloc``: allocation sites (``file:line``) that grew most since the last baseline
  (the previous capture, the start, or the last resolved alert), from
  ``tracemalloc.take_snapshot().statistics("lineno")``; the new sites become the baseline;
- ``components``: every instrumented component's gauges (items, bytes, ...) by kind and
  name, read as a scrape reads them;
- ``ledger``: the RSS ledger (``memexport.process.ledger``): RSS by class;
- ``threads``: the stack of every thread;
- ``referrers``: the types whose instance count grew most, with the types referring to a
  sample of their instances (``referrers.py``);
- ``memray``: a memray capture of the next seconds, as a ``.bin`` file beside (``capture.py``).
"""

from __future__ import annotations

import fnmatch
import math
import os
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memexport.actions.capture import memray_capture
from memexport.actions.catalog import ActionContext
from memexport.actions.referrers import referrer_report

__all__ = ["DEFAULT_SECTIONS", "SECTIONS", "EvidenceState", "Section", "component_table",
           "rss_ledger", "site_stats", "thread_stacks", "tracemalloc_diff"]

#: Most threads whose stacks are written; frames per stack.
MAX_THREADS = 200
MAX_FRAMES = 40

_OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Files whose allocation sites are left out (patterns, as ``tracemalloc.Filter`` takes).
EXCLUDED_FILES = (
    tracemalloc.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
    os.path.join(_OWN, "*"),
)
_CHUNK = 65_536  # traces grouped between two looks at the clock

Sites = dict[str, tuple[int, int]]


@dataclass
class EvidenceState:
    """What an evidence action keeps between runs, and its options."""

    top: int = 25
    start_tracemalloc: bool = False
    memray_seconds: float = 0.0
    referrer_types: int = 5
    baseline: Sites | None = None
    baseline_at: float | None = None
    type_counts: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Section = Callable[[EvidenceState, ActionContext], Any]


def site_stats(deadline: float = math.inf) -> tuple[Sites, int, float, int]:
    """``{"file:line": (bytes, blocks)}`` of every traced site now, the traced total, the
    share of traces grouped before ``deadline`` (sums scaled up from it when below 1) and
    the number of traces.

    The raw traces are grouped by their most recent frame first and only the resulting
    sites are filtered (``Snapshot.filter_traces`` matches a pattern against every trace:
    seconds for a heap of a million blocks)."""
    traces = tracemalloc._get_traces()  # type: ignore[attr-defined]  # take_snapshot()'s
    by: dict[Any, list[int]] = {}
    n = len(traces)
    done = 0
    while done < n:
        end = min(n, done + _CHUNK)
        for _domain, size, frames, _total in traces[done:end]:
            key = frames[0] if frames else None
            entry = by.get(key)
            if entry is None:
                by[key] = [size, 1]
            else:
                entry[0] += size
                entry[1] += 1
        done = end
        if time.perf_counter() > deadline:
            break
    del traces
    scale = n / done if done else 0.0
    excluded: dict[str, bool] = {}
    out: Sites = {}
    total = 0
    for frame, (size, count) in by.items():
        if frame is None:
            continue
        filename = frame[0]
        hit = excluded.get(filename)
        if hit is None:
            hit = excluded[filename] = any(fnmatch.fnmatch(filename, p) for p in EXCLUDED_FILES)
        if hit:
            continue
        site = f"{filename}:{frame[1]}"
        out[site] = (int(size * scale), int(count * scale))
        total += int(size * scale)
    return out, total, done / n if n else 1.0, n


def rebaseline(state: EvidenceState) -> bool:
    """Take the tracemalloc baseline now (if tracing); True if taken."""
    if not tracemalloc.is_tracing():
        return False
    state.baseline, _total, _coverage, _n = site_stats()
    state.baseline_at = time.time()
    return True


def tracemalloc_diff(state: EvidenceState, ctx: ActionContext) -> Any:
    if not tracemalloc.is_tracing():
        if not state.start_tracemalloc:
            return {"tracing": False, "hint": "start_collector(tracemalloc=True), or "
                    "evidence(start_tracemalloc=True) to start it at the first alert"}
        tracemalloc.start(1)
        rebaseline(state)
        return {"tracing": False, "started": True,
                "hint": "tracemalloc started now: the next capture shows what grew"}
    stats, total, coverage, traces = site_stats(ctx.deadline)
    base, base_at = state.baseline, state.baseline_at
    state.baseline, state.baseline_at = stats, time.time()
    rows: list[dict[str, Any]] = []
    for site, (size, count) in stats.items():
        b_size, b_count = base.get(site, (0, 0)) if base is not None else (0, 0)
        rows.append({"site": site, "size_bytes": size, "count": count,
                     "size_diff_bytes": size - b_size, "count_diff": count - b_count})
    if base is not None:
        for site, (b_size, b_count) in base.items():
            if site not in stats:
                rows.append({"site": site, "size_bytes": 0, "count": 0,
                             "size_diff_bytes": -b_size, "count_diff": -b_count})
        rows.sort(key=lambda r: r["size_diff_bytes"], reverse=True)
    else:
        rows.sort(key=lambda r: r["size_bytes"], reverse=True)
    return {"tracing": True, "traced_bytes": total, "sites": len(stats),
            "traces": traces, "coverage": round(coverage, 4),
            "baseline": base is not None,
            "baseline_age_seconds": round(time.time() - base_at, 3) if base_at else None,
            "order": "size_diff_bytes" if base is not None else "size_bytes",
            "top": rows[:state.top]}


def component_table(state: EvidenceState, ctx: ActionContext) -> Any:
    """Every component group's gauges, biggest bytes first."""
    registry = ctx.registry
    kinds = {k.name: k for k in registry.kinds()}
    gauges = {m.name: k for k in kinds.values() for m in k.metrics if m.type == "gauge"}
    budgets = {k.budget_metric: k for k in kinds.values() if k.bytes_metric}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for fam in registry.collect():
        kind = gauges.get(fam.name) or budgets.get(fam.name)
        if kind is None:
            continue
        for labels, value in fam.samples:
            name = labels.get(kind.label, "")
            rest = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != kind.label)
            row = rows.setdefault((kind.name, name), {"kind": kind.name, "name": name})
            row[f"{fam.name}{{{rest}}}" if rest else fam.name] = value
    def size(row: dict[str, Any]) -> float:
        kind = kinds[row["kind"]]
        return float(row.get(kind.bytes_metric or "", 0.0))
    return sorted(rows.values(), key=size, reverse=True)


def rss_ledger(state: EvidenceState, ctx: ActionContext) -> Any:
    """The RSS ledger: the collector's latest (with its age), else read now."""
    from memexport.process import collector as process_collector
    from memexport.process import ledger, reader

    running = getattr(process_collector, "_collector", None)
    latest = getattr(running, "latest", None)
    book = getattr(latest, "ledger", None)
    if book is not None:
        age: float | None = round(time.time() - latest.timestamp, 3)  # type: ignore[union-attr]
    else:
        book = ledger.read_ledger(ctx.registry, reader.current(), None)
        age = 0.0
    return {"rss_bytes": book.rss, "classes": book.classes, "components": book.components,
            "clipped_bytes": book.clipped, "age_seconds": age}


def thread_stacks(state: EvidenceState, ctx: ActionContext) -> Any:
    threads = {t.ident: t for t in threading.enumerate()}
    out = []
    for ident, frame in list(sys._current_frames().items())[:MAX_THREADS]:
        t = threads.get(ident)
        out.append({"thread": t.name if t is not None else "?", "ident": ident,
                    "daemon": t.daemon if t is not None else None,
                    "current": ident == threading.get_ident(),
                    "stack": traceback.format_stack(frame, limit=MAX_FRAMES)})
    return out


def _referrers(state: EvidenceState, ctx: ActionContext) -> Any:
    return referrer_report(state, ctx)


def _memray(state: EvidenceState, ctx: ActionContext) -> Any:
    return memray_capture(state.memray_seconds, ctx)


#: Every section by name; an evidence action writes those it is given, in this order.
SECTIONS: dict[str, Section] = {
    "tracemalloc": tracemalloc_diff,
    "components": component_table,
    "ledger": rss_ledger,
    "threads": thread_stacks,
    "referrers": _referrers,
    "memray": _memray,
}
DEFAULT_SECTIONS = ("tracemalloc", "components", "ledger", "threads")
