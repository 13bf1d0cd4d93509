"""httpx / httpx2 connection pools (and OpenAI SDK clients over them) against a real local
HTTP/1.1 server with keep-alive, started here on loopback.

A gate in the server holds requests open, so connections in use and queued requests are
exact; keep-alive expiry is a real expiry (a short ``keepalive_expiry``, then one more request,
which is when httpcore closes expired connections).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from integration_support import assert_catalogued, series
from llm_server import fake_llm

import memexport
from memexport.core.registry import Registry
from memexport.kinds.pool import SPEC

httpx = pytest.importorskip("httpx")
httpx2 = pytest.importorskip("httpx2")
openai = pytest.importorskip("openai")


class Server:
    """HTTP/1.1 keep-alive server; ``/hold`` waits for ``gate`` before answering."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.held = threading.Semaphore(0)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path == "/hold":
                    outer.held.release()
                    outer.gate.wait(30)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.close()


def pool(reg: Registry, name: str) -> dict[str, float]:
    return {k.removeprefix("pool_"): v for k, v in series(reg, "pool", name).items()}


@pytest.mark.parametrize("lib", ["httpx", "httpx2"])
def test_sync_client_in_use_idle_queued_max(lib: str, server: Server,
                                            fresh_registry: Registry) -> None:
    mod = httpx if lib == "httpx" else httpx2
    client = mod.Client(base_url=server.url, limits=mod.Limits(max_connections=2))
    assert memexport.pool(client, "api", registry=fresh_registry) is client
    threads = [threading.Thread(target=client.get, args=("/hold",)) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(2):  # two requests reached the server: two connections in use
        assert server.held.acquire(timeout=10)
    deadline = time.monotonic() + 10
    while pool(fresh_registry, "api").get("pending_acquires") != 1:  # the third queues
        assert time.monotonic() < deadline, pool(fresh_registry, "api")
        time.sleep(0.01)
    v = pool(fresh_registry, "api")
    assert v["resources[in_use]"] == 2
    assert v["resources[idle]"] == 0
    assert v["max_resources"] == 2
    assert v["created_total"] == 2
    server.gate.set()
    for t in threads:
        t.join(10)
    v = pool(fresh_registry, "api")
    assert v["resources[in_use]"] == 0
    assert v["resources[idle]"] == 2
    assert v["pending_acquires"] == 0
    assert v["destroyed_total"] == 0 and v["expired_total"] == 0
    client.close()
    v = pool(fresh_registry, "api")
    assert v["destroyed_total"] == 2
    assert v["resources[idle]"] == 0


def test_keepalive_expiry_is_counted(server: Server, fresh_registry: Registry) -> None:
    client = httpx.Client(base_url=server.url, limits=httpx.Limits(keepalive_expiry=0.05))
    memexport.pool(client, "short", registry=fresh_registry)
    client.get("/")
    assert pool(fresh_registry, "short")["resources[idle]"] == 1
    time.sleep(0.2)  # past the keep-alive: the next request closes the idle connection
    client.get("/")
    v = pool(fresh_registry, "short")
    assert v["expired_total"] == 1
    assert v["destroyed_total"] == 1
    assert v["created_total"] == 2
    assert v["resources[idle]"] == 1
    assert_catalogued(fresh_registry, "memexport_pool_expired", "memexport_pool_resources")
    client.close()


def test_unlimited_pool_has_no_max(server: Server, fresh_registry: Registry) -> None:
    client = httpx.Client(base_url=server.url, limits=httpx.Limits(max_connections=None))
    memexport.pool(client, "open", registry=fresh_registry)
    client.get("/")
    v = pool(fresh_registry, "open")
    assert "max_resources" not in v
    assert v["resources[idle]"] == 1
    client.close()


@pytest.mark.parametrize("lib", ["httpx", "httpx2"])
def test_async_client_under_a_real_loop(lib: str, server: Server,
                                        fresh_registry: Registry) -> None:
    mod = httpx if lib == "httpx" else httpx2

    async def script() -> tuple[dict[str, float], dict[str, float]]:
        client = mod.AsyncClient(base_url=server.url, limits=mod.Limits(max_connections=4))
        memexport.pool(client, "aio", registry=fresh_registry)
        tasks = [asyncio.create_task(client.get("/hold")) for _ in range(3)]
        for _ in range(3):
            while not server.held.acquire(blocking=False):
                await asyncio.sleep(0.01)
        during = pool(fresh_registry, "aio")
        server.gate.set()
        await asyncio.gather(*tasks)
        after = pool(fresh_registry, "aio")
        await client.aclose()
        return during, after

    during, after = asyncio.run(script())
    assert during["resources[in_use]"] == 3 and during["max_resources"] == 4
    assert after["resources[idle]"] == 3 and after["resources[in_use]"] == 0
    v = pool(fresh_registry, "aio")
    assert v["created_total"] == 3 and v["destroyed_total"] == 3


def test_openai_clients_are_recognised(fresh_registry: Registry) -> None:
    with fake_llm("hi") as llm:
        client = openai.OpenAI(base_url=llm.base_url, api_key="sk-test", max_retries=0)
        assert memexport.pool(client, "openai", registry=fresh_registry) is client
        reply = client.chat.completions.create(model="fake-model",
                                               messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "hi"
        v = pool(fresh_registry, "openai")
        assert v["resources[idle]"] == 1 and v["created_total"] == 1

        async def run_async() -> dict[str, float]:
            aclient = openai.AsyncOpenAI(base_url=llm.base_url, api_key="sk-test")
            memexport.pool(aclient, "openai-async", registry=fresh_registry)
            await aclient.chat.completions.create(model="fake-model",
                                                  messages=[{"role": "user", "content": "y"}])
            got = pool(fresh_registry, "openai-async")
            await aclient.close()
            return got

        av = asyncio.run(run_async())
        assert av["resources[idle]"] == 1 and av["created_total"] == 1
        client.close()


def test_uninstrument_removes_the_instance_wrappers(server: Server,
                                                    fresh_registry: Registry) -> None:
    client = httpx.Client(base_url=server.url)
    memexport.pool(client, "undo", registry=fresh_registry)
    core = client._transport._pool
    assert "_assign_requests_to_connections" in vars(core)
    assert SPEC.uninstrument(client) is client
    assert "_assign_requests_to_connections" not in vars(core)
    client.get("/")
    client.close()


def test_client_is_not_kept_alive(server: Server, fresh_registry: Registry) -> None:
    client = httpx.Client(base_url=server.url)
    memexport.pool(client, "gone", registry=fresh_registry)
    client.get("/")
    client.close()
    del client
    gc.collect()
    v = pool(fresh_registry, "gone")
    assert "resources[idle]" not in v and v["created_total"] == 1


def test_scrape_does_not_take_the_pool_lock(server: Server, fresh_registry: Registry) -> None:
    """A lock held forever (as after fork) does not stop a scrape."""
    client = httpx.Client(base_url=server.url)
    memexport.pool(client, "locked", registry=fresh_registry)
    client.get("/")
    lock = client._transport._pool._optional_thread_lock._lock
    assert lock.acquire(timeout=1)
    try:
        result: list[dict[str, float]] = []
        t = threading.Thread(target=lambda: result.append(pool(fresh_registry, "locked")))
        t.start()
        t.join(10)
        assert result and result[0]["resources[idle]"] == 1
    finally:
        lock.release()
    client.close()


