"""cgroup memory forensics from inside the container: OOM kills, pressure, what the memory is.

Read from the process's own cgroup (``limits.cgroup_dirs``), v2 first, else v1:

- events (counters): v2 ``memory.events`` ``oom``, ``oom_kill``, ``high``, ``max``; v1
  ``memory.oom_control`` ``oom_kill`` and ``memory.failcnt`` (times usage hit the limit,
  exported as ``max``);
- pressure (PSI): v2 ``memory.pressure`` (``scope="cgroup"``); else ``/proc/pressure/memory``
  (``scope="host"``: the host's, or the container's where PSI is namespaced). v1's
  ``memory.pressure_level`` is an eventfd notifier that cannot be read: not used;
- ``memory.stat``: anon, file, kernel, sock, shmem (v1: ``total_rss``, ``total_cache``,
  ``total_shmem``, ``memory.kmem.usage_in_bytes``, ``memory.kmem.tcp.usage_in_bytes``);
- ``memory.current`` / ``memory.usage_in_bytes`` and v2 ``memory.high``.

A missing file leaves its series absent; a garbled one raises, for the caller to count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from memexport.core.model import Family
from memexport.process.limits import DEFAULT_CGROUP_ROOT, DEFAULT_PROC_ROOT, cgroup_dirs

__all__ = ["CgroupReading", "families", "parse_psi", "read_cgroup"]

#: Names of the metrics this module exports (the shipped dashboards read them).
MEMORY_EVENTS = "memexport_cgroup_memory_events_total"
MEMORY_STAT = "memexport_cgroup_memory_stat_bytes"
MEMORY_USAGE = "memexport_cgroup_memory_usage_bytes"
MEMORY_HIGH = "memexport_cgroup_memory_high_bytes"
PRESSURE_SECONDS = "memexport_memory_pressure_seconds_total"
PRESSURE_AVERAGE = "memexport_memory_pressure_average_ratio"

EVENTS = ("oom", "oom_kill", "high", "max")
STATS = ("anon", "file", "kernel", "sock", "shmem")
_V1_STATS = {"anon": "total_rss", "file": "total_cache", "shmem": "total_shmem"}
_V1_STATS_FLAT = {"anon": "rss", "file": "cache", "shmem": "shmem"}
_V1_FILES = {"kernel": "memory.kmem.usage_in_bytes", "sock": "memory.kmem.tcp.usage_in_bytes"}
_WINDOWS = {"avg10": "10s", "avg60": "60s", "avg300": "300s"}


@dataclass
class CgroupReading:
    """What could be read; ``version`` is ``"v2"``, ``"v1"`` or None (no memory cgroup)."""

    version: str | None = None
    events: dict[str, int] = field(default_factory=dict)
    stat: dict[str, int] = field(default_factory=dict)
    usage: int | None = None
    high: int | None = None
    psi_scope: str | None = None
    psi_total: dict[str, float] = field(default_factory=dict)  # kind -> seconds
    psi_avg: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, window) -> 0..1


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == 22:  # EINVAL: a notification file (memory.pressure_level)
            return None
        raise


def _pairs(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1])
    return out


def parse_psi(text: str) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """``some avg10=0.12 avg60=... total=123`` lines: totals in seconds, averages as 0..1."""
    totals: dict[str, float] = {}
    avgs: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        kind = parts[0]
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key == "total":
                totals[kind] = int(value) / 1e6  # microseconds
            elif key in _WINDOWS:
                avgs[(kind, _WINDOWS[key])] = float(value) / 100.0
    if not totals:
        raise ValueError("no PSI 'some'/'full' totals")
    return totals, avgs


def _v2(d: str, r: CgroupReading) -> None:
    events = _read(os.path.join(d, "memory.events"))
    if events is not None:
        got = _pairs(events)
        r.events = {e: got[e] for e in EVENTS if e in got}
    stat = _read(os.path.join(d, "memory.stat"))
    if stat is not None:
        got = _pairs(stat)
        r.stat = {s: got[s] for s in STATS if s in got}
    current = _read(os.path.join(d, "memory.current"))
    if current is not None:
        r.usage = int(current.strip())
    high = _read(os.path.join(d, "memory.high"))
    if high is not None and high.strip() != "max":
        r.high = int(high.strip())
    psi = _read(os.path.join(d, "memory.pressure"))
    if psi is not None:
        r.psi_scope = "cgroup"
        r.psi_total, r.psi_avg = parse_psi(psi)


def _v1(d: str, r: CgroupReading) -> None:
    oom = _read(os.path.join(d, "memory.oom_control"))
    if oom is not None:
        got = _pairs(oom)
        if "oom_kill" in got:
            r.events["oom_kill"] = got["oom_kill"]
    failcnt = _read(os.path.join(d, "memory.failcnt"))
    if failcnt is not None:
        r.events["max"] = int(failcnt.strip())
    stat = _read(os.path.join(d, "memory.stat"))
    if stat is not None:
        got = _pairs(stat)
        names = _V1_STATS if "total_rss" in got else _V1_STATS_FLAT
        r.stat = {s: got[f] for s, f in names.items() if f in got}
    for s, fname in _V1_FILES.items():
        text = _read(os.path.join(d, fname))
        if text is not None:
            r.stat[s] = int(text.strip())
    usage = _read(os.path.join(d, "memory.usage_in_bytes"))
    if usage is not None:
        r.usage = int(usage.strip())
    psi = _read(os.path.join(d, "memory.pressure"))  # kernels with cgroup v1 PSI (psi_v1)
    if psi is not None:
        r.psi_scope = "cgroup"
        r.psi_total, r.psi_avg = parse_psi(psi)


def read_cgroup(cgroup_root: str = DEFAULT_CGROUP_ROOT,
                proc_root: str = DEFAULT_PROC_ROOT) -> CgroupReading:
    """The memory forensics of this process's cgroup (its own level, not its ancestors)."""
    dirs = cgroup_dirs(cgroup_root, proc_root)
    r = CgroupReading()
    if dirs.v2 and os.path.exists(os.path.join(dirs.v2[0], "memory.events")):
        r.version = "v2"
        _v2(dirs.v2[0], r)
    elif dirs.v1_memory:
        r.version = "v1"
        _v1(dirs.v1_memory[0], r)
    if r.psi_scope is None:
        psi = _read(os.path.join(proc_root, "pressure", "memory"))
        if psi is not None:
            r.psi_scope = "host"
            r.psi_total, r.psi_avg = parse_psi(psi)
    return r


