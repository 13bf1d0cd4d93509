"""Dashboard "memexport / Caches": size against capacity and budget, hits, evictions, growth."""

from __future__ import annotations

from typing import Any

from dashboards_src.common import (
    BYTES,
    COUNT,
    OPS,
    RATIO,
    dashboard,
    dashed,
    label_variable,
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

UID = "memexport-caches"
TITLE = "memexport / Caches"

BY_CACHE = ("instance", "cache")
BYTES_PER_SECOND = "Bps"  # Grafana unit: bytes/sec (IEC)


def _cache(name: str, agg: str = "sum") -> str:
    """``sum by (instance, cache) (name{job, instance, cache filters})``."""
    return f"{agg} by (instance, cache) ({metric(name, 'cache')})"


ITEMS = _cache("memexport_cache_items")
MAX_ITEMS = _cache("memexport_cache_max_items")
BYTES_ = _cache("memexport_cache_bytes")
MAX_BYTES = _cache("memexport_cache_max_bytes")
BUDGET = _cache("memexport_cache_budget_bytes", "max")
HITS = rate("memexport_cache_requests_total", "cache", by=BY_CACHE, extra='result="hit"')
REQUESTS = rate("memexport_cache_requests_total", "cache", by=BY_CACHE)
HIT_RATIO = f"{HITS} / {REQUESTS}"
EVICTIONS = rate("memexport_cache_evictions_total", "cache", by=(*BY_CACHE, "reason"))
EVICTED_BYTES = rate("memexport_cache_evicted_bytes_total", "cache", by=BY_CACHE)
PUTS = rate("memexport_cache_puts_total", "cache", by=BY_CACHE)
FILL = (
    f"max by (instance, cache) (label_replace({ITEMS} / {MAX_ITEMS}, \"bound\", \"items\", "
    f"\"\", \"\") or label_replace({BYTES_} / {MAX_BYTES}, \"bound\", \"bytes\", \"\", \"\"))"
)
# Growth over the last hour (bytes and entries), least-squares fit, per hour.
BYTES_GROWTH = (
    f"sum by (instance, cache) (deriv({metric('memexport_cache_bytes', 'cache')}[1h])) * 3600"
)
ITEMS_GROWTH = (
    f"sum by (instance, cache) (deriv({metric('memexport_cache_items', 'cache')}[1h])) * 3600"
)
CAPACITY_EVICTIONS = rate("memexport_cache_evictions_total", "cache", by=None,
                          extra='reason="capacity"')


def build() -> dict[str, Any]:
    """The caches dashboard as Grafana JSON."""
    d = dashboard(
        TITLE,
        UID,
        "Caches instrumented with memexport.cache (lru_cache, cachetools, dicts, get/put "
        "classes): entries against capacity, bytes against capacity and budget, hit ratio, "
        "lookups and puts, evictions by reason and their bytes, and the caches growing "
        "fastest. One series per instance and cache.",
        extra_variables=[label_variable("cache", "memexport_cache_items")],
    )

    d = d.with_row(row("Overview"))
    for panel in (
        stat(
            "Caches",
            [target(f"count({ITEMS}) or vector(0)", "caches")],
            COUNT,
            description="Selected (instance, cache) series with entries exported.",
        ),
        stat(
            "Total cache bytes",
            [target(f"sum({BYTES_}) or vector(0)", "bytes")],
            BYTES,
            description="memexport_cache_bytes summed over the selected caches and instances.",
        ),
        stat(
            "Overall hit ratio",
            [target(f"sum({HITS}) / sum({REQUESTS})", "hit ratio")],
            RATIO,
            description="Hits / lookups over the selected caches (PromQL from the counters).",
            steps=thresholds((0.5, "orange"), (0.8, "green"), base="red"),
        ),
        stat(
            "Capacity evictions / s",
            [target(f"sum({CAPACITY_EVICTIONS}) or vector(0)", "evictions")],
            OPS,
            description="Entries the caches' policies evicted to make room, per second.",
        ),
        stat(
            "Fullest cache",
            [target(f"max({FILL})", "fill")],
            RATIO,
            description="The highest items / max_items or bytes / max_bytes among bounded "
            "caches.",
            steps=thresholds((0.9, "orange")),
        ),
        stat(
            "Caches over budget",
            [target(f"count({BYTES_} > on(instance, cache) {BUDGET}) or vector(0)", "over")],
            COUNT,
            description="Caches whose bytes exceed the budget set with memexport.budget().",
            steps=thresholds((1, "red")),
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Size"))
    for panel in (
        timeseries(
            "Items vs capacity",
            [
                target(ITEMS, "{{instance}} {{cache}} items"),
                target(MAX_ITEMS, "{{instance}} {{cache}} max items"),
            ],
            COUNT,
            description="Entries held (memexport_cache_items) against the capacity in entries "
            "(memexport_cache_max_items, absent for unbounded caches). A TTL cache counts "
            "expired entries until cachetools purges them.",
            overrides=[dashed(".* max items")],
        ),
        timeseries(
            "Bytes vs capacity and budget",
            [
                target(BYTES_, "{{instance}} {{cache}} bytes"),
                target(MAX_BYTES, "{{instance}} {{cache}} max bytes"),
                target(BUDGET, "{{instance}} {{cache}} budget"),
            ],
            BYTES,
            description="Bytes held (the cache's own accounting, sizes taken at insert, or a "
            "deep size sampled by the collector) against the byte capacity and the budget "
            "set with memexport.budget(kind=\"cache\").",
            overrides=[dashed(".* (max bytes|budget)")],
        ),
        timeseries(
            "Fill (of capacity)",
            [target(FILL, "{{instance}} {{cache}} ({{bound}})")],
            RATIO,
            description="items / max_items or bytes / max_bytes, the fuller, for bounded caches. "
            "A cache at 100 % that still hits well is healthy; see the thrashing alert.",
            steps=thresholds((0.9, "orange")),
            max_value=1,
        ),
        table(
            "Top caches by growth (last hour)",
            [target(f"topk(10, {BYTES_GROWTH})", table=True)],
            BYTES,
            description="Bytes per hour gained, least-squares fit over the last hour: the "
            "caches most likely to explain a growing process.",
            rename={"Value": "bytes / hour"},
            sort_by="Value",
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Traffic"))
    for panel in (
        timeseries(
            "Hit ratio",
            [target(HIT_RATIO, "{{instance}} {{cache}}")],
            RATIO,
            description="Hits / lookups per cache over $__rate_interval. For lru_cache this "
            "comes from cache_info().",
            steps=thresholds((0.5, "orange"), (0.8, "green"), base="red"),
            max_value=1,
        ),
        timeseries(
            "Lookups / s by result",
            [target(rate("memexport_cache_requests_total", "cache", by=(*BY_CACHE, "result")),
                    "{{instance}} {{cache}} {{result}}")],
            OPS,
            description="memexport_cache_requests_total by result (hit or miss).",
        ),
        timeseries(
            "Puts / s",
            [target(PUTS, "{{instance}} {{cache}}")],
            OPS,
            description="Entries stored per second (for lru_cache: every miss stores).",
        ),
        timeseries(
            "Items growth (per hour)",
            [target(ITEMS_GROWTH, "{{instance}} {{cache}}")],
            COUNT,
            description="Entries gained per hour (1h least-squares fit); the unbounded-growth "
            "alert watches this for caches without capacity.",
            min_value=None,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Evictions"))
    for panel in (
        timeseries(
            "Evictions / s by reason",
            [target(EVICTIONS, "{{instance}} {{cache}} {{reason}}")],
            OPS,
            description="capacity: the policy made room (cachetools popitem, entries that "
            "left during a put, lru_cache misses - currsize); expired: TTL; explicit: the "
            "app deleted, popped or cleared.",
        ),
        timeseries(
            "Evicted bytes / s",
            [target(EVICTED_BYTES, "{{instance}} {{cache}}")],
            BYTES_PER_SECOND,
            description="Bytes of evicted entries per second: exact with a cachetools "
            "getsizeof or sizes taken at insert, else evictions x the sampled mean entry size.",
        ),
    ):
        d = d.with_panel(panel)

    return render(d)
