"""Helpers of the actions tests: webhook payloads, posting them, the demo with actions, and a
real Prometheus + Alertmanager pair on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from conftest import ROOT, free_port, require_binary, stop_process, wait_http

T = TypeVar("T")


def alert(name: str = "MemexportProcessMemoryNearLimit", status: str = "firing",
          **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, **labels},
            "annotations": {"summary": "s"}, "startsAt": "2026-12-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
            "fingerprint": "0123456789abcdef"}


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0,
            "status": status, "receiver": "process-actions", "groupLabels": {},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": list(alerts)}


def post(url: str, body: bytes | dict[str, Any], token: str | None = None,
         content_type: str = "application/json", method: str = "POST"
         ) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data if method == "POST" else None,
                                 headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            try:
                return resp.status, json.loads(raw or b"{}")
            except ValueError:  # /metrics, before the receiver is mounted
                return 0, {"raw": raw.decode(errors="replace")}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"{}")
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def get(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                timeout=10) as resp:
        return json.loads(resp.read())


def poll(check: Callable[[], T], deadline_s: float = 30.0, every: float = 0.25) -> T:
    import time

    end = time.monotonic() + deadline_s
    while True:
        result = check()
        if result or time.monotonic() >= end:
            return result
        time.sleep(every)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def start_demo_with_actions(port: int, evidence_dir: Path, token: str, *, tick: float = 0.1,
                            cooldown: float = 600.0, duration: float = 240.0
                            ) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "memexport.cli", "demo", "--port", str(port), "--scenario",
         "leak", "--duration", str(duration), "--tick", str(tick), "--collector-interval",
         "1", "--actions-token", token, "--evidence-dir", str(evidence_dir),
         "--actions-cooldown", str(cooldown)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", 60, proc)
        # The receiver is mounted once the demo's parts are loaded: until then /actions is
        # answered by /metrics.
        ready = poll(lambda: post(f"http://127.0.0.1:{port}/actions", b"", token=token,
                                  method="GET")[0] == 200, 60)
        assert ready, "the demo's actions receiver did not answer"
    except BaseException:
        stop_process(proc)
        raise
    return proc


class Recorder(ThreadingHTTPServer):
    """On-call stand-in: records the (path, body) of each notification Alertmanager posts."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)


class _RecorderHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server:
    """A real Prometheus or Alertmanager process on a loopback port."""

    def __init__(self, port: int, proc: subprocess.Popen[str], log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/{path}",
                                    timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> str:
        stop_process(self.proc)
        return self.log.read_text()[-4000:]


def _start(args: list[str], port: int, log: Path, ready: str) -> Server:
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}{ready}", 60, proc)
    except BaseException as exc:
        stop_process(proc)
        raise AssertionError(f"{args[0]} did not start:\n{log.read_text()}") from exc
    return Server(port, proc, log)


def start_alertmanager(config: Path, tmp: Path) -> Server:
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    return _start([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                   "--cluster.listen-address=", f"--storage.path={tmp / 'am-data'}",
                   "--log.level=warn"], port, tmp / "alertmanager.log", "/-/ready")


def start_prometheus(tmp: Path, target: str, rules: Path, alertmanager_port: int) -> Server:
    binary = require_binary("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [{"job_name": "demo", "static_configs": [{"targets": [target]}]}],
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(json.dumps(config))
    return _start([binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'prom-data'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--rules.alert.resend-delay=1s",
                   "--log.level=warn"], port, tmp / "prometheus.log", "/-/ready")
