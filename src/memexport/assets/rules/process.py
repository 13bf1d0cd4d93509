"""Process rules: memory against its limit (or budget, or the host's available memory), time to
that limit, growth against the same hour yesterday, file descriptors, restarts, memexport's own
health and the rule evaluation itself.
"""

from __future__ import annotations

from memexport.assets.config import Duration, format_duration, parse_duration
from memexport.assets.rules.common import GATE_METRIC, Q, Rule, num

__all__ = ["CAPACITY", "RSS", "START", "groups", "resource_trend"]

RSS = "instance:memexport_process_resident_memory_bytes:sum"
START = "instance:process_start_time_seconds:min"
PEAK = "instance:memexport_process_resident_memory_bytes:peak"
PEAK_AVG = "instance:memexport_process_resident_memory_bytes:peak_avg1h"
CAPACITY = "instance:memexport_process_memory_capacity_bytes:fallback"
USAGE = "instance:memexport_process_memory_usage:ratio"
DERIV = "instance:memexport_process_resident_memory_bytes:deriv"
DERIV_RECENT = "instance:memexport_process_resident_memory_bytes:deriv_recent"
TTL = "instance:memexport_process_memory_time_to_limit:seconds"
FDS = "instance:process_open_fds:ratio"
FDS_PEAK = "instance:process_open_fds:ratio_peak"
FDS_PEAK_AVG = "instance:process_open_fds:ratio_peak_avg1h"
FDS_DERIV = "instance:process_open_fds:ratio_deriv"
FDS_DERIV_RECENT = "instance:process_open_fds:ratio_deriv_recent"
FDS_TTL = "instance:process_open_fds_time_to_limit:seconds"
COMPONENT_BYTES = "component:memexport_bytes:sum"
LIMIT = "memexport_process_memory_limit_bytes"
PHYSICAL = 'source="physical"'
#: Limits that kill or fail the process (cgroup, RLIMIT_AS); ``physical`` is the host's RAM.
HARD = ('source!=""', 'source!="physical"')
COMPONENT_DERIV = "component:memexport_bytes:deriv"


def resource_trend(q: Q, value: str, peak: str, peak_avg: str, deriv: str, deriv_recent: str
                   ) -> list[Rule]:
    """Peak envelope, its hourly mean and its slopes over the trend window and its last half."""
    p = q.cfg.process
    half = Duration(format_duration(parse_duration(p.trend_window) / 2))
    return [
        q.record(peak, f"max_over_time({value}[{q.d(p.peak_window)}])",
                 "The peak over a window longer than the GC sawtooth: what meets the limit."),
        q.record(peak_avg, f"avg_over_time({peak}[{q.d('1h')}])",
                 "Hourly mean of the peak, compared with the same hour yesterday."),
        q.record(deriv, f"deriv({peak}[{q.d(p.trend_window)}])",
                 "Slope of the peak (per second), least squares over the trend window..."),
        q.record(deriv_recent, f"deriv({peak}[{q.d(half)}])",
                 "... and over its last half: warm-up levels off, a leak keeps its slope."),
    ]


def _steady(q: Q, deriv: str, deriv_recent: str) -> str:
    """The slope is positive, not decelerating, and the window holds this process only."""
    p = q.cfg.process
    return (f"({deriv} > 0)\n"
            f"  and {q.on()} ({deriv_recent} >= {num(p.deceleration)} * {deriv})\n"
            f"  and {q.on()} (time() - {START} >= {q.s(p.trend_window)})")