def families(r: CgroupReading) -> list[Family]:
    """The reading as families; absent parts give no samples."""
    out: list[Family] = []
    if r.events:
        out.append(Family(
            MEMORY_EVENTS, "counter",
            "Memory events of this process's cgroup: oom, oom_kill (a process of the cgroup "
            "was OOM-killed), high (throttled over memory.high), max (usage hit the limit).",
            "", [({"event": e}, float(v)) for e, v in sorted(r.events.items())]))
    if r.stat:
        out.append(Family(
            MEMORY_STAT, "gauge",
            "What the cgroup's memory is (memory.stat): anon, file, kernel, sock, shmem.",
            "bytes", [({"stat": s}, float(v)) for s, v in sorted(r.stat.items())]))
    if r.usage is not None:
        out.append(Family(MEMORY_USAGE, "gauge",
                          "Memory charged to this process's cgroup, page cache included.",
                          "bytes", [({}, float(r.usage))]))
    if r.high is not None:
        out.append(Family(MEMORY_HIGH, "gauge",
                          "The cgroup's memory.high throttling threshold (absent if max).",
                          "bytes", [({}, float(r.high))]))
    if r.psi_total and r.psi_scope is not None:
        scope = r.psi_scope
        out.append(Family(
            PRESSURE_SECONDS, "counter",
            "Time tasks were stalled waiting for memory (PSI): some = at least one task, "
            "full = all non-idle tasks; scope is cgroup or host.", "seconds",
            [({"kind": k, "scope": scope}, v) for k, v in sorted(r.psi_total.items())]))
        out.append(Family(
            PRESSURE_AVERAGE, "gauge",
            "Share of time stalled on memory (PSI) averaged over window (10s, 60s, 300s).",
            "ratio", [({"kind": k, "window": w, "scope": scope}, v)
                      for (k, w), v in sorted(r.psi_avg.items())]))
    return out
