"""Thresholds and windows of the generated alert rules, one frozen dataclass per area.

Each is a section of :class:`~memexport.assets.config.Config` (``process.trend_window``,
``memory.pressure_some_ratio``, ...); the defaults give the committed ``alerts/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memexport.assets.values import Duration
from memexport.assets.values import doc as _doc

__all__ = ["Caches", "Cleanups", "Conversations", "FileDescriptors", "Lifetimes", "Memory",
           "Meta", "Pools", "Process", "Tasks"]


@dataclass(frozen=True)
class Process:
    """Process memory: levels, time to the limit, growth against yesterday."""

    peak_window: Duration = field(default=Duration("15m"), metadata=_doc(
        "RSS is read as its peak over this window (longer than the GC sawtooth)"))
    trend_window: Duration = field(default=Duration("30m"), metadata=_doc(
        "least-squares fit of the peak; trend rules start this long after a start"))
    deceleration: float = field(default=0.5, metadata=_doc(
        "the slope of the last half window must be at least this fraction of the whole "
        "window's: warm-up levels off, a leak does not"))
    near_limit_warning: float = 0.80
    near_limit_warning_for: Duration = Duration("15m")
    near_limit_critical: float = 0.90
    near_limit_critical_for: Duration = Duration("5m")
    near_limit_keep_firing_for: Duration = Duration("15m")
    time_to_limit_warning: Duration = field(default=Duration("6h"), metadata=_doc(
        "ticket when the peak reaches the limit within this, at the current slope"))
    time_to_limit_warning_for: Duration = Duration("15m")
    time_to_limit_critical: Duration = field(default=Duration("2h"), metadata=_doc(
        "page when the peak reaches the limit within this"))
    time_to_limit_critical_for: Duration = Duration("10m")
    time_to_limit_keep_firing_for: Duration = Duration("30m")
    growing_vs_yesterday: float = field(default=0.015, metadata=_doc(
        "ticket when the hourly mean of the peak is this fraction of the limit above the same "
        "hour yesterday and still rising"))
    growing_steady_steps: int = field(default=3, metadata=_doc(
        "without a yesterday: rising in this many consecutive steps"))
    growing_steady_step: Duration = field(default=Duration("6h"), metadata=_doc(
        "... of this length (steps x step must exceed any daily ramp)"))
    growing_steady_min: float = field(default=0.01, metadata=_doc(
        "... each by at least this fraction of the limit"))
    growing_for: Duration = Duration("1h")
    growing_keep_firing_for: Duration = Duration("2h")
    unknown_limit_doubling: Duration = field(default=Duration("4h"), metadata=_doc(
        "growing fast: RSS would double within this (a ticket; a page when no limit can be "
        "read)"))
    fast_growth_for: Duration = Duration("15m")
    unknown_limit_for: Duration = Duration("15m")
    limit_unknown_for: Duration = Duration("15m")
    limit_unknown_keep_firing_for: Duration = Duration("30m")
    over_budget_for: Duration = Duration("15m")
    crash_loop_restarts: int = field(default=3, metadata=_doc(
        "ticket on this many restarts within crash_loop_window"))
    crash_loop_window: Duration = Duration("1h")
    crash_loop_keep_firing_for: Duration = Duration("30m")
    uncollectable_window: Duration = Duration("30m")
    uncollectable_for: Duration = Duration("1h")


@dataclass(frozen=True)
class FileDescriptors:
    """Open file descriptors against ``process_max_fds``, per process."""

    near_limit_warning: float = 0.80
    near_limit_warning_for: Duration = Duration("15m")
    near_limit_critical: float = 0.95
    near_limit_critical_for: Duration = Duration("5m")
    near_limit_keep_firing_for: Duration = Duration("15m")
    time_to_limit_warning: Duration = Duration("6h")
    time_to_limit_critical: Duration = Duration("2h")
    time_to_limit_for: Duration = Duration("15m")
    time_to_limit_keep_firing_for: Duration = Duration("30m")
    growing_vs_yesterday: float = field(default=0.05, metadata=_doc(
        "ticket when the hourly mean is this fraction of max_fds above the same hour yesterday "
        "and still rising"))
    growing_for: Duration = Duration("1h")
    growing_keep_firing_for: Duration = Duration("2h")


@dataclass(frozen=True)
class Caches:
    """Cache thrashing (measured against lookups), unbounded growth, budgets."""

    rate_window: Duration = Duration("10m")
    thrashing_hit_ratio: float = field(default=0.5, metadata=_doc(
        "thrashing: fewer hits than this fraction of lookups ..."))
    thrashing_evictions_per_lookup: float = field(default=0.25, metadata=_doc(
        "... and at least this many capacity evictions per lookup"))
    thrashing_min_lookups: float = field(default=0.1, metadata=_doc("lookups per second"))
    thrashing_for: Duration = Duration("15m")
    thrashing_keep_firing_for: Duration = Duration("30m")
    unbounded_removal_ratio: float = field(default=0.5, metadata=_doc(
        "... and removes (evicts, deletes, expires) less than this fraction of what it stores"))
    unbounded_min_items: int = 1000
    unbounded_for: Duration = Duration("3h")
    unbounded_linearity: float = field(default=0.7, metadata=_doc(
        "the slope of the last hour must be at least this fraction of the slope over "
        "unbounded_for: a dict filling towards a steady size decelerates, a leak does not"))
    unbounded_vs_yesterday: float = field(default=1.1, metadata=_doc(
        "where a yesterday exists, entries must exceed this multiple of the same hour's"))
    unbounded_keep_firing_for: Duration = Duration("1h")
    over_budget_for: Duration = Duration("15m")


@dataclass(frozen=True)
class Pools:
    """Pool exhaustion, saturation, waits, resources held or leaked."""

    held_on_purpose: str = field(default="", metadata=_doc(
        "regex of pool names whose resources are held on purpose (LISTEN/NOTIFY, pub/sub): "
        "never 'held too long' nor 'leaking'"))
    exhausted_window: Duration = Duration("5m")
    exhausted_warning_for: Duration = Duration("10m")
    exhausted_critical_for: Duration = Duration("20m")
    exhausted_keep_firing_for: Duration = Duration("15m")
    saturated_ratio: float = 0.9
    saturated_for: Duration = Duration("15m")
    saturated_keep_firing_for: Duration = Duration("15m")
    wait_p95_seconds: float = 1.0
    wait_for: Duration = Duration("10m")
    held_min: Duration = field(default=Duration("5m"), metadata=_doc(
        "held too long: out for longer than this ..."))
    held_p99_factor: float = field(default=10.0, metadata=_doc(
        "... and this many times the p99 hold time of the last hour"))
    held_since_start: Duration = field(default=Duration("10m"), metadata=_doc(
        "a resource taken within this of the process start and never returned is a lifetime "
        "resource, not a leak"))
    held_for: Duration = Duration("15m")
    leak_floor_rise: int = field(default=2, metadata=_doc(
        "leaking: the fewest resources in use rose by this many within leak_window ..."))
    leak_window: Duration = Duration("1h")
    leak_oldest: Duration = field(default=Duration("30m"), metadata=_doc(
        "... and the oldest has been out for longer than this"))
    leak_for: Duration = Duration("20m")
    leak_keep_firing_for: Duration = Duration("1h")


@dataclass(frozen=True)
class Conversations:
    """Histories growing without summaries or drops, live sessions leaking, drops, budgets."""

    history_offset: Duration = field(default=Duration("2h"), metadata=_doc(
        "growing: the longest history is above its value this long ago ..."))
    history_for: Duration = field(default=Duration("2h30m"), metadata=_doc(
        "... continuously for this long, with no summary and no drop"))
    history_keep_firing_for: Duration = Duration("1h")
    dropped_for: Duration = Duration("15m")
    threads_min: int = 100
    threads_for: Duration = Duration("3h")
    over_budget_for: Duration = Duration("15m")


@dataclass(frozen=True)
class Lifetimes:
    """Live conversations/agents leaking: Little's law, robust to churn and daily cycles."""

    rate_window: Duration = Duration("1h")
    baseline_window: Duration = field(default=Duration("1d"), metadata=_doc(
        "the usual apparent lifetime is a low quantile over this window"))
    baseline_quantile: float = 0.1
    factor: float = field(default=2.0, metadata=_doc(
        "leaking: live objects above creation rate x usual lifetime exceed this many times "
        "the day's average of that expected number"))
    min_live: int = 20
    min_created_per_hour: float = 6.0
    for_: Duration = field(default=Duration("1h"), metadata=_doc("for:"))
    keep_firing_for: Duration = Duration("2h")


