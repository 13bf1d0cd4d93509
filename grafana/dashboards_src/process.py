"""Dashboard "memexport / Process memory": RSS against its limit, GC, fds, tracemalloc, health."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders.dashboard import DashboardLink
from grafana_foundation_sdk.models import dashboard as dm

from dashboards_src._actions_row import with_actions_row
from dashboards_src.common import (
    BYTES,
    COUNT,
    OPS,
    RATIO,
    SECONDS,
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

UID = "memexport-process"
TITLE = "memexport / Process memory"
# Horizon of the time-to-limit panels: an instance that is not growing shows this (7 days).
HORIZON_SECONDS = 7 * 86400

RSS = metric("process_resident_memory_bytes")
RSS_I = f"max by (job, instance) ({RSS})"
LIMIT = metric("memexport_process_memory_limit_bytes")
LIMIT_I = f"max by (job, instance) ({LIMIT})"
USAGE_RATIO = f"{RSS_I} / {LIMIT_I}"
# Slope over an hour: long enough to ignore the GC sawtooth (same window as the alert).
GROWTH = f"max by (job, instance) (deriv({RSS}[1h]))"
TIME_TO_LIMIT = (
    f"clamp(({LIMIT_I} - {RSS_I}) / ({GROWTH} > 0), 0, {HORIZON_SECONDS})"
    f" or ({LIMIT_I} * 0 + {HORIZON_SECONDS})"
)
# Seconds since each instance started: drops to zero on a restart.
UPTIME = f"time() - max by (job, instance) ({metric('process_start_time_seconds')})"
OVERFLOW_RATE = rate("memexport_series_overflow_total", by=("instance", "kind"))
ERRORS_RATE = (
    f"{rate('memexport_collector_errors_total', by=('instance', 'collector'))}"
    f" or sum by (instance, collector) (0 * {metric('memexport_collector_duration_seconds')})"
)


def _pause_quantile(q: float) -> str:
    buckets = rate("memexport_gc_pause_seconds_bucket", by=("instance", "generation", "le"))
    return f"histogram_quantile({q}, {buckets})"


def build() -> dict[str, Any]:
    """The process dashboard as Grafana JSON."""
    d = dashboard(
        TITLE,
        UID,
        "Process memory of memexport-instrumented Python apps: RSS against its effective "
        "limit (cgroup, rlimit or physical memory), predicted time to the limit, garbage "
        "collector, file descriptors, threads, tracemalloc allocation sites and the "
        "collector's own health. One series per instance.",
    ).link(
        DashboardLink("Where memory goes")
        .type(dm.DashboardLinkType.LINK)
        .url("/d/memexport-memory")
        .tooltip("The RSS ledger: which class of memory RSS is made of")
        .include_vars(True)
        .keep_time(True)
    )

    d = d.with_row(row("Overview"))
    for panel in (
        stat(
            "Targets down",
            [target(f'count({metric("up")} == 0) or vector(0)', "down")],
            COUNT,
            description="Selected scrape targets whose last scrape failed (up == 0).",
            steps=thresholds((1, "red")),
        ),
        stat(
            "Highest memory usage",
            [target(f"max({USAGE_RATIO})", "max")],
            RATIO,
            description="The largest RSS / limit ratio among the selected instances.",
            steps=thresholds((0.8, "orange"), (0.9, "red")),
        ),
        stat(
            "Soonest time to limit",
            [target(f"min({TIME_TO_LIMIT})", "min")],
            SECONDS,
            description="The shortest predicted time until an instance's RSS reaches its "
            "limit at its growth rate of the last hour (7 days = not growing).",
            steps=thresholds((4 * 3600, "orange"), (24 * 3600, "green"), base="red"),
        ),
        stat(
            "Total RSS",
            [target(f"sum({RSS})", "total")],
            BYTES,
            description="Resident memory summed over the selected instances.",
        ),
        stat(
            "Uncollectable objects (all)",
            [target(f"sum({metric('python_gc_objects_uncollectable_total')})", "total")],
            COUNT,
            description="Objects the garbage collector found but could not free, summed "
            "over instances and generations. Any increase is a leak.",
            steps=thresholds((1, "orange")),
        ),
        stat(
            "Collector errors / s (all)",
            [target(f"sum({rate('memexport_collector_errors_total', by=None)}) or vector(0)",
                    "errors")],
            OPS,
            description="Failed reads (a probe, a user's len, a sizer) skipped per second.",
            steps=thresholds((0.000001, "orange")),
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Memory"))
    for panel in (
        timeseries(
            "RSS vs limit",
            [
                target(RSS, "{{instance}} rss"),
                target(LIMIT, "{{instance}} limit ({{source}})"),
                target(f"max by (job, instance) "
                       f"({metric('memexport_process_memory_budget_bytes')})",
                       "{{instance}} budget"),
            ],
            BYTES,
            description="Resident set size against the effective memory limit (its source: "
            "cgroup v2/v1, RLIMIT_AS or physical memory) and the budget set with "
            "memexport.budget(), when there is one.",
            overrides=[dashed(".* (limit|budget).*")],
        ),
        timeseries(
            "Memory usage (RSS / limit)",
            [target(USAGE_RATIO)],
            RATIO,
            description="RSS as a fraction of the effective limit. The alerts page at 90 %.",
            steps=thresholds((0.8, "orange"), (0.9, "red")),
        ),
        timeseries(
            "Predicted time to limit",
            [target(TIME_TO_LIMIT)],
            SECONDS,
            description="Headroom (limit - RSS) divided by the RSS slope over the last hour "
            "(deriv), capped at 7 days; 7 days means not growing.",
            w=8,
        ),
        table(
            "Top 10 instances by memory usage",
            [target(f"topk(10, {USAGE_RATIO})", table=True)],
            RATIO,
            description="The instances closest to their memory limit right now.",
            hide=("Time",),
            rename={"Value": "RSS / limit"},
            w=8,
        ),
        timeseries(
            "System available memory",
            [target(metric("memexport_system_memory_available_bytes"))],
            BYTES,
            description="Memory the host (or container) can still give to processes "
            "without swapping.",
            w=8,
        ),
        timeseries(
            "RSS growth (slope over 1h)",
            [target(GROWTH)],
            "binBps",
            description="How fast RSS grows, from a linear fit over the last hour (deriv). "
            "A steady positive slope is a leak; the GC sawtooth averages out.",
            min_value=None,
            w=8,
        ),
        timeseries(
            "Unique set size (USS)",
            [target(metric("memexport_process_uss_bytes"), "{{instance}} uss"),
             target(RSS, "{{instance}} rss")],
            BYTES,
            description="Memory only this process uses (opt-in: reads smaps). RSS also "
            "counts pages shared with other processes, e.g. pre-fork workers.",
            overrides=[dashed(".* rss")],
            w=8,
        ),
        timeseries(
            "Virtual memory (VMS)",
            [target(metric("process_virtual_memory_bytes"))],
            BYTES,
            description="Virtual memory size: address space reserved, mostly not resident "
            "(thread stacks, arenas, mapped files). It is what RLIMIT_AS limits (limit "
            "source rlimit_as); otherwise watch RSS.",
            w=8,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Garbage collector"))
    for panel in (
        timeseries(
            "GC collections / s",
            [target(rate("python_gc_collections_total", by=("instance", "generation")),
                    "{{instance}} gen {{generation}}")],
            OPS,
            description="Garbage collector runs per second by generation.",
        ),
        timeseries(
            "Objects collected / s",
            [target(rate("python_gc_objects_collected_total", by=("instance", "generation")),
                    "{{instance}} gen {{generation}}")],
            OPS,
            description="Objects freed by the garbage collector per second by generation.",
        ),
        timeseries(
            "GC pause (p50, p99)",
            [target(_pause_quantile(0.5), "{{instance}} gen {{generation}} p50"),
             target(_pause_quantile(0.99), "{{instance}} gen {{generation}} p99")],
            SECONDS,
            description="Duration of garbage collector pauses by generation, from the "
            "memexport_gc_pause_seconds histogram.",
            w=8,
        ),
        timeseries(
            "GC pause time per second",
            [target(rate("memexport_gc_pause_seconds_sum", by=("instance", "generation")),
                    "{{instance}} gen {{generation}}")],
            RATIO,
            description="Seconds spent in GC pauses per second of wall time: the share of "
            "time the app is stopped by the collector.",
            w=8,
        ),
        timeseries(
            "Uncollectable objects",
            [target(f"sum by (instance, generation) "
                    f"({metric('python_gc_objects_uncollectable_total')})",
                    "{{instance}} gen {{generation}}")],
            COUNT,
            description="Objects found by the collector that could not be freed (total since "
            "start). It should stay flat at zero.",
            w=8,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Resources"))
    for panel in (
        timeseries(
            "Open file descriptors",
            [target(metric("process_open_fds"))],
            COUNT,
            w=6,
            description="File descriptors open in the process.",
        ),
        timeseries(
            "File descriptor usage (open / max)",
            [target(f"{metric('process_open_fds')} / {metric('process_max_fds')}")],
            RATIO,
            w=6,
            description="Open file descriptors as a fraction of the process's limit "
            "(process_max_fds).",
            steps=thresholds((0.8, "orange"), (0.9, "red")),
        ),
        timeseries(
            "Threads",
            [target(metric("memexport_process_threads"))],
            COUNT,
            w=6,
            description="Threads of the process. A count that only grows is a thread leak.",
        ),
        timeseries(
            "Uptime",
            [target(UPTIME)],
            SECONDS,
            w=6,
            description="Time since each instance started (time() - "
            "process_start_time_seconds). A drop to zero is a restart, e.g. an OOM kill.",
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("tracemalloc"))
    for panel in (
        timeseries(
            "tracemalloc traced vs peak",
            [target(metric("memexport_tracemalloc_traced_bytes"), "{{instance}} traced"),
             target(metric("memexport_tracemalloc_peak_bytes"), "{{instance}} peak")],
            BYTES,
            description="Memory allocated by Python and traced by tracemalloc (opt-in), and "
            "its peak.",
            overrides=[dashed(".* peak")],
        ),
        table(
            "Top allocation sites",
            [target(f"topk(10, sum by (site) "
                    f"({metric('memexport_tracemalloc_site_bytes')}))", table=True)],
            BYTES,
            description="The 10 source lines holding the most traced memory, summed over "
            "the selected instances (tracemalloc opt-in).",
            rename={"Value": "bytes"},
        ),
        timeseries(
            "Top allocation sites by instance",
            [target(f"topk(10, max by (instance, site) "
                    f"({metric('memexport_tracemalloc_site_bytes')}))",
                    "{{instance}} {{site}}")],
            BYTES,
            description="The 10 largest (instance, allocation site) pairs over time: a line "
            "that only grows points at the leak.",
            w=24,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Collector health"))
    for panel in (
        timeseries(
            "Collector errors / s",
            [target(ERRORS_RATE, "{{instance}} {{collector}}")],
            OPS,
            description="Failed reads per second by collector (memexport_collector_errors_"
            "total); each failing source is logged once by the app. Zero when healthy.",
            w=6,
        ),
        timeseries(
            "Collector run duration",
            [target(f"max by (instance, collector) "
                    f"({metric('memexport_collector_duration_seconds')})",
                    "{{instance}} {{collector}}")],
            SECONDS,
            description="How long the last run of each collector took (registry = the "
            "scrape-time read of all components).",
            w=6,
        ),
        timeseries(
            "Series folded into __overflow__ / s",
            [target(OVERFLOW_RATE, "{{instance}} {{kind}}")],
            OPS,
            description="Components per second registered under a new name after their kind "
            "reached its cap of distinct names (memexport_series_overflow_total), counted "
            "under __overflow__. Zero when healthy; otherwise a name is built from data "
            "(e.g. a session id).",
            w=6,
        ),
        timeseries(
            "Sampled sizes covered",
            [target(f"min by (instance) ({metric('memexport_sizer_coverage_ratio')})",
                    "{{instance}}")],
            RATIO,
            description="Share of the components with a sampled deep size that the collector "
            "sized in the last minute (memexport_sizer_coverage_ratio). 1 when healthy; lower "
            "means the per-tick sampling budget cannot reach every collection, and their bytes "
            "are older estimates.",
            w=6,
        ),
    ):
        d = d.with_panel(panel)

    d = with_actions_row(d)
    return render(d)
