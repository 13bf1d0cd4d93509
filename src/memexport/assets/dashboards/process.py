"""Dashboard "memexport / Process memory": RSS against its limit, GC, fds, tracemalloc, health,
and what the process did about its alerts (memexport.start_actions)."""

from __future__ import annotations

from typing import Any

from memexport.assets.dashboards.names import (
    STANDARD,
    actions,
    collector,
    core,
    gcpause,
    tracesites,
)
from memexport.assets.dashboards.panels import (
    BYTES,
    COUNT,
    OPS,
    RATIO,
    SECONDS,
    dashboard,
    dashed,
    link,
    render,
    right_axis,
    rows,
    stat,
    table,
    target,
    thresholds,
    timeseries,
)
from memexport.assets.dashboards.view import View

__all__ = ["TITLE", "build"]

TITLE = "memexport / Process memory"
#: Horizon of the time-to-limit panels: an instance that is not growing shows this (7 days).
HORIZON_SECONDS = 7 * 86400


class _Q:
    """The process dashboard's queries for one view."""

    def __init__(self, v: View) -> None:
        self.rss = v.metric(STANDARD.RSS)
        self.rss_i = f"max {v.by()} ({self.rss})"
        self.limit = v.metric(collector.LIMIT_BYTES)
        self.limit_i = f"max {v.by()} ({self.limit})"
        self.usage = f"{self.rss_i} / {self.limit_i}"
        # Slope over an hour: long enough to ignore the GC sawtooth.
        self.growth = f"max {v.by()} (deriv({self.rss}[1h]))"
        self.time_to_limit = (
            f"clamp(({self.limit_i} - {self.rss_i}) / ({self.growth} > 0), 0, "
            f"{HORIZON_SECONDS}) or ({self.limit_i} * 0 + {HORIZON_SECONDS})")
        # Seconds since each instance started: drops to zero on a restart.
        self.uptime = f"time() - max {v.by()} ({v.metric(STANDARD.START)})"
        self.overflow = v.rate(core.OVERFLOW_TOTAL, by=("kind",))
        self.errors = (f"{v.rate(core.ERRORS_TOTAL, by=('collector',))} or sum "
                       f"{v.by('collector')} (0 * {v.metric(core.DURATION_SECONDS)})")

    @staticmethod
    def pause_quantile(v: View, q: float) -> str:
        buckets = v.rate(f"{gcpause.GC_PAUSE}_bucket", by=("generation", "le"))
        return f"histogram_quantile({q}, {buckets})"


def _overview(v: View, q: _Q) -> list[Any]:
    return [
        stat("Targets down", [target(v, f"count({v.metric(STANDARD.UP)} == 0) or vector(0)",
                                     "down")], COUNT,
             description="Selected scrape targets whose last scrape failed (up == 0).",
             steps=thresholds((1, "red"))),
        stat("Highest memory usage", [target(v, f"max({q.usage})", "max")], RATIO,
             description="The largest RSS / limit ratio among the selected instances.",
             steps=thresholds((0.8, "orange"), (0.9, "red"))),
        stat("Soonest time to limit", [target(v, f"min({q.time_to_limit})", "min")], SECONDS,
             description="The shortest predicted time until an instance's RSS reaches its "
             "limit at its growth rate of the last hour (7 days = not growing).",
             steps=thresholds((4 * 3600, "orange"), (24 * 3600, "green"), base="red")),
        stat("Total RSS", [target(v, f"sum({q.rss})", "total")], BYTES,
             description="Resident memory summed over the selected instances."),
        stat("Uncollectable objects (all)",
             [target(v, f"sum({v.metric(STANDARD.GC_UNCOLLECTABLE)})", "total")], COUNT,
             description="Objects the garbage collector found but could not free, summed "
             "over instances and generations. Any increase is a leak.",
             steps=thresholds((1, "orange"))),
        stat("Collector errors / s (all)",
             [target(v, f"sum({v.rate(core.ERRORS_TOTAL, by=None)}) or vector(0)", "errors")],
             OPS, description="Failed reads (a probe, a user's len, a sizer) skipped per second.",
             steps=thresholds((0.000001, "orange"))),
    ]