@dataclass(frozen=True)
class Cleanups:
    """Cleanup jobs failing or not succeeding within twice their period."""

    failing_window: Duration = Duration("1h")
    failing_min: int = field(default=2, metadata=_doc(
        "failing: this many failures in the window, or every run of the window failed"))
    failing_for: Duration = Duration("15m")
    failing_keep_firing_for: Duration = Duration("30m")
    stale_periods: float = 2.0
    over_limit_for: Duration = Duration("15m")


@dataclass(frozen=True)
class Meta:
    """memexport's own health, the scrape, and Prometheus evaluating these rules."""

    collector_errors_window: Duration = Duration("10m")
    collector_errors_for: Duration = Duration("30m")
    overflow_window: Duration = Duration("30m")
    target_down_for: Duration = Duration("10m")
    rule_failures_window: Duration = Duration("5m")
    rule_failures_for: Duration = Duration("10m")
    rule_failures_selector: str = field(default="", metadata=_doc(
        "matchers for prometheus_rule_evaluation_failures_total; default: the rule_group of "
        "these rules (rule_group=~\".*;<group_prefix>-.*\")"))


@dataclass(frozen=True)
class Memory:
    """Where memory goes: OOM kills in the cgroup, memory pressure (PSI), allocator retention
    and unattributed growth, read from the RSS ledger and the cgroup forensics."""

    oom_window: Duration = field(default=Duration("10m"), metadata=_doc(
        "a kill in the cgroup fires for this long (an event: no for:)"))
    pressure_window: Duration = field(default=Duration("5m"), metadata=_doc(
        "the PSI stall counter's rate is taken over this window"))
    pressure_some_ratio: float = field(default=0.10, metadata=_doc(
        "warning: some task stalled on memory this share of the time ..."))
    pressure_some_for: Duration = Duration("15m")
    pressure_full_ratio: float = field(default=0.10, metadata=_doc(
        "critical: every task stalled on memory this share of the time ..."))
    pressure_full_for: Duration = Duration("5m")
    pressure_keep_firing_for: Duration = Duration("10m")
    retention_ratio: float = field(default=0.25, metadata=_doc(
        "free memory the allocators keep (glibc, pymalloc) above this share of RSS ..."))
    retention_usage_ratio: float = field(default=0.70, metadata=_doc(
        "... while RSS is above this share of the memory limit"))
    retention_for: Duration = Duration("30m")
    retention_keep_firing_for: Duration = Duration("30m")
    unattributed_growth_ratio: float = field(default=0.02, metadata=_doc(
        "unattributed memory grows by more than this share of the limit per hour ..."))
    unattributed_window: Duration = field(default=Duration("1h"), metadata=_doc(
        "... least squares over this window ..."))
    unattributed_min_uptime: Duration = field(default=Duration("2h"), metadata=_doc(
        "... in a process up for longer than this (native libraries load during warm-up)"))
    unattributed_for: Duration = Duration("1h")
    unattributed_keep_firing_for: Duration = Duration("1h")


