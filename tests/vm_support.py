"""VictoriaMetrics and Prometheus agent mode, started on loopback for one test (no tests here)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, free_port, require_binary, stop_process, wait_http


class VictoriaMetrics:
    """A single-node ``victoria-metrics`` (Debian package ``victoria-metrics``)."""

    def __init__(self, tmp: Path) -> None:
        binary = require_binary("victoria-metrics")
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, f"-storageDataPath={tmp / 'data'}", f"-httpListenAddr=127.0.0.1:{self.port}",
             "-retentionPeriod=1d", "-search.latencyOffset=1s", "-search.disableCache",
             "-loggerLevel=ERROR"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_http(f"{self.url}/health", 60, self.proc)
        except BaseException:
            stop_process(self.proc)
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def query(self, expr: str) -> dict[str, Any]:
        """The raw answer of an instant query (``status`` is ``success`` or ``error``)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=20) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read() or b'{"status": "error"}'))

    def close(self) -> str:
        return stop_process(self.proc)


class PrometheusAgent:
    """``prometheus`` in agent mode: scrapes and remote-writes, stores nothing to query."""

    def __init__(self, tmp: Path, targets: list[str], write_url: str, job: str) -> None:
        binary = require_binary("prometheus")
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = tmp / "agent.yml"
        cfg.write_text(json.dumps({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
            "remote_write": [{"url": write_url,
                              "queue_config": {"batch_send_deadline": "1s"}}],
        }))
        self.proc = subprocess.Popen(
            [binary, "--enable-feature=agent", f"--config.file={cfg}",
             f"--storage.agent.path={tmp / 'wal'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_http(f"http://127.0.0.1:{self.port}/-/ready", 60, self.proc)
        except BaseException:
            stop_process(self.proc)
            raise

    def close(self) -> str:
        return stop_process(self.proc)


def rule_expressions() -> list[tuple[str, str]]:
    """``(rule name, expr)`` of every alerting and recording rule in alerts/*.rules.yml."""
    out = []
    for path in sorted((ROOT / "alerts").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule.get("record"), rule["expr"]))
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """``(dashboard / panel, expr)`` of every panel query of grafana/dashboards/*.json."""
    sys.path.insert(0, str(ROOT / "grafana"))
    try:
        from dashboards_src.queries import load_dashboards, panel_queries
    finally:
        sys.path.remove(str(ROOT / "grafana"))
    return [(f"{name} / {title}", expr) for name, dash in load_dashboards().items()
            for title, expr in panel_queries(dash)]
