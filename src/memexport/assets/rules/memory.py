"""Where-memory-goes rules: OOM kills in the target's cgroup, memory pressure (PSI), allocator
retention and unattributed growth, read from the RSS ledger (``memexport_memory_ledger_bytes
{class}``, summing to RSS) and the cgroup forensics of the process collector (docs/ledger.md).

The ledger is a per-process gauge (one series per worker, ``pid``, in multiprocess mode): its
classes are summed over the workers of a target, like RSS; duplicates of a second exporter
collapse first (``max by (..., pid, class)``), and ``class!=""`` drops OpenTelemetry copies.
"""

from __future__ import annotations

from memexport.assets.rules.common import Q, Rule, num

__all__ = ["LEDGER", "groups"]

LEDGER = "memexport_memory_ledger_bytes"
TOTAL = "instance:memexport_memory_ledger_bytes:sum"
SHARE = "instance:memexport_memory_ledger_bytes:ratio"
RETAINED = "instance:memexport_memory_ledger_retained_bytes:ratio"
LIMIT = "memexport_process_memory_limit_bytes"
#: The ledger classes of free memory the allocators keep resident (glibc, pymalloc).
RETAINED_CLASSES = "malloc_free|pymalloc_free"


def _ledger(q: Q, *matchers: str, by_class: bool = False) -> str:
    """The ledger summed over the workers of each target (per class with ``by_class``)."""
    cls = ("class",) if by_class else ()
    inner = f"max {q.by(q.labels.pid, 'class')} ({q.m(LEDGER, *matchers)})"
    return f"sum {q.by(*cls)} (\n  {inner}\n)"


def _limit(q: Q) -> str:
    """The memory limit of the target, whatever its source (the same for all its workers)."""
    return f"max {q.by()} ({q.m(LIMIT)})"


def _recording(q: Q) -> list[Rule]:
    any_class, retained = 'class!=""', f'class=~"{RETAINED_CLASSES}"'
    return [
        q.record(TOTAL, _ledger(q, any_class),
                 "RSS as the ledger read it: the sum of its classes, over the workers."),
        q.record(SHARE, f"{_ledger(q, any_class, by_class=True)}\n"
                        f"  / {q.on()} group_left()\n{TOTAL}",
                 "Each class as a share of RSS."),
        q.record(RETAINED, f"{_ledger(q, retained)}\n  / {q.on()}\n{TOTAL}",
                 "Allocator retention: free memory both allocators keep (glibc and pymalloc), "
                 "as a share of RSS."),
    ]


def _alerts(q: Q) -> list[Rule]:
    m, t = q.cfg.memory, q.target_text()
    area = "memory"
    pid = q.labels.pid
    out: list[Rule] = [q.alert("MemexportOOMKill", "warning", f"""
max {q.by('event')} (
  increase({q.m('memexport_cgroup_memory_events_total', 'event="oom_kill"')}[{q.d(m.oom_window)}])
) > 0
  and {q.on()}
(max {q.by()} ({q.m('up')}) == 1)
""", area=area,
        summary="A process in the target's cgroup was OOM-killed.",
        description=f"The kernel OOM-killed {{{{ $value | humanize }}}} process(es) in the "
                    f"cgroup of {t} in the last {m.oom_window} while the target kept answering: "
                    f"a worker or a child process died at the memory limit.",
        comment="A process of the target's cgroup was OOM-killed while the target still answers "
                "scrapes: a worker, a subprocess, or a sibling in the same container died, the "
                "target lived.")]
    for sev, kind, ratio, for_, who, why in (
            ("warning", "some", m.pressure_some_ratio, m.pressure_some_for, "Tasks",
             "reclaim and swap are slowing it down"),
            ("critical", "full", m.pressure_full_ratio, m.pressure_full_for, "All tasks",
             "the process is thrashing at its memory limit")):
        sel = q.m("memexport_memory_pressure_seconds_total", f'kind="{kind}"')
        out.append(q.alert(
            "MemexportMemoryPressure", sev,
            f"max {q.by('kind', 'scope')} (rate({sel}[{q.d(m.pressure_window)}])) > {num(ratio)}",
            area=area, for_=for_, keep=m.pressure_keep_firing_for,
            summary="Tasks keep stalling on memory (PSI).",
            description=f"{who} of {t} ({{{{ $labels.scope }}}} pressure) were stalled waiting "
                        f"for memory {{{{ $value | humanizePercentage }}}} of the time over the "
                        f"last {m.pressure_window}, for {for_}: {why}.",
            comment=("PSI: share of wall time in which at least one task (some) or every task "
                     "(full) of the cgroup (or host) was stalled waiting for memory."
                     if sev == "warning" else "")))
    rss = f"sum {q.by()} (max {q.by(pid)} ({q.m('process_resident_memory_bytes')}))"
    out.append(q.alert("MemexportAllocatorRetentionHigh", "warning", f"""
({RETAINED} > {num(m.retention_ratio)})
  and {q.on()}
(
  {rss}
    / {q.on()}
  {_limit(q)}
    > {num(m.retention_usage_ratio)}
)
""", area=area, for_=m.retention_for, keep=m.retention_keep_firing_for,
        summary="The allocators keep much free memory while the process is near its limit.",
        description=f"{{{{ $value | humanizePercentage }}}} of the resident memory of {t} is "
                    f"free memory kept by the allocators (glibc and pymalloc), for "
                    f"{m.retention_for}, with RSS above {num(m.retention_usage_ratio * 100)}% "
                    f"of the memory limit.",
        comment="Retained memory, not live data, is what brings the process to its limit."))
    unattributed = q.m(LEDGER, 'class="unattributed"')
    out.append(q.alert("MemexportUnattributedMemoryGrowing", "warning", f"""
{q.per_hour()} * sum {q.by()} (
  max {q.by(pid)} (
    deriv({unattributed}[{q.d(m.unattributed_window)}])
  )
)
  > {q.on()}
{num(m.unattributed_growth_ratio)} * {_limit(q)}
  and {q.on()}
(
  {q.uptime()}
    > {q.s(m.unattributed_min_uptime)}
)
""", area=area, for_=m.unattributed_for, keep=m.unattributed_keep_firing_for,
        summary="Memory that no source accounts for keeps growing.",
        description=f"Unattributed resident memory of {t} (not Python objects, not the "
                    f"allocators' free lists, not file pages) grows by "
                    f"{{{{ $value | humanize1024 }}}}B per hour, steadily for "
                    f"{m.unattributed_for}: a native leak.",
        comment="Memory nothing accounts for (native libraries, direct mmaps, stacks) grows "
                "past warm-up."))
    return out


def groups(q: Q) -> list[dict[str, object]]:
    prefix = q.cfg.group_prefix
    return [
        {"name": f"{prefix}-memory.rules", "rules": _recording(q)},
        {"name": f"{prefix}-memory.alerts", "rules": _alerts(q)},
    ]
