"""Replay a scenario's history through ``promtool test rules`` and read what fired from ALERTS.

promtool evaluates every rule group over the whole history (evaluation_interval 1m) and
stores the ``ALERTS`` series it produces. One ``promql_expr_test`` per minute asks for the
firing alerts that started or ended at that minute and expects none; promtool prints what it
got instead, which is parsed back into firing episodes. Verdicts look at ``severity`` only.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from history import History, Model, Series, labels_text, promtool_values

RANK = {"info": 0, "warning": 1, "critical": 2}
EDGES = ('label_replace(ALERTS{alertstate="firing"} unless ALERTS{alertstate="firing"} '
         'offset 1m, "edge", "start", "", "") or label_replace(ALERTS{alertstate="firing"} '
         'offset 1m unless ALERTS{alertstate="firing"}, "edge", "end", "", "")')
_TIME = re.compile(r"time: ([0-9a-z.]+),")
_SAMPLE = re.compile(r"\{([^{}]*)\} [-+0-9.Ee]+")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_go_duration(text: str) -> float:
    return sum(float(n) * _UNIT[u] for n, u in re.findall(r"([0-9.]+)(ms|[smhdwy])", text))


def fmt_dur(seconds: float) -> str:
    sign, s = ("-" if seconds < 0 else ""), round(abs(seconds))
    h, m = divmod(s // 60, 60)
    return f"{sign}{h}h{m:02d}m" if h else f"{sign}{m}m"


@dataclass(frozen=True)
class Expect:
    """A deadline: ``ticket``/``page`` within ``within`` of the onset, ``page_before`` every
    death of ``events`` by ``margin``, ``steady`` (no flapping), or ``silent``."""

    kind: str
    within: float | None = None
    margin: float = 1800.0
    events: tuple[str, ...] = ("oom",)

    def text(self) -> str:
        if self.kind == "silent":
            return "no warning or critical"
        if self.kind == "steady":
            return "no flapping"
        if self.kind == "page_before":
            return f"page >= {fmt_dur(self.margin)} before each {'/'.join(self.events)}"
        return f"{self.kind} within {fmt_dur(self.within or 0)}"


@dataclass
class Scenario:
    name: str
    title: str
    build: Callable[[], tuple[History, list[Model]]]
    expects: tuple[Expect, ...]
    onset: float | None = None  # seconds; None for healthy histories
    healthy: bool = False


@dataclass
class Episode:
    alertname: str
    severity: str
    labels: dict[str, str]
    start: float
    end: float | None  # None: still firing at the end


@dataclass
class Result:
    scenario: Scenario
    episodes: list[Episode]
    deaths: list[tuple[float, str]]
    errors: list[str]
    hours: float
    rss: list[tuple[float, float]] = field(default_factory=list)
    host_total: float = 0.0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the replay

    @property
    def ok(self) -> bool:
        return not self.problems and not self.errors

    def first(self, min_rank: int) -> float | None:
        starts = [e.start for e in self.episodes if RANK.get(e.severity, 1) >= min_rank]
        return min(starts) if starts else None


def test_file(hist: History, cols: dict[Series, list[float | None]], rule_files: list[Path],
              eval_minutes: int) -> str:
    doc = {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": "1m",
        "group_eval_order": group_order(rule_files),
        "tests": [{
            "interval": f"{int(hist.step)}s",
            "input_series": [{"series": labels_text(k), "values": promtool_values(v)}
                             for k, v in sorted(cols.items())],
            "promql_expr_test": [{"expr": EDGES, "eval_time": f"{m}m", "exp_samples": []}
                                 for m in range(1, eval_minutes + 1)],
        }],
    }
    return json.dumps(doc)  # JSON is YAML, and much faster to write and to read


def group_order(rule_files: list[Path]) -> list[str]:
    """Recording groups first, then alert groups, each in file order: without an order promtool
    evaluates groups in random order, and alerts would read last minute's recorded values."""
    names = [m.group(1) for p in rule_files
             for m in re.finditer(r"^  - name: (\S+)$", p.read_text(), re.M)]
    return sorted(names, key=lambda n: not n.endswith(".rules"))


def parse(output: str) -> tuple[list[tuple[float, str, dict[str, str]]], list[str]]:
    """``([(time, edge, labels)], [rule evaluation errors])`` from promtool's output."""
    edges: list[tuple[float, str, dict[str, str]]] = []
    errors = [line.strip() for line in output.splitlines() if "err:" in line]
    t = None
    for line in output.splitlines():
        m = _TIME.search(line)
        if m and "expr:" in line:
            t = parse_go_duration(m.group(1))
        elif "got:" in line and t is not None:
            for sample in _SAMPLE.finditer(line):
                labels = dict(_LABEL.findall(sample.group(1)))
                edges.append((t, labels.pop("edge", ""), labels))
    return edges, errors


