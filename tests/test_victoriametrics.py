"""Beyond one Prometheus: VictoriaMetrics as the remote-write store, Prometheus agent mode
forwarding to it, and the shipped dashboards' queries and alert expressions run on it.

Two ``memexport demo`` processes are scraped every second by a Prometheus server that
remote-writes every sample into VictoriaMetrics #1, and by a Prometheus in agent mode
(``--enable-feature=agent``, no local queries) that remote-writes into VictoriaMetrics #2.
Prometheus and VictoriaMetrics #1 hold the same samples, so every query is evaluated on both
at the same instant and the answers compared: MetricsQL is PromQL-compatible but not
identical, and the differences found are listed in docs/scaling.md (run with ``-s`` to see
the table this test prints).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port, require_binary, start_demo, stop_process
from tests.test_otel_support import Prometheus, wait_for
from tests.vm_support import (
    PrometheusAgent,
    VictoriaMetrics,
    dashboard_queries,
    rule_expressions,
)

pytestmark = pytest.mark.e2e

JOB = "memexport-vm"

#: Functions whose MetricsQL result differs by design on the same samples: no extrapolation
#: to the window's edges, and a series' first sample counted from zero.
_RANGE = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv|predict_linear|"
                    r"[a-z]+_over_time|histogram_quantile|resets|changes)\s*\(")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("vm")
    demos = []
    started: list[Any] = []
    try:
        for scenario in ("healthy", "leak"):
            port = free_port()
            # Alive for the whole module (stopped at its end): a demo that ends by itself
            # leaves stale series, which a late test on a loaded machine would find empty.
            demos.append((port, start_demo(port, scenario=scenario, duration=900)))
        targets = [f"127.0.0.1:{port}" for port, _ in demos]
        vm = VictoriaMetrics(tmp / "vm")
        started.append(vm)
        vm_agent = VictoriaMetrics(tmp / "vm-agent")
        started.append(vm_agent)
        agent = PrometheusAgent(tmp / "agent", targets, vm_agent.write_url, JOB)
        started.append(agent)
        prom = Prometheus(tmp / "prom", [{"job_name": JOB,
                                          "static_configs": [{"targets": targets}]}],
                          remote_write=[{"url": vm.write_url,
                                         "queue_config": {"batch_send_deadline": "1s"}}])
        started.append(prom)
        ready = 'count_over_time(process_resident_memory_bytes[1m]) >= 8'
        wait_for(lambda: len(_vm(vm, ready)) == 2, 90, "8 samples of each demo in VictoriaMetrics")
        yield {"vm": vm, "vm_agent": vm_agent, "prom": prom, "targets": targets,
               "at": time.time() - 5}  # every sample up to here has reached both stores
    finally:
        for server in reversed(started):
            server.close()
        for _, proc in demos:
            proc.terminate()
        for _, proc in demos:
            stop_process(proc)


def _vm(vm: VictoriaMetrics, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    url = f"{vm.url}/api/v1/query?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"VictoriaMetrics rejected {expr!r}: {exc.read()[:500]!r}") from None
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _by_labels(result: list[dict[str, Any]]) -> dict[str, float]:
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}


def _compare(stores: dict[str, Any], queries: list[tuple[str, str]]) -> list[str]:
    """Evaluate every query on both stores at one instant; return the differences, and fail
    on any MetricsQL error and on any difference outside the documented ones."""
    prom: Prometheus = stores["prom"]
    at = stores["at"]
    found, wrong = [], []
    for where, expr in queries:
        vm_result = _by_labels(_vm(stores["vm"], expr, at))
        prom_result = _by_labels(prom.api("query", query=expr, time=str(at))["result"])
        only_prom = {k for k in set(prom_result) - set(vm_result)}
        nan_only = all(math.isnan(prom_result[k]) for k in only_prom)
        shape = " ".join(expr.split())[:90]
        if set(vm_result) != set(prom_result):
            line = (f"{where}: series only in Prometheus {sorted(only_prom)[:2]}, "
                    f"only in VictoriaMetrics {sorted(set(vm_result) - set(prom_result))[:2]}")
            found.append(line)
            if not (_RANGE.search(expr) or (nan_only and set(vm_result) <= set(prom_result))):
                wrong.append(f"{line} -- {shape}")
        for key in set(vm_result) & set(prom_result):
            a, b = vm_result[key], prom_result[key]
            if math.isnan(a) and math.isnan(b):
                continue
            tolerance = 0.01 if "time()" in expr else 1e-9 * max(abs(b), 1.0)
            if abs(a - b) > tolerance:
                line = f"{where}: {key} VictoriaMetrics {a:.6g} vs Prometheus {b:.6g}"
                found.append(line)
                if not _RANGE.search(expr):
                    wrong.append(f"{line} -- {shape}")
    print("\n".join(["", f"MetricsQL vs PromQL, {len(queries)} queries:", *found]))
    assert not wrong, "\n".join(wrong)
    return found


def test_prometheus_agent_mode_forwards_every_target(stores: dict[str, Any]) -> None:
    vm_agent: VictoriaMetrics = stores["vm_agent"]
    got = wait_for(lambda: _vm(vm_agent, f'count by (instance) ({{job="{JOB}"}})'), 90,
                   "the agent's series in VictoriaMetrics")
    assert {r["metric"]["instance"] for r in got} == set(stores["targets"])
    # the agent forwards the same families the server scrapes
    names = {r["metric"]["__name__"] for r in _vm(
        vm_agent, f'count by (__name__) ({{job="{JOB}", __name__=~"memexport_.*"}})')}
    prom_names = {r["metric"]["__name__"] for r in stores["prom"].query(
        f'count by (__name__) ({{job="{JOB}", __name__=~"memexport_.*"}})')}
    assert names == prom_names and len(names) > 40


def test_dashboard_queries_on_victoriametrics(stores: dict[str, Any]) -> None:
    queries = dashboard_queries()
    assert len(queries) > 50
    _compare(stores, queries)


def test_alert_and_recording_rule_expressions_on_victoriametrics(
        stores: dict[str, Any]) -> None:
    queries = rule_expressions()
    assert queries, "no alerts/*.rules.yml"
    _compare(stores, queries)


def test_vmalert_accepts_the_rule_files_but_keep_firing_for(tmp_path: Path) -> None:
    """vmalert (Debian's 1.79) parses the shipped rule files; ``keep_firing_for`` (Prometheus
    2.42+) is the one field it rejects, so it is stripped from the copy checked here."""
    vmalert = require_binary("vmalert")
    for path in sorted((ROOT / "alerts").glob("*.rules.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                rule.pop("keep_firing_for", None)
        (tmp_path / path.name).write_text(yaml.safe_dump(doc))
    res = subprocess.run([vmalert, "-dryRun", f"-rule={tmp_path}/*.rules.yml"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
