"""Dashboard "memexport / Pools": in use vs idle vs max, waits, exhaustion, holds, leaks."""

from __future__ import annotations

from typing import Any

from dashboards_src.common import (
    COUNT,
    OPS,
    RATIO,
    SECONDS,
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

UID = "memexport-pools"
TITLE = "memexport / Pools"

BY_POOL = ("instance", "pool")


def _pool(name: str, agg: str = "sum", extra: str = "") -> str:
    """``sum by (instance, pool) (name{job, instance, pool filters})``."""
    return f"{agg} by (instance, pool) ({metric(name, 'pool', extra=extra)})"


IN_USE = _pool("memexport_pool_resources", extra='state="in_use"')
IDLE = _pool("memexport_pool_resources", extra='state="idle"')
MAX = _pool("memexport_pool_max_resources")
PENDING = _pool("memexport_pool_pending_acquires")
OLDEST = _pool("memexport_pool_oldest_use_seconds", "max")
SATURATION = f"{IN_USE} / on(instance, pool) ({MAX} > 0)"
ACQUIRES = rate("memexport_pool_acquires_total", "pool", by=BY_POOL)
EXHAUSTED = rate("memexport_pool_exhausted_total", "pool", by=BY_POOL)
ERRORS = rate("memexport_pool_acquire_errors_total", "pool", by=BY_POOL)
CREATED = rate("memexport_pool_created_total", "pool", by=BY_POOL)
DESTROYED = rate("memexport_pool_destroyed_total", "pool", by=BY_POOL)
EXPIRED = rate("memexport_pool_expired_total", "pool", by=BY_POOL)
HELD = (f"{_pool('memexport_pool_created_total')} - on(instance, pool) "
        f"{_pool('memexport_pool_destroyed_total')}")


def _quantile(q: float, histogram: str) -> str:
    """``histogram_quantile(q, sum by (le, pool) (rate(<histogram>_bucket[...])))``."""
    buckets = rate(f"{histogram}_bucket", "pool", by=("le", "pool"))
    return f"histogram_quantile({q}, {buckets})"


def _quantiles(histogram: str) -> list[Any]:
    return [target(_quantile(q, histogram), f"{{{{pool}}}} p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)]


def build() -> dict[str, Any]:
    """The pools dashboard as Grafana JSON."""
    d = dashboard(
        TITLE,
        UID,
        "Pools instrumented with memexport.pool (the guide's ResourcePool, queues, SQLAlchemy, "
        "redis-py, thread pools, asyncio pools): resources in use against idle and the pool's "
        "size, pending acquires, the wait for a resource (p50/p95/p99), exhausted acquires, "
        "how long resources are held, resources created and destroyed, and the oldest "
        "resource still out (a leak grows there). One series per instance and pool.",
        extra_variables=[label_variable("pool", "memexport_pool_resources")],
    )

    d = d.with_row(row("Overview"))
    for panel in (
        stat("Pools", [target(f"count({IN_USE}) or vector(0)", "pools")], COUNT,
             description="Selected (instance, pool) series."),
        stat("Resources in use", [target(f"sum({IN_USE}) or vector(0)", "in use")], COUNT,
             description="memexport_pool_resources{state=\"in_use\"} over the selected pools."),
        stat("Fullest pool", [target(f"max({SATURATION})", "in use / max")], RATIO,
             description="The highest in use / max among bounded pools.",
             steps=thresholds((0.8, "orange"), (0.9, "red"))),
        stat("Waiting now", [target(f"sum({PENDING}) or vector(0)", "pending")], COUNT,
             description="Acquires waiting for a resource right now.",
             steps=thresholds((1, "orange"))),
        stat("Timeouts / s", [target(f"sum({EXHAUSTED}) or vector(0)", "exhausted")],
             OPS, description="Acquires that timed out or were refused, per second.",
             steps=thresholds((0.0001, "red"))),
        stat("Longest hold now", [target(f"max({OLDEST}) or vector(0)", "oldest")], SECONDS,
             description="The longest a resource of the selected pools has been out.",
             steps=thresholds((300, "orange"))),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Capacity"))
    for panel in (
        timeseries(
            "Resources: in use vs idle vs max",
            [
                target(IN_USE, "{{instance}} {{pool}} in use"),
                target(IDLE, "{{instance}} {{pool}} idle"),
                target(MAX, "{{instance}} {{pool}} max"),
            ],
            COUNT,
            description="Resources acquired and not released (in use), ready in the pool "
            "(idle), and the pool's size (max, absent when unbounded). In use at max with "
            "nothing idle means the next acquire waits.",
            overrides=[dashed(".* max")],
            w=8,
        ),
        timeseries(
            "Pending acquires",
            [target(PENDING, "{{instance}} {{pool}}")],
            COUNT,
            description="Acquires waiting for a resource (thread pools: tasks queued for a "
            "worker).",
            w=8,
        ),
        timeseries(
            "Saturation (in use / max)",
            [target(SATURATION, "{{instance}} {{pool}}")],
            RATIO,
            description="Fraction of the pool in use; MemexportPoolSaturated fires at 90 % "
            "for 15 minutes.",
            max_value=1,
            steps=thresholds((0.9, "red")),
            w=8,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Waits and exhaustion"))
    for panel in (
        timeseries(
            "Acquire wait p50 / p95 / p99",
            _quantiles("memexport_pool_acquire_wait_seconds"),
            SECONDS,
            description="Time from asking for a resource to getting it, from the "
            "memexport_pool_acquire_wait_seconds histogram over the selected instances. The "
            "guide's pool waits its whole timeout on an empty queue before creating a "
            "resource. MemexportPoolAcquireWaitHigh fires on p95 > 1 s.",
            steps=thresholds((1, "red")),
            w=8,
        ),
        timeseries(
            "Exhausted acquires / s",
            [
                target(EXHAUSTED, "{{instance}} {{pool}} exhausted"),
                target(ERRORS, "{{instance}} {{pool}} errors"),
            ],
            OPS,
            description="Acquires that timed out or were refused (exhausted), and those that "
            "failed otherwise (errors: the factory or connect raised).",
            w=8,
        ),
        timeseries(
            "Acquires / s",
            [target(ACQUIRES, "{{instance}} {{pool}}")],
            OPS,
            description="Acquires that got a resource.",
            w=8,
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Holding and leaks"))
    for panel in (
        timeseries(
            "Use time p50 / p95 / p99",
            _quantiles("memexport_pool_use_seconds"),
            SECONDS,
            description="How long resources are held, acquire to release "
            "(memexport_pool_use_seconds).",
        ),
        timeseries(
            "Oldest use",
            [target(OLDEST, "{{instance}} {{pool}}")],
            SECONDS,
            description="How long the longest-held resource has been out. A leaked resource "
            "grows here by a second per second; MemexportPoolResourceHeldTooLong compares it "
            "with the usual use time.",
            steps=thresholds((300, "orange")),
        ),
        timeseries(
            "Created vs destroyed / s",
            [
                target(CREATED, "{{instance}} {{pool}} created"),
                target(DESTROYED, "{{instance}} {{pool}} destroyed"),
                target(EXPIRED, "{{instance}} {{pool}} keep-alive expired"),
            ],
            OPS,
            description="Resources created (connections opened, clients built, threads "
            "started) and destroyed (closed, discarded) per second; for HTTP client pools "
            "(httpx), the idle connections closed because their keep-alive expired.",
        ),
        timeseries(
            "Resources held (created - destroyed)",
            [target(HELD, "{{instance}} {{pool}}")],
            COUNT,
            description="Resources the pool holds by its own count since the process "
            "started; MemexportPoolResourcesLeaking fires when it grows every hour for 3 "
            "hours.",
        ),
        table(
            "Longest-held resources",
            [target(f"topk(10, {OLDEST})", table=True)],
            SECONDS,
            description="The pools whose oldest resource has been out longest, now.",
            hide=("Time",),
            rename={"Value": "oldest use"},
        ),
    ):
        d = d.with_panel(panel)
    return render(d)
