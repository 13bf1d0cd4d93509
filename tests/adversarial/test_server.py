"""Hostile clients against ``/metrics``: idle connections, slowloris, a stalled TLS handshake,
floods over the connection limit, wrong credentials. Every loop is bounded in count and time.

Before memexport served through its own bounded server, prometheus_client's server gave each
idle connection a thread forever (200 idle sockets -> 202 threads) and did the TLS handshake
in its accept loop without a timeout (one idle TCP connection blocked every HTTPS scrape).
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import memexport
from memexport.exporters.prometheus import MetricsServer
from tests.conftest import free_port
from tests.tls_support import make_cert

CANARY = "CANARY-SECRET-9f3b"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


def serve(**kw: object) -> MetricsServer:
    return memexport.start_http_server(free_port(), "127.0.0.1", CollectorRegistry(),
                                       collector=False, **kw)  # type: ignore[arg-type]


@pytest.fixture
def plain() -> Iterator[MetricsServer]:
    server = serve(max_connections=8, timeout=2.0)
    yield server
    server.close()


def get(url: str, *, context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None,
        timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def connect(server: MetricsServer, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection((server.addr, server.port), timeout=10)
        socks.append(s)
    return socks


def closed_by_server(sock: socket.socket, deadline_s: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``deadline_s``."""
    sock.settimeout(0.2)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def wait_until(predicate, deadline_s: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


# -- idle connections and the connection limit ---------------------------------------------


def test_200_idle_connections_hold_at_most_max_connections_threads(plain: MetricsServer) -> None:
    before = threading.active_count()
    socks = connect(plain, 200)
    try:
        # every connection over the limit pushed out the oldest idle one: at most 8 remain
        assert wait_until(lambda: plain.server.connections() <= 8), plain.server.connections()
        assert wait_until(lambda: threading.active_count() <= before + 8 + 1), (
            threading.active_count(), before)
        # a scrape arriving now is served (it pushes out an idle connection)
        status, body = get(plain.url)
        assert status == 200 and b"memexport_collector_errors_total" in body
        # and the idle ones are cut after the request timeout (2 s)
        assert wait_until(lambda: plain.server.connections() == 0)
    finally:
        for s in socks:
            s.close()
    assert plain.server.evicted >= 192


def test_connections_answering_a_scrape_are_never_pushed_out() -> None:
    release = threading.Event()

    class Slow:
        """A collector that holds its scrape until released (bounded)."""

        def collect(self):  # type: ignore[no-untyped-def]
            release.wait(10)
            return []

    prom = CollectorRegistry()
    prom.register(Slow())  # type: ignore[arg-type]
    server = memexport.start_http_server(free_port(), "127.0.0.1", prom, collector=False,
                                         max_connections=2, timeout=5.0)
    try:
        busy = connect(server, 2)
        for s in busy:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: server.server.connections() == 2 and not any(
            c.reading for c in list(server.server._conns.values())))
        extra = connect(server, 1)[0]
        # nothing idle to push out: the new connection is closed, the scrapes go on
        assert closed_by_server(extra, 10)
        assert server.server.rejected == 1
        release.set()
        for s in busy:
            s.settimeout(10)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.0 200"), data[:100]
            s.close()
    finally:
        release.set()
        server.close()


def test_slowloris_headers_are_cut_off_at_the_request_timeout() -> None:
    server = serve(timeout=1.0)
    try:
        s = socket.create_connection((server.addr, server.port), timeout=10)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        header = b"X-Slow: " + b"a" * 200 + b"\r\n"
        cut = False
        for i in range(len(header)):  # one byte every 0.1 s: 20 s to finish, if allowed
            try:
                s.sendall(header[i:i + 1])
            except OSError:
                cut = True
                break
            if closed_by_server(s, 0.1):
                cut = True
                break
        assert cut, "the server kept a slowloris connection for the whole header"
        s.close()
        assert get(server.url)[0] == 200
    finally:
        server.close()


