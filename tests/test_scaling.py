"""Many instances: 3 ``memexport demo`` processes as separate targets of one real Prometheus.

Every panel query of the shipped dashboards must evaluate, aggregate panels must give one
series per job and per-instance panels one per instance (top-k included); every alert rule
must evaluate healthily against several instances; and docs/scaling.md's series arithmetic
must match the real exposition of the demo.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, free_port, scrape, start_demo, stop_process
from tests.test_otel_support import Prometheus, wait_for
from tools.otel_table import known_kinds

pytestmark = pytest.mark.e2e

SCENARIOS = ("healthy", "leak", "exhaust")
JOB = "memexport-fleet"
DOC = ROOT / "docs" / "scaling.md"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Three demo processes and a Prometheus scraping them every second."""
    tmp = tmp_path_factory.mktemp("fleet")
    demos = []
    try:
        for scenario in SCENARIOS:
            port = free_port()
            demos.append((port, start_demo(port, scenario=scenario, duration=120)))
        targets = [f"127.0.0.1:{port}" for port, _ in demos]
        prom = Prometheus(tmp / "prom", [{"job_name": JOB,
                                          "static_configs": [{"targets": targets}]}],
                          rule_files=sorted(str(p) for p in (ROOT / "alerts").glob("*.rules.yml")))
        try:
            try:
                wait_for(lambda: prom.targets_up(3), 30, "3 demo targets up")
            except AssertionError as exc:
                died = [(p.returncode, p.stdout.read() if p.stdout else "")
                        for _, p in demos if p.poll() is not None]
                raise AssertionError(f"{exc}; demos that exited: {died}") from None
            # a few scrapes of each, so that rate() and deriv() have points
            wait_for(lambda: len(prom.values(
                f'count_over_time(process_resident_memory_bytes{{job="{JOB}"}}[1m]) >= 3')) == 3,
                30, "three scrapes of every demo")
            yield {"prom": prom, "targets": targets, "ports": [p for p, _ in demos]}
        finally:
            prom.close()
    finally:
        for _, proc in demos:
            proc.terminate()  # all at once: each takes a moment to stop
        for _, proc in demos:
            stop_process(proc)


def _dashboards() -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "grafana"))
    try:
        from dashboards_src.queries import load_dashboards
    finally:
        sys.path.remove(str(ROOT / "grafana"))
    return load_dashboards()


def _panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    sys.path.insert(0, str(ROOT / "grafana"))
    try:
        from dashboards_src.queries import panel_queries
    finally:
        sys.path.remove(str(ROOT / "grafana"))
    return panel_queries(dashboard)


_GLOBAL_AGG = re.compile(r"^\s*(sum|max|min|count|avg)\s*\(")
_TOPK = re.compile(r"^\s*topk\s*\(\s*(\d+)\s*,")


def _by_clause(expr: str) -> set[str]:
    labels: set[str] = set()
    for m in re.finditer(r"\bby\s*\(([^)]*)\)", expr):
        labels |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    return labels


def test_every_dashboard_query_evaluates_across_instances(fleet):
    prom: Prometheus = fleet["prom"]
    targets = set(fleet["targets"])
    dashboards = wait_for(lambda: _dashboards(), 60, "grafana/dashboards/*.json")
    checked = 0
    for name, dashboard in dashboards.items():
        for title, expr in _panel_queries(dashboard):
            result = prom.query(expr)  # fails on any PromQL error
            where = f"{name} / {title}: {expr}"
            instances = [r["metric"].get("instance") for r in result]
            assert all(i is None or i in targets for i in instances), where
            assert all(r["metric"].get("job") in (None, JOB) for r in result), where
            top = _TOPK.match(expr)
            if top:
                assert len(result) <= int(top.group(1)), where
                by = _by_clause(expr)
                if "instance" in by and by <= {"job", "instance"}:
                    assert len(set(instances)) == len(result), where  # one per instance
            elif _GLOBAL_AGG.match(expr):
                # an aggregate over the whole fleet: at most one series (one job here)
                assert len(result) <= 1, (where, result)
            checked += 1
    assert checked > 0