def _memory(v: View, q: _Q) -> list[Any]:
    return [
        timeseries(
            "RSS vs limit",
            [target(v, q.rss, "{{instance}} rss"),
             target(v, q.limit, "{{instance}} limit ({{source}})"),
             target(v, f"max {v.by()} ({v.metric(core.PROCESS_BUDGET)})",
                    "{{instance}} budget")],
            BYTES,
            description="Resident set size against the effective memory limit (its source: "
            "cgroup v2/v1, RLIMIT_AS or physical memory) and the budget set with "
            "memexport.budget(), when there is one.",
            overrides=[dashed(".* (limit|budget).*")],
        ),
        timeseries("Memory usage (RSS / limit)", [target(v, q.usage)], RATIO,
                   description="RSS as a fraction of the effective limit. The alerts page on "
                   "the time to the limit and at a high level (90 % by default).",
                   steps=thresholds((0.8, "orange"), (0.9, "red"))),
        timeseries("Predicted time to limit", [target(v, q.time_to_limit)], SECONDS,
                   description="Headroom (limit - RSS) divided by the RSS slope over the last "
                   "hour (deriv), capped at 7 days; 7 days means not growing.", w=8),
        table("Top 10 instances by memory usage",
              [target(v, f"topk(10, {q.usage})", table=True)], RATIO,
              description="The instances closest to their memory limit right now.",
              hide=("Time",), rename={"Value": "RSS / limit"}, w=8),
        timeseries("System available memory",
                   [target(v, v.metric(collector.AVAILABLE_BYTES))], BYTES,
                   description="Memory the host (or container) can still give to processes "
                   "without swapping.", w=8),
        timeseries("RSS growth (slope over 1h)", [target(v, q.growth)], "binBps",
                   description="How fast RSS grows, from a linear fit over the last hour "
                   "(deriv). A steady positive slope is a leak; the GC sawtooth averages out.",
                   min_value=None, w=8),
        timeseries("Unique set size (USS)",
                   [target(v, v.metric(collector.USS_BYTES), "{{instance}} uss"),
                    target(v, q.rss, "{{instance}} rss")], BYTES,
                   description="Memory only this process uses (opt-in: reads smaps). RSS also "
                   "counts pages shared with other processes, e.g. pre-fork workers.",
                   overrides=[dashed(".* rss")], w=8),
        timeseries("Virtual memory (VMS)", [target(v, v.metric(STANDARD.VMS))], BYTES,
                   description="Virtual memory size: address space reserved, mostly not "
                   "resident (thread stacks, arenas, mapped files). It is what RLIMIT_AS "
                   "limits (limit source rlimit_as); otherwise watch RSS.", w=8),
    ]


def _gc(v: View, q: _Q) -> list[Any]:
    gen = "{{instance}} gen {{generation}}"
    return [
        timeseries("GC collections / s",
                   [target(v, v.rate(STANDARD.GC_COLLECTIONS, by=("generation",)), gen)], OPS,
                   description="Garbage collector runs per second by generation."),
        timeseries("Objects collected / s",
                   [target(v, v.rate(STANDARD.GC_COLLECTED, by=("generation",)), gen)], OPS,
                   description="Objects freed by the garbage collector per second by "
                   "generation."),
        timeseries("GC pause (p50, p99)",
                   [target(v, q.pause_quantile(v, 0.5), f"{gen} p50"),
                    target(v, q.pause_quantile(v, 0.99), f"{gen} p99")], SECONDS,
                   description="Duration of garbage collector pauses by generation, from the "
                   "memexport_gc_pause_seconds histogram.", w=8),
        timeseries("GC pause time per second",
                   [target(v, v.rate(f"{gcpause.GC_PAUSE}_sum", by=("generation",)), gen)],
                   RATIO, description="Seconds spent in GC pauses per second of wall time: the "
                   "share of time the app is stopped by the collector.", w=8),
        timeseries("Uncollectable objects",
                   [target(v, v.agg(STANDARD.GC_UNCOLLECTABLE, by=("generation",)), gen)],
                   COUNT, description="Objects found by the collector that could not be freed "
                   "(total since start). It should stay flat at zero.", w=8),
    ]