@dataclass(frozen=True)
class Tasks:
    """asyncio tasks that are started and never finish (track_asyncio_tasks())."""

    window: Duration = field(default=Duration("1h"), metadata=_doc(
        "leaking: pending tasks above their peak of the window before the last, rising over "
        "the last window ..."))
    oldest_age: Duration = field(default=Duration("1h"), metadata=_doc(
        "... and the oldest pending for longer than this"))
    for_: Duration = field(default=Duration("2h"), metadata=_doc("for:"))
    keep_firing_for: Duration = Duration("1h")


@dataclass(frozen=True)
class Actions:
    """What the process does about its alerts (memexport.start_actions, docs/actions.md)."""

    failing_window: Duration = field(default=Duration("1h"), metadata=_doc(
        "failing: in this window an action failed ..."))
    failing_ratio: float = field(default=0.5, metadata=_doc(
        "... in at least this share of its runs"))
    ineffective_window: Duration = field(default=Duration("2h"), metadata=_doc(
        "shedding ineffective: a freeing action ran in this window ..."))
    ineffective_runs: int = field(default=3, metadata=_doc("... at least this many times ..."))
    ineffective_ratio: float = field(default=0.01, metadata=_doc(
        "... and all its runs gave back less than this share of RSS"))
    rejected_window: Duration = field(default=Duration("15m"), metadata=_doc(
        "webhook rejected: any request refused in this window"))