def test_aggregates_by_job_and_top_k_by_instance(fleet):
    prom: Prometheus = fleet["prom"]
    per_job = prom.query("sum by (job) (process_resident_memory_bytes)")
    assert [r["metric"] for r in per_job] == [{"job": JOB}]
    per_instance = prom.values("max by (job, instance) (process_resident_memory_bytes)")
    assert {dict(k)["instance"] for k in per_instance} == set(fleet["targets"])
    top2 = prom.query("topk(2, max by (instance) (process_resident_memory_bytes))")
    assert len(top2) == 2 and len({r["metric"]["instance"] for r in top2}) == 2
    # component series keep their instance: one group name, three instances
    comps = prom.values(f'count by (instance) (memexport_collector_errors_total{{job="{JOB}"}})')
    assert len(comps) == 3


def test_alert_rules_evaluate_cleanly_with_many_instances(fleet):
    prom: Prometheus = fleet["prom"]

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        done = all(not r.get("lastEvaluation", "0001").startswith("0001") for r in rules)
        return rules if rules and done else None

    if not list((ROOT / "alerts").glob("*.rules.yml")):
        pytest.fail("no alerts/*.rules.yml to evaluate")
    rules = wait_for(evaluated, 30, "every rule evaluated at least once")
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad  # e.g. many-to-many matching once several instances exist


# -- the series arithmetic of docs/scaling.md ----------------------------------------------


def series_breakdown(text: str) -> Counter[str]:
    """Series of one exposition grouped as docs/scaling.md does: the standard series, the
    process collector and memexport's health, then one group per component kind."""
    kinds = known_kinds()
    kind_of = {}
    for kind in kinds:
        for m in kind.metrics:
            base = m.name.removesuffix("_total") if m.type == "counter" else m.name
            kind_of[base] = kind.name
        if kind.bytes_metric:
            kind_of[kind.budget_metric] = kind.name
    out: Counter[str] = Counter()
    for fam in text_string_to_metric_families(text):
        n = len(fam.samples)
        if fam.name.startswith(("process_", "python_")):
            out["standard"] += n
        elif fam.name in kind_of:
            out[kind_of[fam.name]] += n
        elif fam.name.startswith("memexport_"):
            out["process"] += n
        else:
            out["other"] += n
    return out


def documented() -> dict[str, int]:
    """``{group: series}`` from the table between the series-table markers of scaling.md."""
    text = DOC.read_text()
    start = text.index("<!-- series-table -->")
    end = text.index("<!-- /series-table -->")
    out = {}
    for line in text[start:end].splitlines():
        m = re.match(r"^\|\s*`?([a-z_]+)`?\s*\|\s*\**(\d[\d,]*)\**\s*\|", line)
        if m:
            out[m.group(1)] = int(m.group(2).replace(",", ""))
    return out


def test_scaling_doc_arithmetic_matches_the_real_exposition(fleet):
    healthy_port = fleet["ports"][SCENARIOS.index("healthy")]
    measured = series_breakdown(scrape(healthy_port))
    doc = documented()
    total = sum(measured.values())
    hint = (f"docs/scaling.md's series table is stale; the healthy demo now exposes {total} "
            f"series: {dict(sorted(measured.items()))}")
    assert "total" in doc, hint
    assert abs(doc["total"] - total) <= 0.25 * total, hint
    assert sum(v for k, v in doc.items() if k != "total") == doc["total"], "rows != total"


def test_series_breakdown_groups_by_kind():
    text = Path(ROOT / "docs" / "metrics.md").read_text()
    assert "## OpenTelemetry mapping" in text  # the same catalogue sizes both exporters
    sample = (
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1\n"
        "# TYPE memexport_collector_errors counter\n"
        'memexport_collector_errors_total{collector="a"} 0\n'
        'memexport_collector_errors_total{collector="b"} 0\n'
    )
    assert series_breakdown(sample) == Counter({"standard": 1, "process": 2})
