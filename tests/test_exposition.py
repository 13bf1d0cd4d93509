"""Serving /metrics: the HTTP server (plain and TLS), env overrides, clear errors, WSGI, ASGI."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from conftest import free_port
from prometheus_client import CollectorRegistry

import memexport
from memexport.exporters.prometheus import MemexportCollector, register_collector


@pytest.fixture
def prom() -> CollectorRegistry:
    return CollectorRegistry()


def test_http_server_serves_memexport_metrics(prom: CollectorRegistry) -> None:
    server = memexport.start_http_server(free_port(), registry=prom, collector=False)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as resp:
            text = resp.read().decode()
        assert "memexport_collector_duration_seconds" in text
        assert server.collector.scrapes == 1
    finally:
        server.close()


def test_port_in_use_raises_a_clear_error_and_starts_nothing(prom: CollectorRegistry) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}: address already in use"):
            memexport.start_http_server(port, registry=prom, collector=False)


def test_env_overrides_port_and_addr(monkeypatch: pytest.MonkeyPatch,
                                     prom: CollectorRegistry) -> None:
    port = free_port()
    monkeypatch.setenv("MEMEXPORT_PORT", str(port))
    monkeypatch.setenv("MEMEXPORT_ADDR", "127.0.0.1")
    server = memexport.start_http_server(1, "192.0.2.1", registry=prom, collector=False)
    try:
        assert (server.addr, server.port) == ("127.0.0.1", port)
    finally:
        server.close()


@pytest.mark.parametrize("bad", ["abc", "70000", "-1"])
def test_bad_port_in_env_is_a_value_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("MEMEXPORT_PORT", bad)
    with pytest.raises(ValueError, match=f"MEMEXPORT_PORT.*{bad!r}"):
        memexport.start_http_server(registry=CollectorRegistry(), collector=False)


@pytest.mark.parametrize("bad", [70000, -5, "x", True])
def test_bad_port_argument_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="port"):
        memexport.start_http_server(bad, registry=CollectorRegistry(), collector=False)  # type: ignore[arg-type]


def test_tls_options_pass_through(tmp_path: Path, prom: CollectorRegistry) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = memexport.start_http_server(free_port(), registry=prom, collector=False,
                                         certfile=str(cert), keyfile=str(key))
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        url = server.url.replace("http://", "https://")
        with urllib.request.urlopen(url, timeout=10, context=ctx) as resp:
            assert "memexport_" in resp.read().decode()
    finally:
        server.close()


def test_collector_registers_once(prom: CollectorRegistry) -> None:
    a = register_collector(prom)
    b = register_collector(prom)
    assert a is b and isinstance(a, MemexportCollector)


def test_wsgi_app(prom: CollectorRegistry) -> None:
    app = memexport.make_wsgi_app(prom)
    environ: dict = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/metrics"
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h: status.append(s)))
    assert status == ["200 OK"]
    assert b"memexport_collector_errors_total" in body


def test_asgi_app(prom: CollectorRegistry) -> None:
    app = memexport.make_asgi_app(prom)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
             "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    assert b"memexport_collector_errors_total" in b"".join(m.get("body", b"") for m in sent[1:])


def test_http_server_keeps_a_running_collectors_interval(prom: CollectorRegistry) -> None:
    from memexport.process.collector import stop_collector

    collector = memexport.start_collector(2.5)
    try:
        server = memexport.start_http_server(free_port(), registry=prom)
        server.close()
        assert collector.interval == 2.5
        server = memexport.start_http_server(free_port(), registry=prom, collector_interval=7)
        server.close()
        assert collector.interval == 7
    finally:
        stop_collector()


def test_wsgi_and_asgi_apps_start_the_collector(prom: CollectorRegistry) -> None:
    from memexport.process.collector import stop_collector

    stop_collector()
    try:
        memexport.make_wsgi_app(prom)
        from memexport.process import collector as process

        assert process._collector is not None and process._collector.running
        stop_collector()
        memexport.make_asgi_app(prom, collector=False)
        assert process._collector is None or not process._collector.running
    finally:
        stop_collector()
