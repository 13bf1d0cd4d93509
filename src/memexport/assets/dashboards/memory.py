"""Dashboard "memexport / Where memory goes": the RSS ledger, retention, cgroup OOM kills and
pressure, leak suspects (growing allocation sites)."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from memexport.assets.dashboards.names import STANDARD, cgroup, collector, ledger, tracesites
from memexport.assets.dashboards.panels import (
    BYTES,
    COUNT,
    RATIO,
    dashboard,
    dashed,
    render,
    rows,
    stat,
    table,
    target,
    thresholds,
    timeseries,
)
from memexport.assets.dashboards.view import View

__all__ = ["TITLE", "build"]

TITLE = "memexport / Where memory goes"
LEDGER = ledger.LEDGER_BYTES


class _Q:
    """The memory dashboard's queries for one view."""

    def __init__(self, v: View) -> None:
        self.v = v
        self.rss = v.metric(STANDARD.RSS)
        self.total = f"sum {v.by()} ({v.metric(LEDGER)})"
        self.unattributed_share = f"{self.cls('unattributed')} / {self.total}"
        retained = v.metric(LEDGER, extra='class=~"malloc_free|pymalloc_free"')
        self.retained_share = f"sum {v.by()} ({retained}) / {self.total}"
        self.psi_avg60 = v.metric(cgroup.PRESSURE_AVERAGE, extra='window="60s"')

    def cls(self, name: str) -> str:
        """One ledger class per target."""
        matcher = f'class="{name}"'
        return f"sum {self.v.by()} ({self.v.metric(LEDGER, extra=matcher)})"


def _stacked(panel: Any) -> Any:
    """Stack the series of ``panel`` (the ledger's classes add up to RSS)."""
    return panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(60)


def _unstacked(regex: str) -> tuple[str, list[dm.DynamicConfigValue]]:
    """An override drawing the matching series as a dashed line outside the stack."""
    name, props = dashed(regex)
    return name, [*props, dm.DynamicConfigValue("custom.stacking",
                                                {"mode": "none", "group": "A"})]


def _ledger(v: View, q: _Q) -> list[Any]:
    return [
        _stacked(timeseries(
            "RSS ledger (stacked, sums to RSS)",
            [target(v, f"sum by (class) ({v.metric(LEDGER)})", "{{class}}"),
             target(v, f"sum({q.rss})", "rss (process_resident_memory_bytes)")],
            BYTES,
            description="Resident memory by ledger class, summed over the selected instances. "
            "The stack adds up to RSS (dashed line; read a moment apart, within 3 %). "
            "unattributed is what no source explains: native libraries, direct mmaps, stacks.",
            w=16, h=10, overrides=[_unstacked("rss.*")],
        )),
        stat("Unattributed share (max)", [target(v, f"max({q.unattributed_share})", "max")],
             RATIO, description="The largest unattributed / RSS among the selected instances.",
             steps=thresholds((0.2, "orange"), (0.4, "red")), w=4, h=5),
        stat("Retained share (max)", [target(v, f"max({q.retained_share})", "max")], RATIO,
             description="The largest share of RSS that is free memory the allocators keep "
             "(glibc malloc_free + pymalloc_free).",
             steps=thresholds((0.25, "orange"), (0.5, "red")), w=4, h=5),
        timeseries("Unattributed share by instance", [target(v, q.unattributed_share)], RATIO,
                   description="Unattributed / RSS per instance. A share that keeps growing "
                   "while Python objects stay flat is a native leak (alert "
                   "MemexportUnattributedMemoryGrowing).", w=8),
        timeseries("Unattributed memory", [target(v, q.cls("unattributed"))], BYTES,
                   description="The ledger's remainder per instance, never negative.", w=8),
        timeseries("Components by kind",
                   [target(v, f"sum {v.by('kind')} "
                              f"({v.metric(ledger.LEDGER_COMPONENT_BYTES)})",
                           "{{instance}} {{kind}}")], BYTES,
                   description="The ledger's components class by kind; a component kept in an "
                   "agent's memory store is counted once, under its own kind.", w=8),
        timeseries("Ledger clipped bytes",
                   [target(v, f"max {v.by()} ({v.metric(ledger.LEDGER_CLIPPED_BYTES)})")],
                   BYTES, description="What the sources reported beyond RSS and the ledger "
                   "left out (pages returned to the OS, untouched or swapped). Large values "
                   "mean the ledger's unattributed class is a lower bound.", w=12),
        timeseries("Ledger sum vs RSS", [target(v, f"{q.total} / max {v.by()} ({q.rss})")],
                   RATIO, description="The ledger's total (VmRSS) over "
                   "prometheus_client's RSS (read separately): 1 within the documented "
                   "tolerance.", min_value=None, w=12),
    ]