def _resources(v: View, q: _Q) -> list[Any]:
    fds = v.metric(STANDARD.OPEN_FDS)
    return [
        timeseries("Open file descriptors", [target(v, fds)], COUNT, w=6,
                   description="File descriptors open in the process."),
        timeseries("File descriptor usage (open / max)",
                   [target(v, f"{fds} / {v.metric(STANDARD.MAX_FDS)}")], RATIO, w=6,
                   description="Open file descriptors as a fraction of the process's limit "
                   "(process_max_fds).", steps=thresholds((0.8, "orange"), (0.9, "red"))),
        timeseries("Threads", [target(v, v.metric(collector.THREADS))], COUNT, w=6,
                   description="Threads of the process. A count that only grows is a thread "
                   "leak."),
        timeseries("Uptime", [target(v, q.uptime)], SECONDS, w=6,
                   description="Time since each instance started (time() - "
                   "process_start_time_seconds). A drop to zero is a restart, e.g. an OOM "
                   "kill."),
    ]


def _tracemalloc(v: View, q: _Q) -> list[Any]:
    sites = v.metric(tracesites.SITE_BYTES)
    return [
        timeseries("tracemalloc traced vs peak",
                   [target(v, v.metric(tracesites.TRACED_BYTES), "{{instance}} traced"),
                    target(v, v.metric(tracesites.PEAK_BYTES), "{{instance}} peak")], BYTES,
                   description="Memory allocated by Python and traced by tracemalloc (opt-in), "
                   "and its peak.", overrides=[dashed(".* peak")]),
        table("Top allocation sites",
              [target(v, f"topk(10, sum by (site) ({sites}))", table=True)], BYTES,
              description="The 10 source lines holding the most traced memory, summed over "
              "the selected instances (tracemalloc opt-in).", rename={"Value": "bytes"}),
        timeseries("Top allocation sites by instance",
                   [target(v, f"topk(10, max {v.by('site')} ({sites}))",
                           "{{instance}} {{site}}")], BYTES,
                   description="The 10 largest (instance, allocation site) pairs over time: a "
                   "line that only grows points at the leak.", w=24),
    ]


def _health(v: View, q: _Q) -> list[Any]:
    return [
        timeseries("Collector errors / s", [target(v, q.errors, "{{instance}} {{collector}}")],
                   OPS, description="Failed reads per second by collector (memexport_collector_"
                   "errors_total); each failing source is logged once by the app. Zero when "
                   "healthy.", w=6),
        timeseries("Collector run duration",
                   [target(v, f"max {v.by('collector')} ({v.metric(core.DURATION_SECONDS)})",
                           "{{instance}} {{collector}}")], SECONDS,
                   description="How long the last run of each collector took (registry = the "
                   "scrape-time read of all components).", w=6),
        timeseries("Series folded into __overflow__ / s",
                   [target(v, q.overflow, "{{instance}} {{kind}}")], OPS,
                   description="Components per second registered under a new name after their "
                   "kind reached its cap of distinct names (memexport_series_overflow_total), "
                   "counted under __overflow__. Zero when healthy; otherwise a name is built "
                   "from data (e.g. a session id).", w=6),
        timeseries("Sampled sizes covered",
                   [target(v, f"min {v.by()} ({v.metric(core.SIZER_COVERAGE)})",
                           "{{instance}}")], RATIO,
                   description="Share of the components with a sampled deep size that the "
                   "collector sized in the last minute (memexport_sizer_coverage_ratio). 1 when "
                   "healthy; lower means the per-tick sampling budget cannot reach every "
                   "collection, and their bytes are older estimates.", w=6),
    ]


