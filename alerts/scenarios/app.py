"""Models of a multi-agent app's parts, emitting memexport's real series (docs/metrics.md).

Each model keeps the state a real component would (a cache's entries, a pool's open and
leaked connections, live sessions) and loses it when the process restarts. Rates and shapes
are parameters (callables of :class:`Ctx`), so one model serves healthy and faulty histories.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from history import Ctx, Model

GiB, MiB = 2**30, 2**20
Fn = Callable[[Ctx], float]

#: A subset of memexport's fixed second buckets (DEFAULT_SECONDS_BUCKETS) and the share of
#: observations at or below each: waits when a resource is free, waits in a burst, hold times.
BUCKETS = (0.005, 0.05, 0.25, 1.0, 2.5, 10.0, 60.0)
WAIT_FREE = (0.995, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
WAIT_BURST = (0.35, 0.6, 0.85, 0.97, 0.995, 1.0, 1.0)
WAIT_EXHAUSTED = (0.05, 0.1, 0.2, 0.4, 0.6, 1.0, 1.0)
HOLD = (0.1, 0.6, 0.95, 0.995, 1.0, 1.0, 1.0)
COLLECTORS = ("registry", "process", "memory_limit", "sizer", "cache", "pool", "conversation",
              "agent", "cleanup")


def const(x: float) -> Fn:
    return lambda c: x


ZERO, ONE, FDS = const(0.0), const(1.0), const(80.0)


def after(onset: float, value: float, before: float = 0.0) -> Fn:
    return lambda c: value if c.t >= onset else before


def daily(lo: float = 1.0, hi: float = 3.0, peak_hour: float = 15.0) -> Fn:
    """Traffic from ``lo`` at night to ``hi`` at ``peak_hour``; each day's peak a little
    different (+-3 %), as real days are."""
    def f(c: Ctx) -> float:
        day = c.t / 86400
        amp = (hi - lo) * (1 + 0.03 * math.sin(2 * math.pi * day / 3.3))
        phase = 2 * math.pi * (c.t / 3600 - peak_hour) / 24
        return lo + amp * (1 + math.cos(phase)) / 2
    return f


def warm(c: Ctx, tau: float = 240.0) -> float:
    """Fraction of the working set loaded ``uptime`` seconds after a start."""
    return 1 - math.exp(-c.uptime / tau)


def saw(c: Ctx, amp: float = 0.15, period: float = 840.0) -> float:
    """GC/allocator sawtooth: rises by 2*amp over ``period`` then drops back."""
    frac = (c.t % period) / period
    return 1 + amp * (2 * frac - 1)


def leaked_since(c: Ctx, onset: float) -> float:
    """Seconds this process has been leaking (leaked memory goes with the process)."""
    return max(0.0, c.t - max(onset, c.start))


def _hist(c: Ctx, name: str, n: float, shares: tuple[float, ...], mean: float,
          **labels: str) -> None:
    for le, share in zip(BUCKETS, shares, strict=True):
        c.inc(f"{name}_bucket", n * share, le=_le(le), **labels)
    c.inc(f"{name}_bucket", n, le="+Inf", **labels)
    c.inc(f"{name}_count", n, **labels)
    c.inc(f"{name}_sum", n * mean, **labels)


def _le(x: float) -> str:
    return repr(x) if x != int(x) else f"{x:.1f}"


def _jitter(c: Ctx, x: float, rel: float = 0.1) -> float:
    return max(0.0, x * (1 + rel * (2 * c.rng.random() - 1)))


@dataclass
class Process(Model):
    """The process: RSS, limit, fds, start time, and memexport's own health series."""

    rss: Fn
    limit: float | None = 4 * GiB  # None: the limit probe fails (no series, errors counted)
    source: str = "cgroup_v2"
    oom_at: float | None = None  # the real limit when it cannot be read
    host_total: float = 16 * GiB
    host_other: float = 3 * GiB
    budget: float | None = None
    fds: Fn = FDS
    max_fds: float = 1024
    traffic: Fn = ONE
    crash_onset: float = math.inf  # from then on, each process crashes ...
    crash_after: float = 480.0  # ... this long after its start

    def on_start(self, c: Ctx) -> None:
        self.over_budget = False

    def emit(self, c: Ctx) -> None:
        rss = self.rss(c)
        self._rss = rss
        if self.budget is not None and rss >= self.budget and not self.over_budget:
            self.over_budget = True
            c.mark("budget")
        c.gauge("process_resident_memory_bytes", rss)
        c.gauge("process_virtual_memory_bytes", 2.2 * rss + 600 * MiB)
        c.gauge("process_start_time_seconds", c.start)
        c.gauge("process_open_fds", round(self.fds(c)))
        c.gauge("process_max_fds", self.max_fds)
        c.inc("process_cpu_seconds_total", 0.2 * self.traffic(c) * c.step)
        if self.limit is not None:
            c.gauge("memexport_process_memory_limit_bytes", self.limit, source=self.source)
        c.gauge("memexport_system_memory_available_bytes",
                max(0.0, self.host_total - self.host_other - rss))
        if self.budget is not None:
            c.gauge("memexport_process_memory_budget_bytes", self.budget)
        for name in COLLECTORS:
            failing = name == "memory_limit" and self.limit is None
            c.inc("memexport_collector_errors_total", c.step / 15 if failing else 0,
                  collector=name)
        c.gauge("memexport_collector_duration_seconds", 0.002, collector="registry")
        c.gauge("memexport_collector_duration_seconds", 0.004, collector="process")
        for kind in ("cache", "pool", "conversation", "agent", "cleanup"):
            c.inc("memexport_series_overflow_total", 0, kind=kind)
        c.inc("python_gc_objects_uncollectable_total", 0, generation="2")

    def kills(self, c: Ctx) -> str | None:
        kill_at = self.oom_at
        if kill_at is None:  # the kernel kills at the cgroup limit, else when the host is full
            hard = self.limit is not None and self.source != "physical"
            kill_at = self.limit if hard and self.limit else self.host_total - self.host_other
        if self._rss >= kill_at:
            return "oom"
        if round(self.fds(c)) >= self.max_fds:
            return "fds"
        if c.t >= self.crash_onset and c.uptime >= self.crash_after:
            return "crash"
        return None