def _vs_yesterday(q: Q, peak_avg: str, capacity: str | None, ratio: float) -> str:
    """Hourly peak above the same hour yesterday by ``ratio`` of capacity, and still rising;
    neither hour holds a start (its warm-up), and yesterday must exist, else: rising in
    ``growing_steady_steps`` steps of ``growing_steady_step`` (longer than any daily ramp)."""
    p = q.cfg.process

    def above(x: float) -> str:
        if capacity is None:  # a ratio already
            return f"> {num(x)}"
        return f"> {q.on()} group_left() ({num(x)} * {capacity})"

    warm = q.seconds("1h") + q.seconds(p.peak_window) + q.seconds("15m")
    day = q.d("1d")
    yesterday = (
        f"  ({peak_avg} - {peak_avg} offset {day})\n"
        f"    {above(ratio)}\n"
        f"  and {q.on()} ({peak_avg} > {peak_avg} offset {q.d('2h')})\n"
        f"  and {q.on()} (time() - {START} > {num(warm)})\n"
        f"  and {q.on()} (time() - {q.s('1d')} - {START} offset {day} > {num(warm)})")
    step = q.seconds(p.growing_steady_step)
    steps = []
    for i in range(p.growing_steady_steps):
        newer = peak_avg if i == 0 else f"{peak_avg} offset {format_duration(step * i)}"
        older = f"{peak_avg} offset {format_duration(step * (i + 1))}"
        steps.append(f"  ({newer} - {older})\n    {above(p.growing_steady_min)}")
    first_day = f"\n  and {q.on()}\n".join(steps)
    return (f"(\n{yesterday}\n)\nor {q.on()}\n(\n{first_day}\n  unless {q.on()} "
            f"{peak_avg} offset {day}\n)")


def _recording(q: Q) -> list[Rule]:
    p, pid = q.cfg.process, q.labels.pid
    gate = q.gate()
    limit = q.m(LIMIT, *HARD)
    budget = f"sum {q.by()} (max {q.by(pid)} ({q.m('memexport_process_memory_budget_bytes')}))"
    available = f"max {q.by()} ({q.m('memexport_system_memory_available_bytes')})"
    components = "\nor\n".join(
        f'  label_replace(max {q.by(lbl)} ({q.c(metric, lbl)}), "component", "{kind}/$1", '
        f'"{lbl}", "(.*)")'
        for kind, lbl, metric in (
            ("cache", q.labels.cache, "memexport_cache_bytes"),
            ("conversation", q.labels.conversation, "memexport_conversation_bytes"),
            ("agent", q.labels.agent, "memexport_agent_memory_bytes")))
    rules = [
        q.record(RSS, f"""
sum {q.by()} (max {q.by(pid)} ({q.m('process_resident_memory_bytes')}))
  and {q.on()} {gate}
""", "Resident memory of the target: summed over the workers of a multiprocess target (they "
     "share the container's limit), duplicates of a second exporter counted once."),
        q.record(START, f"{q.per_target('process_start_time_seconds', agg='min')}\n"
                        f"  and {q.on()} {gate}",
                 "Start of the oldest process of the target: uptime gates and restarts."),
        *resource_trend(q, RSS, PEAK, PEAK_AVG, DERIV, DERIV_RECENT),
        q.record(CAPACITY, f"""
label_replace(max {q.by()} ({limit}), "basis", "limit", "", "")
or {q.on()}
label_replace({budget}, "basis", "budget", "", "")
or {q.on()}
label_replace({RSS} + {q.on()} {available}, "basis", "available", "", "")
""", "What the memory alerts compare with (label basis): the cgroup or RLIMIT_AS limit; where "
     "there is none (source=physical, or the probe fails) the process budget; else RSS plus the "
     "host's available memory."),
        q.record(USAGE, f"{RSS}\n  / {q.on()} group_left(basis)\n{CAPACITY}"),
        q.record(TTL, f"""
clamp_min({CAPACITY} - {q.on()} group_left() {PEAK}, 0)
  / {q.on()} group_left()
{_steady(q, DERIV, DERIV_RECENT)}
""", "Seconds until the peak meets the capacity at the current slope; absent while memory is "
     "flat or falling, while the slope decelerates (warm-up) and in the first trend window "
     "after a start."),
        q.record(FDS, f"""
max {q.by()} (
  max {q.by(pid)} ({q.m('process_open_fds')})
    / {q.on(pid)}
  max {q.by(pid)} ({q.m('process_max_fds')})
)
  and {q.on()} {gate}
""", "Open file descriptors as a fraction of the limit, of the process that uses most."),
        *resource_trend(q, FDS, FDS_PEAK, FDS_PEAK_AVG, FDS_DERIV, FDS_DERIV_RECENT),
        q.record(FDS_TTL, f"""
clamp_min(1 - {FDS_PEAK}, 0)
  / {q.on()} group_left()
{_steady(q, FDS_DERIV, FDS_DERIV_RECENT)}
"""),
        q.record(COMPONENT_BYTES, f"max {q.by('component')} (\n{components}\n)",
                 "Bytes per instrumented component (kind/name), to name the one that grows."),
        q.record(COMPONENT_DERIV, f"deriv({COMPONENT_BYTES}[{q.d(p.trend_window)}])"),
    ]
    return rules