def _actions(v: View, q: _Q) -> list[Any]:
    """What the process did about its alerts: runs, failures and skips of each action
    (memexport.start_actions, docs/actions.md), their durations, the memory they gave back,
    the webhook's requests and the evidence on disk."""
    def duration(p: float) -> str:
        buckets = v.rate(f"{actions.DURATION}_bucket", by=("action", "le"))
        return f"histogram_quantile({p}, {buckets})"

    runs = "{{instance}} {{action}}"
    steps = f".* ({'|'.join(actions.STEPS)})"
    return [
        timeseries("Action runs / s", [target(v, v.rate(actions.RUNS, by=("action",)), runs)],
                   OPS, description="Runs of each action started by an Alertmanager alert "
                   f"naming this process ({actions.RUNS}). Actions are rate-limited: a few "
                   "runs per hour at most.", w=8),
        timeseries("Action failures and skips / s",
                   [target(v, v.rate(actions.FAILURES, by=("action", "reason")),
                           f"{runs} failed: {{{{reason}}}}"),
                    target(v, v.rate(actions.SKIPPED, by=("action", "reason")),
                           f"{runs} skipped: {{{{reason}}}}")], OPS,
                   description=f"Runs that raised or timed out ({actions.FAILURES}), and "
                   "matched alerts that started no run (cooldown, rate_limit, running, "
                   f"queue_full, dry_run: {actions.SKIPPED}). Failures page through "
                   "MemexportActionFailing.", overrides=[dashed(".* skipped: .*")], w=8),
        timeseries("Action duration (p50, p99)",
                   [target(v, duration(0.5), f"{runs} p50"),
                    target(v, duration(0.99), f"{runs} p99")], SECONDS,
                   description=f"How long runs took ({actions.DURATION}); a run that timed "
                   "out counts its timeout.", w=8),
        timeseries("Memory freed by actions (B/s)",
                   [target(v, v.rate(actions.FREED, by=("action",)), f"{runs} RSS"),
                    target(v, v.rate(actions.STEP_FREED, by=("action", "step")),
                           f"{runs} {{{{step}}}}")], "binBps",
                   description="RSS each freeing action gave back (before minus after its "
                   f"runs: {actions.FREED}), and what each step reported freed in its own "
                   "measure (component bytes for caches and histories, RSS for the others: "
                   f"{actions.STEP_FREED}). Runs that free nothing while the alert keeps "
                   "firing: MemexportActionSheddingIneffective.",
                   overrides=[dashed(steps)], w=8),
        timeseries("Webhook requests and alerts / s",
                   [target(v, v.rate(actions.REQUESTS, by=("result",)),
                           "{{instance}} request {{result}}"),
                    target(v, v.rate(actions.ALERTS, by=("status", "result")),
                           "{{instance}} alert {{status}} {{result}}"),
                    target(v, v.rate(actions.RELAYS, by=("result",)),
                           "{{instance}} relay {{result}}")], OPS,
                   description="Requests to the actions webhook by result (accepted, or why "
                   "refused: unauthorized, bad_payload, ...), the alerts they carried by "
                   "status and whether they matched an action, named another process or were "
                   "relayed to the replica they name, and the relayed notifications by result.",
                   overrides=[dashed(".* (alert|relay) .*")], w=8),
        timeseries("Evidence on disk",
                   [target(v, f"max {v.by()} ({v.metric(actions.EVIDENCE_BYTES)})",
                           "{{instance}} bytes"),
                    target(v, f"max {v.by()} ({v.metric(actions.EVIDENCE_FILES)})",
                           "{{instance}} files")], BYTES,
                   description=f"Bytes of evidence files ({actions.EVIDENCE_BYTES}) in the "
                   "evidence directory, capped by evidence_max_bytes, and how many files "
                   f"({actions.EVIDENCE_FILES}, right axis).",
                   overrides=[right_axis(".* files", COUNT)], w=8),
    ]


def build(v: View) -> dict[str, Any]:
    """The process dashboard as Grafana JSON."""
    q = _Q(v)
    d = dashboard(
        v, "process", TITLE,
        "Process memory of memexport-instrumented Python apps: RSS against its effective "
        "limit (cgroup, rlimit or physical memory), predicted time to the limit, garbage "
        "collector, file descriptors, threads, tracemalloc allocation sites, the "
        "collector's own health and what the actions (memexport.start_actions) did. One "
        "series per instance.",
    ).link(link(v, "memory", "Where memory goes",
                "The RSS ledger: which class of memory RSS is made of"))
    return render(rows(d, ("Overview", _overview(v, q)), ("Memory", _memory(v, q)),
                       ("Garbage collector", _gc(v, q)), ("Resources", _resources(v, q)),
                       ("tracemalloc", _tracemalloc(v, q)), ("Collector health", _health(v, q)),
                       ("Actions", _actions(v, q))))