def _retention(v: View, q: _Q) -> list[Any]:
    return [
        timeseries("Allocator free memory (retained)",
                   [target(v, q.cls("malloc_free"), "{{instance}} glibc free"),
                    target(v, q.cls("pymalloc_free"), "{{instance}} pymalloc free"),
                    target(v, q.cls("malloc_used"), "{{instance}} glibc used (native)")], BYTES,
                   description="Free memory the allocators keep resident (glibc's free chunks, "
                   "pymalloc's free arena space) and glibc's in-use memory that is not Python "
                   "objects. Retention that falls after malloc_trim was fragmentation."),
        timeseries("Retained share of RSS", [target(v, q.retained_share)], RATIO,
                   description="Allocator free memory / RSS. Alert "
                   "MemexportAllocatorRetentionHigh fires when it is high near the limit (by "
                   "default above 25 % with RSS above 70 % of the limit).",
                   steps=thresholds((0.25, "orange"), (0.5, "red"))),
    ]


def _cgroup(v: View, q: _Q) -> list[Any]:
    limit = f"max {v.by()} ({v.metric(collector.LIMIT_BYTES)})"
    return [
        timeseries("cgroup memory events",
                   [target(v, v.rate(cgroup.MEMORY_EVENTS, by=("event",), fn="increase"),
                           "{{instance}} {{event}}")], COUNT,
                   description="OOM kills (oom_kill), OOM events, throttling over memory.high "
                   "(high) and hits of the limit (max) in the cgroup, per interval. An oom_kill "
                   "while the target answers is a worker or child killed (MemexportOOMKill).",
                   w=8),
        timeseries("Memory pressure (PSI)",
                   [target(v, v.rate(cgroup.PRESSURE_SECONDS, by=("kind", "scope")),
                           "{{instance}} {{kind}} ({{scope}})"),
                    target(v, f"max {v.by('kind', 'scope')} ({q.psi_avg60})",
                           "{{instance}} {{kind}} avg60 ({{scope}})")], RATIO,
                   description="Share of time tasks stalled waiting for memory: some = at "
                   "least one, full = all. scope=host on cgroup v1 hosts "
                   "(/proc/pressure/memory).", w=8),
        timeseries("cgroup memory by type",
                   [target(v, f"max {v.by('stat')} ({v.metric(cgroup.MEMORY_STAT)})",
                           "{{instance}} {{stat}}")], BYTES,
                   description="memory.stat of the cgroup: anon, file (page cache), kernel, "
                   "sock, shmem.", w=8),
        timeseries("cgroup usage vs limit",
                   [target(v, f"max {v.by()} ({v.metric(cgroup.MEMORY_USAGE)})",
                           "{{instance}} usage"),
                    target(v, f"max {v.by()} ({v.metric(cgroup.MEMORY_HIGH)})",
                           "{{instance}} high"),
                    target(v, limit, "{{instance}} limit"),
                    target(v, f"max {v.by()} ({q.rss})", "{{instance}} rss")], BYTES,
                   description="Memory charged to the cgroup (every process in it, page cache "
                   "included) against memory.high (cgroup v2) and the limit, next to the "
                   "target's own RSS.", overrides=[dashed(".* (limit|high)")], w=24),
    ]


def _suspects(v: View, q: _Q) -> list[Any]:
    growth = v.metric(tracesites.SITE_GROWTH_BYTES, extra='site!="__overflow__"')
    return [
        table("Top growing allocation sites",
              [target(v, f"topk(10, max by (site) ({growth}))", table=True)], BYTES,
              description="Allocation sites (file.py:line) that grew in 3 consecutive "
              "collector ticks, by growth since then (tracemalloc opt-in).",
              rename={"Value": "grown"}),
        timeseries("Growing allocation sites over time",
                   [target(v, f"topk(10, max {v.by('site')} ({growth}))",
                           "{{instance}} {{site}}")], BYTES,
                   description="Growth of the suspect sites; a line that climbs for hours is "
                   "the leak."),
        timeseries("tracemalloc coverage and overhead",
                   [target(v, f"min {v.by()} ({v.metric(tracesites.COVERAGE_RATIO)})",
                           "{{instance}} coverage")], RATIO,
                   description="Share of traces grouped within the tick's time box (1 = all).",
                   max_value=1, w=12),
        timeseries("tracemalloc overhead",
                   [target(v, f"max {v.by()} ({v.metric(tracesites.OVERHEAD_BYTES)})")], BYTES,
                   description="Memory tracemalloc uses for its own tables (counted in "
                   "malloc_used).", w=12),
    ]


def build(v: View) -> dict[str, Any]:
    """The where-memory-goes dashboard as Grafana JSON."""
    q = _Q(v)
    d = dashboard(
        v, "memory", TITLE,
        "Where the resident memory of memexport-instrumented Python apps goes: the RSS ledger "
        "(instrumented components, other Python objects, allocator free memory, native "
        "allocations, file pages, and the unattributed remainder), allocator retention, OOM "
        "kills and memory pressure of the cgroup, and the allocation sites that keep "
        "growing. See docs/ledger.md for each class's source.",
    )
    return render(rows(d, ("Ledger", _ledger(v, q)), ("Retention", _retention(v, q)),
                       ("cgroup: OOM kills and pressure", _cgroup(v, q)),
                       ("Leak suspects", _suspects(v, q))))