def test_a_client_that_never_reads_its_answer_is_bounded() -> None:
    server = serve(timeout=1.0)
    try:
        s = socket.create_connection((server.addr, server.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        assert wait_until(lambda: server.server.connections() == 0, 20)
        s.close()
    finally:
        server.close()


# -- TLS -----------------------------------------------------------------------------------


def tls_server(cert: tuple[Path, Path], **kw: object) -> tuple[MetricsServer, ssl.SSLContext]:
    server = serve(certfile=str(cert[0]), keyfile=str(cert[1]), **kw)
    return server, ssl.create_default_context(cafile=str(cert[0]))


def test_an_idle_tcp_connection_does_not_block_https_scrapes(cert: tuple[Path, Path]) -> None:
    server, ctx = tls_server(cert, timeout=2.0)
    try:
        assert server.url.startswith("https://")
        idle = connect(server, 3)  # TCP only, never a ClientHello
        time.sleep(0.3)  # let the accept loop take them (it used to block on the handshake)
        status, body = get(server.url, context=ctx, timeout=5)
        assert status == 200 and b"memexport_" in body
        for s in idle:
            assert closed_by_server(s, 15), "an idle TLS connection was never cut"
            s.close()
    finally:
        server.close()


def test_a_slow_tls_handshake_is_cut_off(cert: tuple[Path, Path]) -> None:
    server, ctx = tls_server(cert, timeout=1.0)
    try:
        # the first bytes of a TLS record, then one byte at a time
        s = socket.create_connection((server.addr, server.port), timeout=10)
        hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]) + b"\x00" * 100
        cut = False
        for i in range(len(hello)):
            try:
                s.sendall(hello[i:i + 1])
            except OSError:
                cut = True
                break
            if closed_by_server(s, 0.15):
                cut = True
                break
        assert cut
        s.close()
        assert get(server.url, context=ctx)[0] == 200
    finally:
        server.close()


def test_200_idle_connections_against_tls(cert: tuple[Path, Path]) -> None:
    server, ctx = tls_server(cert, max_connections=8, timeout=2.0)
    before = threading.active_count()
    socks = connect(server, 200)
    try:
        assert wait_until(lambda: threading.active_count() <= before + 8 + 1)
        assert get(server.url, context=ctx)[0] == 200
    finally:
        for s in socks:
            s.close()
        server.close()


# -- auth ----------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_auth_over_tls_rejects_a_wrong_or_missing_password(
        cert: tuple[Path, Path]) -> None:
    server, ctx = tls_server(cert, basic_auth=("prom", CANARY))
    try:
        assert get(server.url, context=ctx, headers=basic("prom", CANARY))[0] == 200
        for headers in ({}, basic("prom", "wrong"), basic("other", CANARY),
                        {"Authorization": "Basic !!notbase64"},
                        {"Authorization": f"Bearer {CANARY}"}):
            status, body = get(server.url, context=ctx, headers=headers)
            assert status == 401, headers
            assert b"memexport_" not in body
    finally:
        server.close()


def test_bearer_token_rejects_a_missing_or_wrong_token(plain: MetricsServer) -> None:
    server = serve(bearer_token=CANARY)
    try:
        assert get(server.url, headers={"Authorization": f"Bearer {CANARY}"})[0] == 200
        assert get(server.url)[0] == 401
        assert get(server.url, headers={"Authorization": "Bearer nope"})[0] == 401
        assert get(server.url, headers=basic("x", CANARY))[0] == 401
    finally:
        server.close()


def test_credentials_never_reach_logs_or_error_texts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="memexport")
    for bad in [("", CANARY), ("us:er", CANARY), (CANARY,), ("u", 5)]:
        with pytest.raises(ValueError) as info:
            serve(basic_auth=bad)
        assert CANARY not in str(info.value)
    with pytest.raises(ValueError) as info:
        serve(bearer_token=f"{CANARY} with space")
    assert CANARY not in str(info.value)
    server = serve(basic_auth=("u", CANARY), bearer_token=CANARY + "x")
    try:
        get(server.url, headers=basic("u", CANARY + "-wrong"))
        get(server.url, headers={"Authorization": f"Bearer {CANARY}"})
    finally:
        server.close()
    assert CANARY not in caplog.text


def test_a_failing_collector_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    class Broken:
        def collect(self):  # type: ignore[no-untyped-def]
            raise RuntimeError(CANARY)

    prom = CollectorRegistry()
    prom.register(Broken())  # type: ignore[arg-type]
    server = memexport.start_http_server(free_port(), "127.0.0.1", prom, collector=False)
    try:
        status, _ = get(server.url)
        assert status == 500
    finally:
        server.close()
    out, err = capfd.readouterr()
    assert CANARY not in out + err and "Traceback" not in err