def _growing_component(q: Q) -> str:
    """A template sentence naming the fastest-growing component of the alert's target."""
    matchers = ", ".join(f"{t}=%q" for t in q.cfg.target_labels)
    args = " ".join(f"$labels.{t}" for t in q.cfg.target_labels)
    expr = f"topk(1, {q.per_hour()} * {COMPONENT_DERIV}{{{matchers}}} > 0)"
    return (f'{{{{ with printf "{expr}" {args} | query }}}}{{{{ range . }}}} The fastest-growing '
            f"component is {{{{ .Labels.component }}}} (+{{{{ .Value | humanize1024 }}}}B per "
            f"hour).{{{{ end }}}}{{{{ end }}}}")


def _alerts(q: Q) -> list[Rule]:
    p, f = q.cfg.process, q.cfg.fds
    t = q.target_text()
    grow = _growing_component(q)
    near = ("Resident memory of {t} is at {{{{ $value | humanizePercentage }}}} of its memory "
            "capacity ({{{{ $labels.basis }}}}); at the limit it is OOM-killed, at a budget or "
            "the host's memory it slows everything down.{grow}")
    ttl = ("At the slope of the last {w}, the peak resident memory of {t} reaches its memory "
           "capacity ({{{{ $labels.basis }}}}) in {{{{ $value | humanizeDuration }}}}.{grow}")
    area = "process"
    out: list[Rule] = []
    for sev, level, for_ in (("warning", p.near_limit_warning, p.near_limit_warning_for),
                             ("critical", p.near_limit_critical, p.near_limit_critical_for)):
        out.append(q.alert(
            "MemexportProcessMemoryNearLimit", sev, f"{USAGE} > {num(level)}", area=area,
            for_=for_, keep=p.near_limit_keep_firing_for,
            summary="Process memory is near its limit.",
            description=near.format(t=t, grow=grow)))
    for sev, horizon, for_ in (("warning", p.time_to_limit_warning, p.time_to_limit_warning_for),
                               ("critical", p.time_to_limit_critical,
                                p.time_to_limit_critical_for)):
        out.append(q.alert(
            "MemexportProcessMemoryLimitPredicted", sev, f"{TTL} < {q.s(horizon)}", area=area,
            for_=for_, keep=p.time_to_limit_keep_firing_for,
            summary=f"Process memory reaches its limit within {horizon} at its current slope.",
            description=ttl.format(w=p.trend_window, t=t, grow=grow),
            comment="Time to the limit, not only the level: pages as long before the OOM kill "
                    "as the slope allows, and works a trend window after every start."))
    fast = (f"{DERIV} * {q.s(p.unknown_limit_doubling)} > {PEAK}\n  and {q.on()}\n"
            f"{_steady(q, DERIV, DERIV_RECENT)}")
    out.append(q.alert(
        "MemexportProcessMemoryGrowing", "warning",
        _vs_yesterday(q, PEAK_AVG, CAPACITY, p.growing_vs_yesterday), area=area,
        for_=p.growing_for, keep=p.growing_keep_firing_for,
        summary="Process memory keeps growing.",
        description=f"The hourly peak of resident memory of {t} is "
                    f"{{{{ $value | humanize1024 }}}}B above the same hour yesterday (or has "
                    f"risen for {p.growing_steady_steps} x {p.growing_steady_step}) and is "
                    f"still rising: a slow leak, not the daily cycle.{grow}",
        comment="Slow growth told apart from the daily cycle: compared with the same hour "
                "yesterday."))
    for sev, extra, for_ in (("warning", "", p.fast_growth_for),
                             ("critical", f"\nunless {q.on()} max {q.by()} ({q.m(LIMIT)})",
                              p.unknown_limit_for)):
        out.append(q.alert(
            "MemexportProcessMemoryGrowingFast", sev, fast + extra, area=area, for_=for_,
            keep=p.time_to_limit_keep_firing_for,
            summary=("Process memory grows fast." if sev == "warning" else
                     "Process memory grows fast and its limit cannot be read."),
            description=f"Resident memory of {t} grows steadily by "
                        f"{{{{ $value | humanize1024 }}}}B within {p.unknown_limit_doubling}, "
                        f"more than it holds now"
                        + (": a fast leak, whatever the limit." if sev == "warning" else
                           ", and its memory limit cannot be read: the time to an OOM kill is "
                           "unknown.") + grow,
            comment=("A fast leak, whatever the limit says." if sev == "warning" else
                     "Without a readable limit no ratio can page: a fast steady growth pages.")))
    out.append(q.alert(
        "MemexportProcessMemoryLimitUnknown", "warning",
        f"{q.gate()}\n  unless {q.on()} group {q.by()} "
        f"({q.m('memexport_process_memory_limit_bytes')})",
        area=area, for_=p.limit_unknown_for, keep=p.limit_unknown_keep_firing_for,
        summary="The memory limit of a memexport target cannot be read.",
        description=f"{t} exports no memexport_process_memory_limit_bytes: the memory limit "
                    f"probe fails (memexport_collector_errors_total with collector=memory_limit "
                    f"counts it), and the memory alerts fall back to the budget or the host's "
                    f"available memory."))
    out.append(q.alert(
        "MemexportProcessMemoryLimitNotSet", "info",
        f"max {q.by()} ({q.m(LIMIT, PHYSICAL)})\n"
        f"  unless {q.on()} max {q.by()} ({q.m(LIMIT, *HARD)})",
        area=area, for_="1h",
        summary="No container memory limit: the memory alerts use the budget or available memory.",
        description=f"{t} runs without a cgroup or RLIMIT_AS limit, so its limit is the host's "
                    f"physical memory ({{{{ $value | humanize1024 }}}}B). The memory alerts use "
                    f"memexport.budget(limit_bytes) if it is set, else RSS plus the host's "
                    f"available memory. Set a container memory limit (docker --memory, Kubernetes "
                    f"resources.limits.memory, systemd MemoryMax=) or a budget."))
    out.append(q.alert(
        "MemexportProcessOverBudget", "warning", f"""
max {q.by()} (
  max {q.by(q.labels.pid)} ({q.m('process_resident_memory_bytes')})
    / {q.on(q.labels.pid)}
  max {q.by(q.labels.pid)} ({q.m('memexport_process_memory_budget_bytes')})
) > 1
""", area=area, for_=p.over_budget_for,
        summary="Process memory is over the budget set with memexport.budget().",
        description=f"Resident memory of {t} is at {{{{ $value | humanizePercentage }}}} of the "
                    f"process budget set with memexport.budget()."))
    out.append(q.alert(
        "MemexportGCUncollectableIncreasing", "warning", f"""
sum {q.by()} (
  max {q.by(q.labels.pid, 'generation')} (
    increase({q.m('python_gc_objects_uncollectable_total')}[{q.d(p.uncollectable_window)}])
  )
) > 0
  and {q.on()} {q.gate()}
""", area=area, for_=p.uncollectable_for,
        summary="The garbage collector keeps finding uncollectable objects.",
        description=f"The garbage collector of {t} found {{{{ $value | humanize }}}} "
                    f"uncollectable objects in the last {p.uncollectable_window}; they stay in "
                    f"memory (gc.garbage) until the process exits."))
    for sev, level, for_ in (("warning", f.near_limit_warning, f.near_limit_warning_for),
                             ("critical", f.near_limit_critical, f.near_limit_critical_for)):
        out.append(q.alert(
            "MemexportFileDescriptorsNearLimit", sev, f"{FDS} > {num(level)}", area=area,
            for_=for_, keep=f.near_limit_keep_firing_for,
            summary="The process has most of its file descriptors open.",
            description=f"A process of {t} has {{{{ $value | humanizePercentage }}}} of its file "
                        f"descriptors open (process_open_fds / process_max_fds); at 100% sockets, "
                        f"files and pool connections fail to open."))
    for sev, horizon in (("warning", f.time_to_limit_warning),
                         ("critical", f.time_to_limit_critical)):
        out.append(q.alert(
            "MemexportFileDescriptorsLimitPredicted", sev, f"{FDS_TTL} < {q.s(horizon)}",
            area=area, for_=f.time_to_limit_for, keep=f.time_to_limit_keep_firing_for,
            summary=f"File descriptors run out within {horizon} at their current slope.",
            description=f"At the slope of the last {p.trend_window}, the open file descriptors of "
                        f"{t} reach process_max_fds in {{{{ $value | humanizeDuration }}}}: "
                        f"something opens sockets or files and never closes them."))
    out.append(q.alert(
        "MemexportFileDescriptorsGrowing", "warning",
        _vs_yesterday(q, FDS_PEAK_AVG, None, f.growing_vs_yesterday),
        area=area, for_=f.growing_for, keep=f.growing_keep_firing_for,
        summary="Open file descriptors keep growing.",
        description=f"The hourly peak of open file descriptors of {t} is "
                    f"{{{{ $value | humanizePercentage }}}} of process_max_fds above the same hour "
                    f"yesterday and still rising: a descriptor leak."))
    out.append(q.alert(
        "MemexportProcessCrashLooping", "warning",
        f"changes({START}[{q.d(p.crash_loop_window)}]) >= {p.crash_loop_restarts}", area=area,
        keep=p.crash_loop_keep_firing_for,
        summary="The process keeps restarting.",
        description=f"{t} restarted {{{{ $value }}}} times in the last {p.crash_loop_window} "
                    f"(process_start_time_seconds changed): it crashes, is OOM-killed or fails "
                    f"its health checks."))
    return out


