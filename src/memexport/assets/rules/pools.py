"""Pool rules: exhaustion (paged when sustained), saturation, waits, a resource held far longer
than usual, and leaks seen as a rising floor of resources in use.

Pools whose resources are held on purpose (LISTEN/NOTIFY, a pub/sub subscription) are named
by ``pools.held_on_purpose`` and left out of the held/leak alerts; a resource taken right at
process start and never returned counts as such a lifetime resource anyway.
"""

from __future__ import annotations

from memexport.assets.config import Duration, format_duration, parse_duration
from memexport.assets.rules.common import Q, Rule, num

__all__ = ["groups"]

IN_USE = "pool:memexport_pool_in_use:max"
RATIO = "pool:memexport_pool_in_use:ratio"
FLOOR = "pool:memexport_pool_in_use:floor"
WAIT_P95 = "pool:memexport_pool_acquire_wait_seconds:p95_rate5m"
USE_P99 = "pool:memexport_pool_use_seconds:p99_rate1h"
OLDEST = "pool:memexport_pool_oldest_use_seconds:max"
STATE = 'state="in_use"'


def _quantile(q: Q, phi: str, metric: str, window: str) -> str:
    lbl = q.labels.pool
    sel = q.c(metric + "_bucket", lbl)
    return (f"histogram_quantile({phi},\n  sum {q.by(lbl, 'le')} "
            f"(max {q.by(lbl, 'le')} (rate({sel}[{q.d(window)}]))))")


def _recording(q: Q) -> list[Rule]:
    p, lbl = q.cfg.pools, q.labels.pool
    half = Duration(format_duration(parse_duration(p.leak_window) / 2))
    return [
        q.record(IN_USE, f"max {q.by(lbl)} ({q.c('memexport_pool_resources', lbl, STATE)})"),
        q.record(RATIO, f"{IN_USE}\n  /\n(max {q.by(lbl)} "
                        f"({q.c('memexport_pool_max_resources', lbl)}) > 0)",
                 "Resources in use as a fraction of the pool's size; unbounded pools have none."),
        q.record(FLOOR, f"min_over_time({IN_USE}[{q.d(half)}])",
                 "The fewest resources in use over half the leak window: bursts come and go, "
                 "leaked resources stay in it."),
        q.record(WAIT_P95, _quantile(q, "0.95", "memexport_pool_acquire_wait_seconds", "5m"),
                 "p95 of the wait for a resource (no series without acquires)."),
        q.record(USE_P99, _quantile(q, "0.99", "memexport_pool_use_seconds", "1h"),
                 "p99 of how long resources are held, over the last hour: the usual use time."),
        q.record(OLDEST, f"max {q.by(lbl)} ({q.c('memexport_pool_oldest_use_seconds', lbl)})"),
    ]


def _alerts(q: Q) -> list[Rule]:
    p, lbl = q.cfg.pools, q.labels.pool
    t, on = q.target_text(), q.on(lbl)
    held = f'{{{lbl}!~"{p.held_on_purpose}"}}' if p.held_on_purpose else ""
    exhausted = (f"max {q.by(lbl)} (\n  increase({q.c('memexport_pool_exhausted_total', lbl)}"
                 f"[{q.d(p.exhausted_window)}])\n) > 0")
    out: list[Rule] = []
    for sev, for_ in (("warning", p.exhausted_warning_for),
                      ("critical", p.exhausted_critical_for)):
        out.append(q.alert(
            "MemexportPoolExhausted", sev, exhausted, area="pools", component=lbl, for_=for_,
            keep=p.exhausted_keep_firing_for, summary="A pool keeps running out of resources.",
            description=f"Acquires from pool {{{{ $labels.{lbl} }}}} on {t} have timed out or "
                        f"been refused in every {p.exhausted_window} for {for_} "
                        f"({{{{ $value | humanize }}}} in the last {p.exhausted_window}): callers "
                        f"get errors instead of resources."))
    out.append(q.alert(
        "MemexportPoolSaturated", "warning", f"{RATIO} >= {num(p.saturated_ratio)}",
        area="pools", component=lbl, for_=p.saturated_for, keep=p.saturated_keep_firing_for,
        summary="A pool is nearly always fully in use.",
        description=f"Pool {{{{ $labels.{lbl} }}}} on {t} has had "
                    f"{{{{ $value | humanizePercentage }}}} of its resources in use for "
                    f"{p.saturated_for}; a burst that fills it for a few minutes does not fire."))
    out.append(q.alert(
        "MemexportPoolAcquireWaitHigh", "warning", f"{WAIT_P95} > {num(p.wait_p95_seconds)}",
        area="pools", component=lbl, for_=p.wait_for,
        summary="Waiting for a pool resource takes long.",
        description=f"95% of acquires from pool {{{{ $labels.{lbl} }}}} on {t} wait up to "
                    f"{{{{ $value | humanizeDuration }}}} for a resource."))
    out.append(q.alert("MemexportPoolResourceHeldTooLong", "warning", f"""
({OLDEST}{held} > {q.s(p.held_min)})
  and {on}
(
  {OLDEST} > {num(p.held_p99_factor)} * {USE_P99}
  or
  {OLDEST} unless {on} ({USE_P99} >= 0)
)
  and {on}
({OLDEST} < {q.on()} group_left() ({q.uptime()} - {q.s(p.held_since_start)}))
""", area="pools", component=lbl, for_=p.held_for,
        summary="A pool resource has been held far longer than usual.",
        description=f"A resource of pool {{{{ $labels.{lbl} }}}} on {t} has been out for "
                    f"{{{{ $value | humanizeDuration }}}}, far longer than resources of this pool "
                    f"are usually held: a stuck caller or a leak. Resources held on purpose "
                    f"(LISTEN/NOTIFY, pub/sub) belong in pools.held_on_purpose.",
        comment="A resource taken at start and never returned is a lifetime resource (a "
                "LISTEN connection), not a leak: only resources taken later count."))
    out.append(q.alert("MemexportPoolResourcesLeaking", "warning", f"""
({FLOOR}{held} - {FLOOR}{held} offset {q.d(p.leak_window)} >= {p.leak_floor_rise})
  and {on}
({OLDEST} > {q.s(p.leak_oldest)})
""", area="pools", component=lbl, for_=p.leak_for, keep=p.leak_keep_firing_for,
        summary="A pool keeps losing resources that are never returned.",
        description=f"The fewest resources in use in pool {{{{ $labels.{lbl} }}}} on {t} rose by "
                    f"{{{{ $value }}}} within {p.leak_window}, and the oldest has been out for "
                    f"over {p.leak_oldest}: resources are acquired and never released.",
        comment="A leak raises the floor of resources in use; bursts and one connection held "
                "for the process lifetime do not."))
    return out


def groups(q: Q) -> list[dict[str, object]]:
    prefix = q.cfg.group_prefix
    return [
        {"name": f"{prefix}-pools.rules", "rules": _recording(q)},
        {"name": f"{prefix}-pools.alerts", "rules": _alerts(q)},
    ]
