"""The alert rules with real servers: Prometheus evaluating them against the gunicorn example
(multiprocess mode) and against a process running both exporters, and the accelerated leak
demo paging through a real Alertmanager into a webhook receiver started here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port, require_binary, stop_process, wait_http
from tests.test_multiprocess import Gunicorn
from tests.test_otel_support import Prometheus, wait_for

pytestmark = pytest.mark.e2e

RULES = sorted(str(p) for p in (ROOT / "alerts").glob("*.rules.yml"))


def evaluated_rules(prom: Prometheus, groups: int) -> list[dict[str, Any]] | None:
    """Every rule of the loaded groups, once each has been evaluated at least once."""
    found = prom.api("rules")["groups"]
    rules = [r for g in found for r in g["rules"]]
    done = all(not r.get("lastEvaluation", "0001").startswith("0001") for r in rules)
    return rules if len(found) == groups and rules and done else None


def assert_all_healthy(prom: Prometheus) -> list[dict[str, Any]]:
    groups = sum(len(yaml.safe_load(Path(f).read_text())["groups"]) for f in RULES)
    rules = wait_for(lambda: evaluated_rules(prom, groups), 60, "every rule evaluated")
    # A few more rounds: some errors (duplicate series) show only once both sides have data.
    time.sleep(5)
    rules = evaluated_rules(prom, groups) or rules
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    return rules


def test_every_rule_is_healthy_against_the_gunicorn_example(tmp_path: Path) -> None:
    mp = tmp_path / "multiproc"
    mp.mkdir()
    server = Gunicorn(tmp_path, "gunicorn.conf.py", "app:app", 3,
                      PROMETHEUS_MULTIPROC_DIR=str(mp))
    prom = None
    try:
        server.requests(30)
        prom = Prometheus(tmp_path / "prom", [{
            "job_name": "gunicorn", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
            rule_files=RULES)
        wait_for(lambda: prom.targets_up(1), 30, "gunicorn scraped")
        pids = wait_for(lambda: {dict(k).get("pid") for k in prom.values(
            'process_resident_memory_bytes{job="gunicorn"}')} - {None}, 30, "per-worker series")
        assert len(pids) == 3, pids  # multiprocess mode: one series per worker, by pid
        server.requests(30, start=30)
        rules = assert_all_healthy(prom)
        assert len(rules) > 60
        # the rules read the workers as one target: RSS summed, one capacity
        rss = wait_for(lambda: prom.values("instance:memexport_process_resident_memory_bytes:sum"),
                       30, "summed RSS")
        assert len(rss) == 1, rss
    finally:
        if prom is not None:
            prom.close()
        server.close()


DUAL_APP = textwrap.dedent("""
    import sys, time
    from collections import deque
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    import memexport
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    memexport.use_opentelemetry()
    server = memexport.start_http_server(int(sys.argv[1]), collector_interval=0.5)
    cache = memexport.cache({}, name="llm")
    history = memexport.conversation(deque(maxlen=5), name="chat")

    @memexport.cleanup(name="trim", period=60)
    def trim():
        history.clear()

    n = 0
    while True:
        n += 1
        cache[n % 50] = "x" * 100
        cache.get(n % 70)
        history.append({"n": n})
        if n % 20 == 0:
            trim()
        time.sleep(0.05)