def _meta(q: Q) -> list[Rule]:
    m, t = q.cfg.meta, q.target_text()
    area = "process"
    rule_sel = m.rule_failures_selector or f'rule_group=~".*;{q.cfg.group_prefix}-.*"'
    return [
        q.alert("MemexportCollectorErrors", "warning", f"""
max {q.by('collector')} (
  increase({q.m(GATE_METRIC, 'collector!=""')}[{q.d(m.collector_errors_window)}])
) > 0
""", area=area, for_=m.collector_errors_for,
            summary="A memexport collector keeps failing; some series are missing.",
            description=f"The memexport collector {{{{ $labels.collector }}}} of {t} failed "
                        f"{{{{ $value | humanize }}}} times in the last "
                        f"{m.collector_errors_window}; the series it reads are missing from the "
                        f"scrapes."),
        q.alert("MemexportSeriesOverflow", "info", f"""
max {q.by('kind')} (
  increase({q.m('memexport_series_overflow_total', 'kind!=""')}[{q.d(m.overflow_window)}])
) > 0
""", area=area,
            summary="Component names fold into the __overflow__ series.",
            description=f"{{{{ $value | humanize }}}} {{{{ $labels.kind }}}} components of {t} "
                        f"were folded into the __overflow__ series in the last "
                        f"{m.overflow_window}: the kind has reached its cap of distinct names."),
        q.alert("MemexportTargetDown", "warning", f"""
{q.m('up')} == 0
  and {q.on()}
present_over_time({q.m(GATE_METRIC, 'collector="registry"')}[{q.d('1d')}])
""", area=area, for_=m.target_down_for,
            summary="Prometheus cannot scrape a memexport target.",
            description=f"Prometheus has failed to scrape {t} for {m.target_down_for}; no memory "
                        f"alert can fire for it while it is down."),
        q.alert("MemexportRuleEvaluationFailures", "critical", f"""
sum {q.by('rule_group')} (
  increase(prometheus_rule_evaluation_failures_total{{{rule_sel}}}[{q.d(m.rule_failures_window)}])
) > 0
""", area=area, for_=m.rule_failures_for,
            summary="Prometheus fails to evaluate memexport rules: their alerts cannot fire.",
            description="Prometheus {{ $labels.instance }} failed {{ $value | humanize }} "
                        "evaluations of the rule group {{ $labels.rule_group }} in the last "
                        f"{m.rule_failures_window}; an alert whose rule fails never fires. "
                        "See the rule's lastError on the /rules page.",
            comment="A rule that fails to evaluate pages nobody: this one watches the others."),
    ]


def groups(q: Q) -> list[dict[str, object]]:
    prefix = q.cfg.group_prefix
    return [
        {"name": f"{prefix}-process.rules", "rules": _recording(q)},
        {"name": f"{prefix}-process.alerts", "rules": [*_alerts(q), *_meta(q)]},
    ]
