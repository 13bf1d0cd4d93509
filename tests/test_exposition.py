"""Serving /metrics: the HTTP server (plain and TLS), argument > env > default, clear errors,
prometheus_client's arguments, WSGI, ASGI. Hostile clients: tests/adversarial/test_server.py."""

from __future__ import annotations

import asyncio
import socket
import ssl
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


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                 prom: CollectorRegistry) -> None:
    """explicit argument > MEMEXPORT_PORT/MEMEXPORT_ADDR > default, as in OpenTelemetry."""
    port = free_port()
    monkeypatch.setenv("MEMEXPORT_PORT", "1")
    monkeypatch.setenv("MEMEXPORT_ADDR", "192.0.2.1")
    server = memexport.start_http_server(port, "127.0.0.1", registry=prom, collector=False)
    try:
        assert (server.addr, server.port) == ("127.0.0.1", port)
    finally:
        server.close()


def test_environment_applies_when_no_argument_is_given(monkeypatch: pytest.MonkeyPatch,
                                                       prom: CollectorRegistry) -> None:
    port = free_port()
    monkeypatch.setenv("MEMEXPORT_PORT", str(port))
    monkeypatch.setenv("MEMEXPORT_ADDR", " 127.0.0.1 ")
    server = memexport.start_http_server(registry=prom, collector=False)
    try:
        assert (server.addr, server.port) == ("127.0.0.1", port)
    finally:
        server.close()


@pytest.mark.parametrize("bad", [" ", "", "\t"])
def test_blank_addr_in_env_is_a_value_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("MEMEXPORT_ADDR", bad)
    monkeypatch.setenv("MEMEXPORT_PORT", str(free_port()))
    if bad == "":  # empty is unset: the default address
        memexport.start_http_server(registry=CollectorRegistry(), collector=False).close()
        return
    with pytest.raises(ValueError, match="MEMEXPORT_ADDR must be a host name or IP address"):
        memexport.start_http_server(registry=CollectorRegistry(), collector=False)


@pytest.mark.parametrize("bad", [" ", "no such host.invalid", 42, "x" * 500])
def test_bad_addr_argument_is_a_value_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="addr") as info:
        memexport.start_http_server(free_port(), bad, CollectorRegistry(), collector=False)  # type: ignore[arg-type]
    assert len(str(info.value)) < 200  # a long value is truncated


def test_prometheus_client_arguments_are_accepted(tmp_path: Path,
                                                  prom: CollectorRegistry) -> None:
    """The positional order of prometheus_client.start_http_server, and its (server, thread)."""
    from tests.tls_support import make_cert

    cert, key = make_cert(tmp_path)
    server = memexport.start_http_server(free_port(), "127.0.0.1", prom, str(cert), str(key),
                                         None, None, ssl.PROTOCOL_TLS_SERVER, False,
                                         collector=False)
    httpd, thread = server
    try:
        assert thread.is_alive() and httpd.server_address[1] == server.port
        ctx = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(server.url, timeout=10, context=ctx) as resp:
            assert resp.status == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_keyfile_without_certfile_is_a_value_error(prom: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="keyfile needs certfile"):
        memexport.start_http_server(free_port(), registry=prom, keyfile="k.pem", collector=False)


def test_start_logs_one_info_line_with_address_and_port(caplog: pytest.LogCaptureFixture,
                                                        prom: CollectorRegistry) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="memexport")
    port = free_port()
    server = memexport.start_http_server(port, registry=prom, collector=False)
    server.close()
    lines = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 1
    assert f"http://127.0.0.1:{port}/metrics" in lines[0].getMessage()


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
    from tests.tls_support import make_cert

    cert, key = make_cert(tmp_path)
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
