"""Helpers for the OpenTelemetry, multiprocess and scaling tests (no tests here).

A real Prometheus started on a free loopback port, a real OTLP/HTTP receiver that decodes the
protobuf payload with opentelemetry-proto, and polling with deadlines instead of sleeps.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import free_port, require_binary, stop_process, wait_http

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], deadline_s: float = 30.0, what: str = "condition",
             interval: float = 0.2) -> T:
    """Call ``fn`` until it returns something truthy; fail with ``what`` at the deadline."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while True:
        try:
            last = fn()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}; "
                                 f"last: {last!r}"[:4000])
        time.sleep(interval)


class Prometheus:
    """A real ``prometheus`` started for one test; ``close()`` stops it."""

    def __init__(self, tmp: Path, scrape_configs: list[dict[str, Any]] | None = None,
                 *, remote_write_receiver: bool = False, scrape_interval: str = "1s",
                 rule_files: list[str] | None = None,
                 remote_write: list[dict[str, Any]] | None = None) -> None:
        binary = require_binary("prometheus")
        self.port = free_port()
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval,
                       "evaluation_interval": scrape_interval},
            "scrape_configs": scrape_configs or [],
        }
        if rule_files:
            config["rule_files"] = rule_files
        if remote_write:
            config["remote_write"] = remote_write
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = tmp / "prometheus.yml"
        cfg.write_text(json.dumps(config))  # JSON is YAML
        args = [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        if remote_write_receiver:
            args.append("--web.enable-remote-write-receiver")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        try:
            wait_http(f"http://127.0.0.1:{self.port}/-/ready", 60, self.proc)
        except BaseException:
            stop_process(self.proc)
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def values(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """``{sorted labels: value}`` of an instant query."""
        return {tuple(sorted(r["metric"].items())): float(r["value"][1])
                for r in self.query(expr)}

    def targets_up(self, n: int) -> bool:
        active = self.api("targets")["activeTargets"]
        if len(active) >= n and all(t["health"] == "up" for t in active):
            return True
        raise AssertionError([(t["scrapeUrl"], t["health"], t.get("lastError"),
                               t.get("lastScrapeDuration")) for t in active])

    def close(self) -> str:
        return stop_process(self.proc)


# -- OTLP ------------------------------------------------------------------------------------


def _any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def decode_metrics(request: Any) -> dict[str, dict[str, Any]]:
    """Flatten an ``ExportMetricsServiceRequest``: ``{name: {unit, type, points, resource}}``;
    each point is ``(attributes, value)``."""
    out: dict[str, dict[str, Any]] = {}
    for rm in request.resource_metrics:
        resource = {a.key: _any_value(a.value) for a in rm.resource.attributes}
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                points = []
                for p in data.data_points:
                    attrs = {a.key: _any_value(a.value) for a in p.attributes}
                    if kind == "histogram":
                        value: Any = (p.count, p.sum)
                    else:
                        value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                    points.append((attrs, value))
                entry = {"unit": m.unit, "type": kind, "points": points, "resource": resource,
                         "scope": sm.scope.name,
                         "monotonic": getattr(data, "is_monotonic", None)}
                out[m.name] = entry
    return out


class OtlpHttpReceiver:
    """A tiny OTLP/HTTP metrics receiver: decodes each POST to /v1/metrics with
    opentelemetry-proto and keeps the requests."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
        )

        self.requests: list[Any] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/metrics" or (
                        self.headers.get("Content-Type") != "application/x-protobuf"):
                    self.send_response(404)
                    self.end_headers()
                    return
                req = ExportMetricsServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.requests.append(req)
                payload = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/metrics"

    def latest(self) -> dict[str, dict[str, Any]]:
        """Every metric as in the last request that carried it."""
        out: dict[str, dict[str, Any]] = {}
        with self.lock:
            reqs = list(self.requests)
        for req in reqs:
            out.update(decode_metrics(req))
        return out

    def by_resource(self, key: str) -> dict[Any, dict[str, dict[str, Any]]]:
        """Latest metrics per value of resource attribute ``key`` (one push source each)."""
        out: dict[Any, dict[str, dict[str, Any]]] = {}
        with self.lock:
            reqs = list(self.requests)
        for req in reqs:
            for name, entry in decode_metrics(req).items():
                out.setdefault(entry["resource"].get(key), {})[name] = entry
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
