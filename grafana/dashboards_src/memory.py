"""Dashboard "memexport / Where memory goes": the RSS ledger, retention, cgroup OOM kills and
pressure, leak suspects (growing allocation sites)."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards_src.common import (
    BYTES,
    COUNT,
    RATIO,
    dashboard,
    dashed,
    metric,
    rate,
    render,
    row,
    stat,
    table,
    target,
    thresholds,
    timeseries,
)

UID = "memexport-memory"
TITLE = "memexport / Where memory goes"

LEDGER = "memexport_memory_ledger_bytes"
RSS = metric("process_resident_memory_bytes")
TOTAL_I = f"sum by (instance) ({metric(LEDGER)})"


def _class(name: str, by: str = "instance") -> str:
    selector = metric(LEDGER, extra=f'class="{name}"')
    return f"sum by ({by}) ({selector})"


UNATTRIBUTED_SHARE = f"{_class('unattributed')} / {TOTAL_I}"
RETAINED_SEL = metric(LEDGER, extra='class=~"malloc_free|pymalloc_free"')
RETAINED = f"sum by (instance) ({RETAINED_SEL})"
PSI_AVG60 = metric("memexport_memory_pressure_average_ratio", extra='window="60s"')
RETAINED_SHARE = f"{RETAINED} / {TOTAL_I}"


def _stacked(panel: Any) -> Any:
    """Stack the series of ``panel`` (the ledger's classes add up to RSS)."""
    return panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(60)


def _unstacked(regex: str) -> tuple[str, list[dm.DynamicConfigValue]]:
    """An override drawing the matching series as a dashed line outside the stack."""
    name, props = dashed(regex)
    return name, [*props, dm.DynamicConfigValue("custom.stacking",
                                                {"mode": "none", "group": "A"})]


def build() -> dict[str, Any]:
    """The where-memory-goes dashboard as Grafana JSON."""
    d = dashboard(
        TITLE,
        UID,
        "Where the resident memory of memexport-instrumented Python apps goes: the RSS ledger "
        "(instrumented components, other Python objects, allocator free memory, native "
        "allocations, file pages, and the unattributed remainder), allocator retention, OOM "
        "kills and memory pressure of the cgroup, and the allocation sites that keep "
        "growing. See docs/ledger.md for each class's source.",
    )

    d = d.with_row(row("Ledger"))
    for panel in (
        _stacked(timeseries(
            "RSS ledger (stacked, sums to RSS)",
            [target(f"sum by (class) ({metric(LEDGER)})", "{{class}}"),
             target(f"sum({RSS})", "rss (process_resident_memory_bytes)")],
            BYTES,
            description="Resident memory by ledger class, summed over the selected instances. "
            "The stack adds up to RSS (dashed line; read a moment apart, within 3 %). "
            "unattributed is what no source explains: native libraries, direct mmaps, stacks.",
            w=16, h=10,
            overrides=[_unstacked("rss.*")],
        )),
        stat(
            "Unattributed share (max)",
            [target(f"max({UNATTRIBUTED_SHARE})", "max")],
            RATIO,
            description="The largest unattributed / RSS among the selected instances.",
            steps=thresholds((0.2, "orange"), (0.4, "red")),
            w=4, h=5,
        ),
        stat(
            "Retained share (max)",
            [target(f"max({RETAINED_SHARE})", "max")],
            RATIO,
            description="The largest share of RSS that is free memory the allocators keep "
            "(glibc malloc_free + pymalloc_free).",
            steps=thresholds((0.25, "orange"), (0.5, "red")),
            w=4, h=5,
        ),
        timeseries(
            "Unattributed share by instance",
            [target(UNATTRIBUTED_SHARE)],
            RATIO,
            description="Unattributed / RSS per instance. A share that keeps growing while "
            "Python objects stay flat is a native leak (alert "
            "MemexportUnattributedMemoryGrowing).",
            w=8,
        ),
        timeseries(
            "Unattributed memory",
            [target(_class("unattributed"))],
            BYTES,
            description="The ledger's remainder per instance, never negative.",
            w=8,
        ),
        timeseries(
            "Components by kind",
            [target(f"sum by (instance, kind) "
                    f"({metric('memexport_memory_ledger_component_bytes')})",
                    "{{instance}} {{kind}}")],
            BYTES,
            description="The ledger's components class by kind; a component kept in an "
            "agent's memory store is counted once, under its own kind.",
            w=8,
        ),
        timeseries(
            "Ledger clipped bytes",
            [target(f"max by (instance) "
                    f"({metric('memexport_memory_ledger_clipped_bytes')})")],
            BYTES,
            description="What the sources reported beyond RSS and the ledger left out (pages "
            "returned to the OS, untouched or swapped). Large values mean the ledger's "
            "unattributed class is a lower bound.",
            w=12,
        ),
        timeseries(
            "Ledger sum vs RSS",
            [target(f"{TOTAL_I} / max by (instance) ({RSS})")],
            RATIO,
            description="The ledger's total (smaps_rollup Rss) over prometheus_client's RSS "
            "(read separately): 1 within the documented tolerance.",
            min_value=None,
            w=12,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Retention"))
    for panel in (
        timeseries(
            "Allocator free memory (retained)",
            [target(_class("malloc_free"), "{{instance}} glibc free"),
             target(_class("pymalloc_free"), "{{instance}} pymalloc free"),
             target(_class("malloc_used"), "{{instance}} glibc used (native)")],
            BYTES,
            description="Free memory the allocators keep resident (glibc's free chunks, "
            "pymalloc's free arena space) and glibc's in-use memory that is not Python "
            "objects. Retention that falls after malloc_trim was fragmentation.",
        ),
        timeseries(
            "Retained share of RSS",
            [target(RETAINED_SHARE)],
            RATIO,
            description="Allocator free memory / RSS. Alert MemexportAllocatorRetentionHigh "
            "fires above 25 % with RSS above 70 % of the limit.",
            steps=thresholds((0.25, "orange"), (0.5, "red")),
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("cgroup: OOM kills and pressure"))
    for panel in (
        timeseries(
            "cgroup memory events",
            [target(rate("memexport_cgroup_memory_events_total", by=("instance", "event"),
                         fn="increase"), "{{instance}} {{event}}")],
            COUNT,
            description="OOM kills (oom_kill), OOM events, throttling over memory.high "
            "(high) and hits of the limit (max) in the cgroup, per interval. An oom_kill "
            "while the target answers is a worker or child killed (MemexportOOMKill).",
            w=8,
        ),
        timeseries(
            "Memory pressure (PSI)",
            [target(rate("memexport_memory_pressure_seconds_total",
                         by=("instance", "kind", "scope")), "{{instance}} {{kind}} ({{scope}})"),
             target(f"max by (instance, kind, scope) ({PSI_AVG60})",
                    "{{instance}} {{kind}} avg60 ({{scope}})")],
            RATIO,
            description="Share of time tasks stalled waiting for memory: some = at least one, "
            "full = all. scope=host on cgroup v1 hosts (/proc/pressure/memory).",
            w=8,
        ),
        timeseries(
            "cgroup memory by type",
            [target(f"max by (instance, stat) "
                    f"({metric('memexport_cgroup_memory_stat_bytes')})",
                    "{{instance}} {{stat}}")],
            BYTES,
            description="memory.stat of the cgroup: anon, file (page cache), kernel, sock, "
            "shmem.",
            w=8,
        ),
        timeseries(
            "cgroup usage vs limit",
            [target(f"max by (instance) ({metric('memexport_cgroup_memory_usage_bytes')})",
                    "{{instance}} usage"),
             target(f"max by (instance) ({metric('memexport_cgroup_memory_high_bytes')})",
                    "{{instance}} high"),
             target(f"max by (instance) "
                    f"({metric('memexport_process_memory_limit_bytes')})",
                    "{{instance}} limit"),
             target(f"max by (instance) ({RSS})", "{{instance}} rss")],
            BYTES,
            description="Memory charged to the cgroup (every process in it, page cache "
            "included) against memory.high (cgroup v2) and the limit, next to the target's "
            "own RSS.",
            overrides=[dashed(".* (limit|high)")],
            w=24,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Leak suspects"))
    growth = metric("memexport_tracemalloc_site_growth_bytes", extra='site!="__overflow__"')
    for panel in (
        table(
            "Top growing allocation sites",
            [target(f"topk(10, max by (site) ({growth}))", table=True)],
            BYTES,
            description="Allocation sites (file.py:line) that grew in 3 consecutive collector "
            "ticks, by growth since then (tracemalloc opt-in).",
            rename={"Value": "grown"},
        ),
        timeseries(
            "Growing allocation sites over time",
            [target(f"topk(10, max by (instance, site) ({growth}))", "{{instance}} {{site}}")],
            BYTES,
            description="Growth of the suspect sites; a line that climbs for hours is the leak.",
        ),
        timeseries(
            "tracemalloc coverage and overhead",
            [target(f"min by (instance) "
                    f"({metric('memexport_tracemalloc_coverage_ratio')})",
                    "{{instance}} coverage")],
            RATIO,
            description="Share of traces grouped within the tick's time box (1 = all).",
            max_value=1,
            w=12,
        ),
        timeseries(
            "tracemalloc overhead",
            [target(f"max by (instance) "
                    f"({metric('memexport_tracemalloc_overhead_bytes')})")],
            BYTES,
            description="Memory tracemalloc uses for its own tables (counted in malloc_used).",
            w=12,
        ),
    ):
        d = d.with_panel(panel)

    return render(d)
