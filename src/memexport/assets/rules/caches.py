"""Cache rules: thrashing measured against lookups (at any size), unbounded growth, budgets."""

from __future__ import annotations

from memexport.assets.rules.common import Q, Rule, num

__all__ = ["groups"]

REQUESTS = "cache:memexport_cache_requests:rate"
HIT_RATIO = "cache:memexport_cache_hit:ratio_rate"
EVICTIONS = "cache:memexport_cache_evictions_capacity:rate"
FILL = "cache:memexport_cache_fill:ratio"
ITEMS = "cache:memexport_cache_items:max"
HIT = 'result="hit"'


def _recording(q: Q) -> list[Rule]:
    c, lbl = q.cfg.caches, q.labels.cache
    w = q.d(c.rate_window)

    def rate(extra: str, *matchers: str) -> str:
        sel = q.c("memexport_cache_" + extra, lbl, *matchers)
        by_key = "result" if extra.startswith("requests") else "reason"
        return f"sum {q.by(lbl)} (max {q.by(lbl, by_key)} (rate({sel}[{w}])))"

    def fill(num_: str, den: str, bound: str) -> str:
        return (f'label_replace(\n    max {q.by(lbl)} ({q.c(num_, lbl)})\n'
                f'      / max {q.by(lbl)} ({q.c(den, lbl)}),\n'
                f'    "bound", "{bound}", "", "")')

    return [
        q.record(REQUESTS, rate("requests_total"),
                 "Lookups per second (duplicates of a second exporter counted once)."),
        q.record(HIT_RATIO, f"{rate('requests_total', HIT)}\n  /\n{REQUESTS}"),
        q.record(EVICTIONS, rate("evictions_total", 'reason="capacity"'),
                 "Entries the cache's policy evicted to make room, per second (expiry and the "
                 "app's own deletes are not thrashing)."),
        q.record(FILL, f"max {q.by(lbl)} (\n  "
                       f"{fill('memexport_cache_items', 'memexport_cache_max_items', 'items')}\n"
                       f"  or\n  "
                       f"{fill('memexport_cache_bytes', 'memexport_cache_max_bytes', 'bytes')}\n)",
                 "How full a bounded cache is: entries or bytes against its capacity, the fuller."),
        q.record(ITEMS, f"max {q.by(lbl)} ({q.c('memexport_cache_items', lbl)})"),
    ]


def _alerts(q: Q) -> list[Rule]:
    c, lbl = q.cfg.caches, q.labels.cache
    t = q.target_text()
    on = q.on(lbl)
    items = q.c("memexport_cache_items", lbl)
    evictions = q.c("memexport_cache_evictions_total", lbl)
    puts = q.c("memexport_cache_puts_total", lbl)
    cap = " or ".join(f"max {q.by(lbl)} ({q.c(m, lbl)})"
                      for m in ("memexport_cache_max_items", "memexport_cache_max_bytes"))
    return [
        q.alert("MemexportCacheThrashing", "warning", f"""
{HIT_RATIO} < {num(c.thrashing_hit_ratio)}
  and {on}
({EVICTIONS} / {REQUESTS} >= {num(c.thrashing_evictions_per_lookup)})
  and {on}
({REQUESTS} > {num(c.thrashing_min_lookups)})
""", area="caches", component=lbl, for_=c.thrashing_for, keep=c.thrashing_keep_firing_for,
            summary="A cache is thrashing.",
            description=f"Cache {{{{ $labels.{lbl} }}}} on {t} hits only "
                        f"{{{{ $value | humanizePercentage }}}} of its lookups while at least "
                        f"{num(c.thrashing_evictions_per_lookup * 100)}% of lookups push an entry "
                        f"out: it is full and too small for its working set, so it costs memory "
                        f"and CPU and saves little.",
            comment="Thrashing measured against lookups, so it is seen at any cache size: most "
                    "lookups miss and a large share of them evict an entry to make room."),
        q.alert("MemexportCacheGrowingUnbounded", "warning", f"""
{q.per_hour()} * max {q.by(lbl)} (deriv({items}[{q.d('1h')}])) > 0
  and {on}
max {q.by(lbl)} (deriv({items}[{q.d('1h')}]))
  >= {num(c.unbounded_linearity)} * max {q.by(lbl)} (deriv({items}[{q.d(c.unbounded_for)}]))
  and {on} ({ITEMS} > {c.unbounded_min_items})
  and {on}
sum {q.by(lbl)} (max {q.by(lbl, 'reason')} (rate({evictions}[{q.d('1h')}])))
  < {num(c.unbounded_removal_ratio)} * max {q.by(lbl)} (rate({puts}[{q.d('1h')}]))
unless {on} ({cap})
unless {on} ({ITEMS} <= {num(c.unbounded_vs_yesterday)} * {ITEMS} offset {q.d('1d')})
""", area="caches", component=lbl, for_=c.unbounded_for, keep=c.unbounded_keep_firing_for,
            summary="An unbounded cache keeps growing.",
            description=f"Cache {{{{ $labels.{lbl} }}}} on {t} has no capacity and has grown "
                        f"steadily for {c.unbounded_for}, now by {{{{ $value | humanize }}}} "
                        f"entries per hour, and removes little of what it stores; it grows until "
                        f"the process runs out of memory."),
        q.alert("MemexportCacheOverBudget", "warning", f"""
max {q.by(lbl)} ({q.c('memexport_cache_bytes', lbl)})
  > {on}
max {q.by(lbl)} ({q.c('memexport_cache_budget_bytes', lbl)})
""", area="caches", component=lbl, for_=c.over_budget_for,
            summary="A cache is over its byte budget.",
            description=f"Cache {{{{ $labels.{lbl} }}}} on {t} holds "
                        f"{{{{ $value | humanize1024 }}}}B, more than the budget set with "
                        f"memexport.budget()."),
    ]


def groups(q: Q) -> list[dict[str, object]]:
    prefix = q.cfg.group_prefix
    return [
        {"name": f"{prefix}-caches.rules", "rules": _recording(q)},
        {"name": f"{prefix}-caches.alerts", "rules": _alerts(q)},
    ]