def episodes(edges: Iterable[tuple[float, str, dict[str, str]]]) -> list[Episode]:
    open_: dict[tuple[tuple[str, str], ...], Episode] = {}
    out: list[Episode] = []
    for t, edge, labels in sorted(edges, key=lambda e: (e[0], e[1] != "end")):
        labels = {k: v for k, v in labels.items() if k not in ("__name__", "alertstate")}
        key = tuple(sorted(labels.items()))
        if edge == "start":
            ep = Episode(labels.get("alertname", "?"), labels.get("severity", ""), labels, t, None)
            open_[key] = ep
            out.append(ep)
        elif edge == "end" and key in open_:
            open_.pop(key).end = t
    return out


def run(scenario: Scenario, rule_files: list[Path], promtool: str = "promtool",
        transform: Callable[[dict[Series, list[float | None]]], dict[Series,
                            list[float | None]]] | None = None,
        workdir: Path | None = None) -> Result:
    began = time.monotonic()
    hist, models = scenario.build()
    cols, deaths = hist.run(models)
    if transform is not None:
        cols = transform(cols)
    minutes = int(hist.hours * 60)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / f"{scenario.name}.test.yml"
        path.write_text(test_file(hist, cols, rule_files, minutes))
        res = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True,
                             text=True, timeout=600)
    edges, errors = parse(res.stdout + res.stderr)
    if "no such file" in res.stderr.lower() or "error loading" in res.stderr.lower():
        errors.append(res.stderr.strip()[-1000:])
    if res.returncode != 0 and not edges and not errors and "FAILED" not in res.stderr:
        errors.append((res.stdout + res.stderr).strip()[-2000:])
    rss_key = next((k for k in cols if k[0] == "process_resident_memory_bytes"), None)
    rss = ([(i * hist.step, v) for i, v in enumerate(cols[rss_key]) if v is not None]
           if rss_key else [])
    host = next((getattr(m, "host_total", 0.0) for m in models if hasattr(m, "host_total")), 0.0)
    result = Result(scenario, episodes(edges), deaths, errors, hist.hours, rss, host)
    result.problems = judge(result)
    result.seconds = time.monotonic() - began
    return result


def judge(r: Result) -> list[str]:
    """What is wrong with the result against the scenario's expectations (empty: pass)."""
    s, out = r.scenario, []
    loud = [e for e in r.episodes if RANK.get(e.severity, 1) >= 1]
    onset = s.onset if s.onset is not None else float("inf")
    for e in loud:
        if e.start < onset:
            out.append(f"{e.alertname} ({e.severity}) at {fmt_dur(e.start)}, before the fault")
    for x in s.expects:
        if x.kind in ("ticket", "page"):
            first = r.first(1 if x.kind == "ticket" else 2)
            limit = onset + (x.within or 0)
            if first is None or first > limit:
                got = "none" if first is None else f"+{fmt_dur(first - onset)}"
                out.append(f"{x.text()}: first {x.kind} {got}")
        elif x.kind == "page_before":
            out.extend(_page_before(r, x, onset))
        elif x.kind == "steady":
            spans = _union([(e.start, e.end if e.end is not None else r.hours * 3600)
                            for e in loud if e.start >= onset])
            if len(spans) > 1:
                out.append(f"flapping: {len(spans)} separate firing spans after the onset")
    return out


def _page_before(r: Result, x: Expect, onset: float) -> list[str]:
    out = []
    pages = sorted(e.start for e in r.episodes if e.severity == "critical")
    begin = onset
    deaths = [t for t, why in r.deaths if why in x.events]
    if not deaths:
        out.append(f"{x.text()}: no {'/'.join(x.events)} happened in the history")
    for t in deaths:
        ok = [p for p in pages if begin <= p <= t - x.margin]
        if not ok:
            before = [p for p in pages if begin <= p <= t]
            got = f"{fmt_dur(t - before[0])} before" if before else "no page"
            out.append(f"{x.text()}: {why_at(t)} with {got}")
        begin = t
    return out


def why_at(t: float) -> str:
    return f"death at {fmt_dur(t)}"


def lead_times(r: Result, events: tuple[str, ...] = ("oom", "fds")) -> list[float]:
    """For each death of ``events``: how long before it the page of that cycle came."""
    pages = sorted(e.start for e in r.episodes if e.severity == "critical")
    begin = r.scenario.onset or 0.0
    out = []
    for t, why in r.deaths:
        if why not in events:
            continue
        cycle = [p for p in pages if begin <= p <= t]
        out.append(t - cycle[0] if cycle else -1.0)
        begin = t
    return out


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