""")


def test_every_rule_is_healthy_with_both_exporters_in_one_process(tmp_path: Path) -> None:
    """memexport's exposition and PrometheusMetricReader on one /metrics: memexport's series
    once (the reader is given the app's own instruments only), every rule healthy."""
    port = free_port()
    script = tmp_path / "dual.py"
    script.write_text(DUAL_APP)
    app = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    prom = None
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", 60, app)
        prom = Prometheus(tmp_path / "prom", [{
            "job_name": "dual", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
            rule_files=RULES)
        wait_for(lambda: prom.targets_up(1), 30, "dual scraped")
        wait_for(lambda: prom.values('memexport_cache_items{cache="llm"}'), 30, "cache series")
        assert_all_healthy(prom)
        # One exposition per process: no OpenTelemetry-named copy beside memexport's own.
        assert not prom.values('memexport_cache_items{memexport_cache_name="llm"}')
        assert prom.values('target_info')  # the reader itself is served
    finally:
        if prom is not None:
            prom.close()
        stop_process(app)


# -- paging through a real Alertmanager ------------------------------------------------------


class Webhook(ThreadingHTTPServer):
    """Records what Alertmanager posts, by path (/page, /ticket)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def start_alertmanager(tmp: Path, hook: Webhook) -> tuple[subprocess.Popen[str], int]:
    """alerts/alertmanager.yml with its receivers pointed at ``hook`` and short waits."""
    binary = require_binary("prometheus-alertmanager")
    config = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    base = f"http://127.0.0.1:{hook.server_address[1]}"
    for receiver in config["receivers"]:
        for h in receiver.get("webhook_configs") or []:
            h["url"] = f"{base}/{receiver['name']}"
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", f"--storage.path={tmp / 'am'}", "--log.level=warn"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 30, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc, port


def start_prometheus_alerting(tmp: Path, targets: list[str], rules: list[str],
                              am_port: int) -> tuple[subprocess.Popen[str], int]:
    binary = require_binary("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rules,
        "alerting": {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "agents", "static_configs": [{"targets": targets}]}],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 60, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc, port


def start_demo(port: int, scenario: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "memexport.cli", "demo", "--port", str(port), "--scenario",
         scenario, "--duration", "400", "--tick", "0.2", "--collector-interval", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", 60, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


#: One hour of the shipped rules is one minute here; the demo leaks 8 MiB/s into its memo cache.
TIME_SCALE = "0.016666667"
GRAFANA = "http://grafana.test:3000"


def test_accelerated_leak_pages_and_healthy_demo_stays_silent(tmp_path: Path,
                                                              webhook: Webhook) -> None:
    rules_dir = tmp_path / "rules"
    res = subprocess.run(
        [sys.executable, "-m", "memexport.cli", "assets", "rules", "--set",
         f"time_scale={TIME_SCALE}", "--set", f"grafana_url={GRAFANA}", "--out", str(rules_dir)],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    leak_port, healthy_port = free_port(), free_port()
    leak_target, healthy_target = f"127.0.0.1:{leak_port}", f"127.0.0.1:{healthy_port}"
    procs: list[subprocess.Popen[str]] = []
    try:
        am, am_port = start_alertmanager(tmp_path, webhook)
        procs.append(am)
        procs.append(start_demo(leak_port, "leak", "--leak-rate", "8"))
        procs.append(start_demo(healthy_port, "healthy"))
        prom, _ = start_prometheus_alerting(
            tmp_path, [leak_target, healthy_target],
            sorted(str(p) for p in rules_dir.glob("*.rules.yml")), am_port)
        procs.append(prom)

        def pages() -> list[dict[str, Any]]:
            return [a for path, body in list(webhook.received) if path == "/page"
                    for a in body["alerts"] if a["status"] == "firing"]

        def leak_page() -> dict[str, Any] | None:
            return next((a for a in pages() if a["labels"].get("instance") == leak_target), None)

        page = wait_for(leak_page, 180, "a page for the leaking demo", interval=1.0)
        time.sleep(10)  # the same time for the healthy demo, and then some
        received = list(webhook.received)
    finally:
        for p in procs:
            p.terminate()
        outputs = [stop_process(p) for p in procs]
    labels, ann = page["labels"], page["annotations"]
    assert labels["severity"] == "critical" and labels["job"] == "agents", labels
    assert labels["alertname"].startswith("MemexportProcessMemory"), labels
    assert "The fastest-growing component is cache/request_memo" in ann["description"], ann
    assert ann["dashboard_url"] == (
        f"{GRAFANA}/d/memexport-process?var-job=agents&var-instance="
        f"{urllib.parse.quote(leak_target, safe='')}"), ann
    healthy = [(path, a["labels"]) for path, body in received for a in body["alerts"]
               if a["labels"].get("instance") == healthy_target]
    assert not healthy, (healthy, outputs[-1][-3000:])