@dataclass
class Cache(Model):
    """A cache: lookups hit by ``hit(ctx, fill)``, misses stored, capacity evictions when full;
    without a capacity, ``ttl`` (mean entry lifetime, explicit deletes) may bound it."""

    name: str
    capacity: int | None
    lookups: Fn
    hit: Callable[[Ctx, float], float]
    entry_bytes: float = 2048
    ttl: float | None = None
    budget: float | None = None

    def on_start(self, c: Ctx) -> None:
        self.items = 0.0

    def emit(self, c: Ctx) -> None:
        n = _jitter(c, self.lookups(c)) * c.step
        fill = self.items / self.capacity if self.capacity else min(1.0, self.items / 1000)
        hits = n * self.hit(c, fill)
        misses = n - hits
        self.items += misses
        evicted = deleted = 0.0
        if self.capacity is not None and self.items > self.capacity:
            evicted, self.items = self.items - self.capacity, float(self.capacity)
        if self.ttl:
            deleted = self.items * c.step / self.ttl
            self.items -= deleted
        lbl = {"cache": self.name}
        c.gauge("memexport_cache_items", round(self.items), **lbl)
        c.gauge("memexport_cache_bytes", round(self.items * self.entry_bytes), **lbl)
        if self.capacity is not None:
            c.gauge("memexport_cache_max_items", self.capacity, **lbl)
        if self.budget is not None:
            c.gauge("memexport_cache_budget_bytes", self.budget, **lbl)
        c.inc("memexport_cache_requests_total", hits, result="hit", **lbl)
        c.inc("memexport_cache_requests_total", misses, result="miss", **lbl)
        c.inc("memexport_cache_puts_total", misses, **lbl)
        c.inc("memexport_cache_evictions_total", evicted, reason="capacity", **lbl)
        c.inc("memexport_cache_evictions_total", 0, reason="expired", **lbl)
        c.inc("memexport_cache_evictions_total", deleted, reason="explicit", **lbl)
        c.inc("memexport_cache_evicted_bytes_total", (evicted + deleted) * self.entry_bytes,
              **lbl)


