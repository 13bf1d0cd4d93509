"""Dashboard "memexport / Caches": size against capacity and budget, hits, evictions, growth."""

from __future__ import annotations

from typing import Any

from memexport.assets.dashboards.names import budget, cache
from memexport.assets.dashboards.panels import (
    BYTES,
    COUNT,
    OPS,
    RATIO,
    dashboard,
    dashed,
    label_variable,
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

TITLE = "memexport / Caches"
BYTES_PER_SECOND = "Bps"  # Grafana unit: bytes/sec (IEC)


class _Q:
    """The caches dashboard's queries for one view."""

    def __init__(self, v: View) -> None:
        c = "cache"
        self.items = v.agg(cache.ITEMS, c)
        self.max_items = v.agg(cache.MAX_ITEMS, c)
        self.bytes = v.agg(cache.BYTES, c)
        self.max_bytes = v.agg(cache.MAX_BYTES, c)
        self.budget = v.agg(budget(c), c, agg="max")
        self.hits = v.rate(cache.REQUESTS, c, by=(c,), extra='result="hit"')
        self.requests = v.rate(cache.REQUESTS, c, by=(c,))
        self.hit_ratio = f"{self.hits} / {self.requests}"
        self.by_result = v.rate(cache.REQUESTS, c, by=(c, "result"))
        self.evictions = v.rate(cache.EVICTIONS, c, by=(c, "reason"))
        self.evicted_bytes = v.rate(cache.EVICTED_BYTES, c, by=(c,))
        self.puts = v.rate(cache.PUTS, c, by=(c,))
        by = v.by(c)
        self.fill = (
            f"max {by} (label_replace({self.items} / {self.max_items}, \"bound\", \"items\", "
            f"\"\", \"\") or label_replace({self.bytes} / {self.max_bytes}, \"bound\", "
            f"\"bytes\", \"\", \"\"))"
        )
        # Growth over the last hour (bytes and entries), least-squares fit, per hour.
        self.bytes_growth = f"sum {by} (deriv({v.metric(cache.BYTES, c)}[1h])) * 3600"
        self.items_growth = f"sum {by} (deriv({v.metric(cache.ITEMS, c)}[1h])) * 3600"
        self.capacity_evictions = v.rate(cache.EVICTIONS, c, by=None,
                                         extra=f'reason="{cache.CAPACITY}"')
        self.over_budget = f"{self.bytes} > {v.on(c)} {self.budget}"


def _overview(v: View, q: _Q) -> list[Any]:
    return [
        stat("Caches", [target(v, f"count({q.items}) or vector(0)", "caches")], COUNT,
             description="Selected (instance, cache) series with entries exported."),
        stat("Total cache bytes", [target(v, f"sum({q.bytes}) or vector(0)", "bytes")], BYTES,
             description="memexport_cache_bytes summed over the selected caches and instances."),
        stat("Overall hit ratio", [target(v, f"sum({q.hits}) / sum({q.requests})", "hit ratio")],
             RATIO, description="Hits / lookups over the selected caches (PromQL from the "
             "counters).", steps=thresholds((0.5, "orange"), (0.8, "green"), base="red")),
        stat("Capacity evictions / s",
             [target(v, f"sum({q.capacity_evictions}) or vector(0)", "evictions")], OPS,
             description="Entries the caches' policies evicted to make room, per second."),
        stat("Fullest cache", [target(v, f"max({q.fill})", "fill")], RATIO,
             description="The highest items / max_items or bytes / max_bytes among bounded "
             "caches.", steps=thresholds((0.9, "orange"))),
        stat("Caches over budget", [target(v, f"count({q.over_budget}) or vector(0)", "over")],
             COUNT, description="Caches whose bytes exceed the budget set with "
             "memexport.budget().", steps=thresholds((1, "red"))),
    ]


def _size(v: View, q: _Q) -> list[Any]:
    return [
        timeseries(
            "Items vs capacity",
            [target(v, q.items, "{{instance}} {{cache}} items"),
             target(v, q.max_items, "{{instance}} {{cache}} max items")],
            COUNT,
            description="Entries held against the capacity in entries (absent for unbounded "
            "caches). A TTL cache counts expired entries until cachetools purges them.",
            overrides=[dashed(".* max items")],
        ),
        timeseries(
            "Bytes vs capacity and budget",
            [target(v, q.bytes, "{{instance}} {{cache}} bytes"),
             target(v, q.max_bytes, "{{instance}} {{cache}} max bytes"),
             target(v, q.budget, "{{instance}} {{cache}} budget")],
            BYTES,
            description="Bytes held against the byte capacity and the budget set with "
            "memexport.budget(kind=\"cache\").",
            overrides=[dashed(".* (max bytes|budget)")],
        ),
        timeseries(
            "Fill (of capacity)",
            [target(v, q.fill, "{{instance}} {{cache}} ({{bound}})")],
            RATIO,
            description="items / max_items or bytes / max_bytes, the fuller, for bounded caches. "
            "A cache at 100 % that still hits well is healthy; see the thrashing alert.",
            steps=thresholds((0.9, "orange")),
            max_value=1,
        ),
        table(
            "Top caches by growth (last hour)",
            [target(v, f"topk(10, {q.bytes_growth})", table=True)],
            BYTES,
            description="Bytes per hour gained, least-squares fit over the last hour: the "
            "caches most likely to explain a growing process.",
            rename={"Value": "bytes / hour"},
            sort_by="Value",
        ),
    ]


def _traffic(v: View, q: _Q) -> list[Any]:
    return [
        timeseries(
            "Hit ratio",
            [target(v, q.hit_ratio, "{{instance}} {{cache}}")],
            RATIO,
            description="Hits / lookups per cache over $__rate_interval. For lru_cache this "
            "comes from cache_info().",
            steps=thresholds((0.5, "orange"), (0.8, "green"), base="red"),
            max_value=1,
        ),
        timeseries("Lookups / s by result",
                   [target(v, q.by_result, "{{instance}} {{cache}} {{result}}")], OPS,
                   description="Lookups by result (hit or miss)."),
        timeseries("Puts / s", [target(v, q.puts, "{{instance}} {{cache}}")], OPS,
                   description="Entries stored per second (for lru_cache: every miss stores)."),
        timeseries(
            "Items growth (per hour)",
            [target(v, q.items_growth, "{{instance}} {{cache}}")],
            COUNT,
            description="Entries gained per hour (1h least-squares fit); the unbounded-growth "
            "alert watches this for caches without capacity.",
            min_value=None,
        ),
    ]


def _evictions(v: View, q: _Q) -> list[Any]:
    return [
        timeseries(
            "Evictions / s by reason",
            [target(v, q.evictions, "{{instance}} {{cache}} {{reason}}")],
            OPS,
            description="capacity: the policy made room (cachetools popitem, entries that "
            "left during a put, lru_cache misses - currsize); expired: TTL; explicit: the "
            "app deleted, popped or cleared.",
        ),
        timeseries(
            "Evicted bytes / s",
            [target(v, q.evicted_bytes, "{{instance}} {{cache}}")],
            BYTES_PER_SECOND,
            description="Bytes of evicted entries per second: exact with a cachetools "
            "getsizeof or sizes taken at insert, else evictions x the sampled mean entry size.",
        ),
    ]


def build(v: View) -> dict[str, Any]:
    """The caches dashboard as Grafana JSON."""
    q = _Q(v)
    d = dashboard(
        v, "caches", TITLE,
        "Caches instrumented with memexport.cache (lru_cache, cachetools, dicts, get/put "
        "classes): entries against capacity, bytes against capacity and budget, hit ratio, "
        "lookups and puts, evictions by reason and their bytes, and the caches growing "
        "fastest. One series per instance and cache.",
        extra_variables=[label_variable(v, "cache", cache.ITEMS)],
    )
    return render(rows(d, ("Overview", _overview(v, q)), ("Size", _size(v, q)),
                       ("Traffic", _traffic(v, q)), ("Evictions", _evictions(v, q))))
