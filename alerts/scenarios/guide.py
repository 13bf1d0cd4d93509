"""What the guide's ``MemoryMonitor.check_memory_health`` says on the same histories.

The guide schedules ``conditional_cleanup`` every 5 minutes, and it builds a new
``MemoryMonitor()`` on every call, so ``memory_history`` never holds more than one entry and
the growth check never runs: only "RSS above 80 % of the host's memory" is left. "One kept
monitor" is the same check with a single monitor kept between calls (history of an hour,
growth over the last 10 checks above 10 MB per check). Either way an unhealthy answer only
runs ``aggressive_cleanup()``: nobody is notified.
"""

from __future__ import annotations

from replay import Result, fmt_dur

CHECK_EVERY = 300.0
MB = 1024 * 1024


def unhealthy(r: Result, keep_history: bool) -> list[float]:
    """Times of the checks that return unhealthy."""
    if not r.host_total:
        return []
    out: list[float] = []
    deaths = sorted(t for t, why in r.deaths if why in ("oom", "fds", "crash", "restart"))
    history: list[tuple[float, float]] = []
    for t, rss in r.rss:
        if t % CHECK_EVERY:
            continue
        while deaths and deaths[0] <= t:  # a new process: a new monitor
            deaths.pop(0)
            history = []
        if rss / r.host_total * 100 > 80:
            out.append(t)
            continue
        if not keep_history:
            continue
        history = [(ts, v) for ts, v in history if ts > t - 3600] + [(t, rss / MB)]
        if len(history) > 10:
            recent = history[-10:]
            if (recent[-1][1] - recent[0][1]) / len(recent) > 10:
                out.append(t)
    return out


def _episodes(times: list[float]) -> list[float]:
    """Start of each run of consecutive unhealthy checks."""
    return [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > CHECK_EVERY]


def monitor_verdicts(r: Result) -> tuple[str, str]:
    """Table cells for the guide's check as written and with one kept monitor: false alarms
    (unhealthy before the fault, or in a healthy history) and the first answer after it."""
    out = []
    onset = r.scenario.onset
    for keep in (False, True):
        starts = _episodes(unhealthy(r, keep))
        false = [t for t in starts if onset is None or t < onset]
        after = [t for t in unhealthy(r, keep) if onset is not None and t >= onset]
        cell = []
        if false:
            many = f"{len(false)} false alarms" if len(false) > 1 else "false alarm"
            cell.append(f"{many} (first at {fmt_dur(false[0])})")
        if onset is not None:
            cell.append(f"+{fmt_dur(after[0] - onset)}" if after else "never after the fault")
        out.append("; ".join(cell) or "never")
    return out[0], out[1]