@dataclass
class Pool(Model):
    """A connection pool: normal use (``busy``, plus ``burst``), timeouts, leaked connections
    (one every ``leak_every`` seconds after ``leak_onset``), a connection held for life."""

    name: str
    size: int
    busy: Fn
    acquires: Fn
    burst: Fn = ZERO
    exhausted: Fn = ZERO
    leak_onset: float | None = None
    leak_every: float = 1200.0
    held_for_life: bool = False

    def on_start(self, c: Ctx) -> None:
        self.opened = self.counted = 0

    def emit(self, c: Ctx) -> None:
        lbl = {"pool": self.name}
        leaked = []
        if self.leak_onset is not None:
            first = max(self.leak_onset, c.start)
            k = int(max(0.0, c.t - first) // self.leak_every)
            leaked = [first + (i + 1) * self.leak_every for i in range(k)]
        held = 1 if self.held_for_life and c.uptime > 5 else 0
        fixed = min(self.size, len(leaked) + held)
        demand = max(0.0, c.rng.gauss(self.busy(c), math.sqrt(max(self.busy(c), 0.1))))
        demand += self.burst(c)
        normal = min(self.size - fixed, round(demand))
        in_use = fixed + normal
        self.opened = max(self.opened, in_use)
        pending = max(0, round(demand) - normal)
        acquires = _jitter(c, self.acquires(c)) * c.step
        timeouts = self.exhausted(c) * c.step
        if fixed >= self.size:
            timeouts += acquires * 0.5
        wait = (WAIT_EXHAUSTED if timeouts else WAIT_BURST if pending or self.burst(c)
                else WAIT_FREE)
        c.gauge("memexport_pool_resources", self.opened - in_use, state="idle", **lbl)
        c.gauge("memexport_pool_resources", in_use, state="in_use", **lbl)
        c.gauge("memexport_pool_max_resources", self.size, **lbl)
        c.gauge("memexport_pool_pending_acquires", pending, **lbl)
        ages = [c.t - t0 for t0 in leaked] + ([c.uptime - 5] if held else [])
        ages.append(c.rng.uniform(0.01, 0.4) if normal else 0.0)
        c.gauge("memexport_pool_oldest_use_seconds", round(max(ages), 3), **lbl)
        c.inc("memexport_pool_acquires_total", acquires, **lbl)
        c.inc("memexport_pool_exhausted_total", timeouts, **lbl)
        c.inc("memexport_pool_acquire_errors_total", 0, **lbl)
        c.inc("memexport_pool_created_total", self.opened - self.counted, **lbl)
        self.counted = self.opened
        c.inc("memexport_pool_destroyed_total", 0, **lbl)
        _hist(c, "memexport_pool_acquire_wait_seconds", acquires, wait, 0.01, **lbl)
        _hist(c, "memexport_pool_use_seconds", acquires, HOLD, 0.08, **lbl)


@dataclass
class Sessions(Model):
    """Objects born at ``rate`` per second living ``lifetime`` seconds on average (sessions,
    task agents); after ``leak_onset`` a ``leak`` share of them is never freed."""

    kind: str  # "conversation" or "agent"
    name: str
    rate: Fn
    lifetime: float
    leak: float = 0.0
    leak_onset: float = math.inf
    msgs_per_min: float = 2.0
    summarize_at: int | None = None
    grow_onset: float | None = None  # one session that never ends, growing ...
    grow_per_hour: float = 40.0  # ... by this many messages an hour
    threads: bool = False  # a LangGraph saver: also its live threads
    bytes_per_item: float = 1536.0
    limit_bytes: float | None = None

    def on_start(self, c: Ctx) -> None:
        self.live, self.leaked = 0.0, 0.0

    def emit(self, c: Ctx) -> None:
        lam = self.rate(c)
        new = max(0.0, c.rng.gauss(lam * c.step, math.sqrt(lam * c.step + 1e-9)))
        leaking = new * self.leak if c.t >= self.leak_onset else 0.0
        ended = self.live * c.step / self.lifetime
        self.live += new - leaking - ended
        self.leaked += leaking
        growing = self.grow_onset is not None and c.t >= self.grow_onset
        live = self.live + self.leaked + (1 if growing else 0)
        lbl = {self.kind: self.name}
        per = self.msgs_per_min * self.lifetime / 60
        if self.kind == "agent":
            c.gauge("memexport_agents", round(live), **lbl)
            c.inc("memexport_agents_created_total", new, **lbl)
            c.inc("memexport_agents_finalized_total", ended, **lbl)
            c.gauge("memexport_agent_memory_items", round(live * 6), **lbl)
            c.gauge("memexport_agent_memory_bytes", round(live * 6 * self.bytes_per_item), **lbl)
            if self.limit_bytes:
                c.gauge("memexport_agent_memory_limit_bytes", round(live) * self.limit_bytes,
                        **lbl)
            c.gauge("memexport_agents_over_memory_limit", 0, **lbl)
            c.inc("memexport_agent_cleanups_total", ended, **lbl)
            return
        longest = per * (1 + math.log(max(self.live, 1)) / 3) * (0.85 + 0.3 * c.rng.random())
        if self.summarize_at:
            longest = min(longest, self.summarize_at)
        if growing:
            longest = max(longest, self.grow_per_hour * (c.t - max(self.grow_onset or 0,
                                                                     c.start)) / 3600)
        messages = self.live * per / 2 + self.leaked * per + longest * growing
        added = live * self.msgs_per_min / 60 * c.step
        c.gauge("memexport_conversations", round(live), **lbl)
        c.inc("memexport_conversations_created_total", new, **lbl)
        c.inc("memexport_conversations_finalized_total", ended, **lbl)
        c.gauge("memexport_conversation_messages", round(messages), **lbl)
        c.gauge("memexport_conversation_largest_messages", math.floor(longest), **lbl)
        summarized = added * 0.5 if self.summarize_at else 0.0
        c.gauge("memexport_conversation_summaries",
                round(self.live * 2) if self.summarize_at else 0, **lbl)
        c.gauge("memexport_conversation_bytes", round(messages * self.bytes_per_item), **lbl)
        c.inc("memexport_conversation_messages_added_total", added, **lbl)
        c.inc("memexport_conversation_messages_summarized_total", summarized, **lbl)
        c.inc("memexport_conversation_messages_dropped_total", 0, **lbl)
        if self.threads:
            c.gauge("memexport_conversation_threads", round(live), **lbl)
            c.gauge("memexport_conversation_checkpoints", round(live * 4), **lbl)


@dataclass
class Cleanup(Model):
    """A periodic cleanup job; fails from ``fail_onset``, stops running from ``stop_onset``."""

    name: str
    period: float = 600.0
    fail_onset: float = math.inf
    stop_onset: float = math.inf
    exception: str = "ConnectionError"
    next_run: float = field(default=0.0, init=False)
    last_success: float | None = field(default=None, init=False)

    def on_start(self, c: Ctx) -> None:
        self.next_run, self.last_success = c.start + self.period, None

    def emit(self, c: Ctx) -> None:
        lbl = {"cleanup": self.name}
        c.inc("memexport_cleanup_runs_total", 0, **lbl)
        c.inc("memexport_cleanup_freed_bytes_total", 0, **lbl)
        if c.t >= self.next_run and c.t < self.stop_onset:
            self.next_run += self.period
            c.inc("memexport_cleanup_runs_total", 1, **lbl)
            c.inc("memexport_cleanup_duration_seconds_count", 1, **lbl)
            if c.t >= self.fail_onset:
                c.inc("memexport_cleanup_failures_total", 1, exception=self.exception, **lbl)
            else:
                self.last_success = c.t
                c.inc("memexport_cleanup_freed_bytes_total", 2 * MiB, **lbl)
        c.gauge("memexport_cleanup_period_seconds", self.period, **lbl)
        if self.last_success is not None:
            c.gauge("memexport_cleanup_last_success_timestamp_seconds", self.last_success, **lbl)
