"""Dashboard "memexport / Pools": in use vs idle vs max, waits, exhaustion, holds, leaks."""

from __future__ import annotations

from typing import Any

from memexport.assets.dashboards.names import ADAPTER, pool
from memexport.assets.dashboards.panels import (
    COUNT,
    OPS,
    RATIO,
    SECONDS,
    Dataquery,
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

TITLE = "memexport / Pools"
P = "pool"


class _Q:
    """The pools dashboard's queries for one view."""

    def __init__(self, v: View) -> None:
        self.in_use = v.agg(pool.RESOURCES, P, extra='state="in_use"')
        self.idle = v.agg(pool.RESOURCES, P, extra='state="idle"')
        self.max = v.agg(pool.MAX_RESOURCES, P)
        self.pending = v.agg(pool.PENDING, P)
        self.oldest = v.agg(pool.OLDEST, P, agg="max")
        self.saturation = f"{self.in_use} / {v.on(P)} ({self.max} > 0)"
        self.acquires = v.rate(pool.ACQUIRES, P, by=(P,))
        self.exhausted = v.rate(pool.EXHAUSTED_TOTAL, P, by=(P,))
        self.errors = v.rate(pool.ERRORS, P, by=(P,))
        self.created = v.rate(pool.CREATED, P, by=(P,))
        self.destroyed = v.rate(pool.DESTROYED, P, by=(P,))
        self.expired = v.rate(ADAPTER.POOL_EXPIRED, P, by=(P,))
        self.held = f"{v.agg(pool.CREATED, P)} - {v.on(P)} {v.agg(pool.DESTROYED, P)}"


def _quantiles(v: View, histogram: str) -> list[Dataquery]:
    """p50/p95/p99 of a pool histogram over the selected targets, per pool."""
    buckets = v.rate(f"{histogram}_bucket", P, by=None)
    return [target(v, f"histogram_quantile({q}, sum by (le, {v.label(P)}) ({buckets}))",
                   f"{{{{pool}}}} p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)]


def _overview(v: View, q: _Q) -> list[Any]:
    return [
        stat("Pools", [target(v, f"count({q.in_use}) or vector(0)", "pools")], COUNT,
             description="Selected (instance, pool) series."),
        stat("Resources in use", [target(v, f"sum({q.in_use}) or vector(0)", "in use")], COUNT,
             description="Resources in use over the selected pools."),
        stat("Fullest pool", [target(v, f"max({q.saturation})", "in use / max")], RATIO,
             description="The highest in use / max among bounded pools.",
             steps=thresholds((0.8, "orange"), (0.9, "red"))),
        stat("Waiting now", [target(v, f"sum({q.pending}) or vector(0)", "pending")], COUNT,
             description="Acquires waiting for a resource right now.",
             steps=thresholds((1, "orange"))),
        stat("Timeouts / s", [target(v, f"sum({q.exhausted}) or vector(0)", "exhausted")],
             OPS, description="Acquires that timed out or were refused, per second.",
             steps=thresholds((0.0001, "red"))),
        stat("Longest hold now", [target(v, f"max({q.oldest}) or vector(0)", "oldest")],
             SECONDS, description="The longest a resource of the selected pools has been out.",
             steps=thresholds((300, "orange"))),
    ]


def _capacity(v: View, q: _Q) -> list[Any]:
    return [
        timeseries(
            "Resources: in use vs idle vs max",
            [target(v, q.in_use, "{{instance}} {{pool}} in use"),
             target(v, q.idle, "{{instance}} {{pool}} idle"),
             target(v, q.max, "{{instance}} {{pool}} max")],
            COUNT,
            description="Resources acquired and not released (in use), ready in the pool "
            "(idle), and the pool's size (max, absent when unbounded). In use at max with "
            "nothing idle means the next acquire waits.",
            overrides=[dashed(".* max")],
            w=8,
        ),
        timeseries("Pending acquires", [target(v, q.pending, "{{instance}} {{pool}}")], COUNT,
                   description="Acquires waiting for a resource (thread pools: tasks queued "
                   "for a worker).", w=8),
        timeseries(
            "Saturation (in use / max)",
            [target(v, q.saturation, "{{instance}} {{pool}}")],
            RATIO,
            description="Fraction of the pool in use; MemexportPoolSaturated fires when it "
            "stays high (90 % for 15 minutes by default).",
            max_value=1,
            steps=thresholds((0.9, "red")),
            w=8,
        ),
    ]


def _waits(v: View, q: _Q) -> list[Any]:
    return [
        timeseries(
            "Acquire wait p50 / p95 / p99",
            _quantiles(v, pool.WAIT),
            SECONDS,
            description="Time from asking for a resource to getting it, over the selected "
            "instances. The guide's pool waits its whole timeout on an empty queue before "
            "creating a resource. MemexportPoolAcquireWaitHigh fires on a high p95 (1 s by "
            "default).",
            steps=thresholds((1, "red")),
            w=8,
        ),
        timeseries(
            "Exhausted acquires / s",
            [target(v, q.exhausted, "{{instance}} {{pool}} exhausted"),
             target(v, q.errors, "{{instance}} {{pool}} errors")],
            OPS,
            description="Acquires that timed out or were refused (exhausted), and those that "
            "failed otherwise (errors: the factory or connect raised).",
            w=8,
        ),
        timeseries("Acquires / s", [target(v, q.acquires, "{{instance}} {{pool}}")], OPS,
                   description="Acquires that got a resource.", w=8),
    ]


def _holding(v: View, q: _Q) -> list[Any]:
    return [
        timeseries("Use time p50 / p95 / p99", _quantiles(v, pool.USE), SECONDS,
                   description="How long resources are held, acquire to release."),
        timeseries(
            "Oldest use",
            [target(v, q.oldest, "{{instance}} {{pool}}")],
            SECONDS,
            description="How long the longest-held resource has been out. A leaked resource "
            "grows here by a second per second; MemexportPoolResourceHeldTooLong compares it "
            "with the usual use time.",
            steps=thresholds((300, "orange")),
        ),
        timeseries(
            "Created vs destroyed / s",
            [target(v, q.created, "{{instance}} {{pool}} created"),
             target(v, q.destroyed, "{{instance}} {{pool}} destroyed"),
             target(v, q.expired, "{{instance}} {{pool}} keep-alive expired")],
            OPS,
            description="Resources created (connections opened, clients built, threads "
            "started) and destroyed (closed, discarded) per second; for HTTP client pools "
            "(httpx), the idle connections closed because their keep-alive expired.",
        ),
        timeseries(
            "Resources held (created - destroyed)",
            [target(v, q.held, "{{instance}} {{pool}}")],
            COUNT,
            description="Resources the pool holds by its own count since the process "
            "started; MemexportPoolResourcesLeaking watches the fewest in use instead.",
        ),
        table(
            "Longest-held resources",
            [target(v, f"topk(10, {q.oldest})", table=True)],
            SECONDS,
            description="The pools whose oldest resource has been out longest, now.",
            hide=("Time",),
            rename={"Value": "oldest use"},
        ),
    ]


def build(v: View) -> dict[str, Any]:
    """The pools dashboard as Grafana JSON."""
    q = _Q(v)
    d = dashboard(
        v, "pools", TITLE,
        "Pools instrumented with memexport.pool (the guide's ResourcePool, queues, SQLAlchemy, "
        "redis-py, thread pools, asyncio pools): resources in use against idle and the pool's "
        "size, pending acquires, the wait for a resource (p50/p95/p99), exhausted acquires, "
        "how long resources are held, resources created and destroyed, and the oldest "
        "resource still out (a leak grows there). One series per instance and pool.",
        extra_variables=[label_variable(v, P, pool.RESOURCES)],
    )
    return render(rows(d, ("Overview", _overview(v, q)), ("Capacity", _capacity(v, q)),
                       ("Waits and exhaustion", _waits(v, q)),
                       ("Holding and leaks", _holding(v, q))))
