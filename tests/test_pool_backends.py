"""memexport.pool on real backends: SQLAlchemy on an SQLite file, redis-py against a real
redis-server on a free loopback port (started here; missing in CI = failure), each scraped
from a real ``/metrics`` endpoint after a scripted sequence that exhausts the pool."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, require_binary, stop_process
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import memexport
from memexport.core.registry import REGISTRY, Registry
from memexport.exporters.prometheus import MetricsServer, register_collector, start_http_server

sqlalchemy = pytest.importorskip("sqlalchemy")
redis = pytest.importorskip("redis")


def pool_values(text: str, name: str) -> dict[str, float]:
    """``{metric[state]: value}`` of pool ``name`` in an exposition."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            lab = s.labels
            if lab.get("pool") != name or "le" in lab:
                continue
            short = s.name.removeprefix("memexport_pool_")
            out[f"{short}[{lab['state']}]" if "state" in lab else short] = s.value
    return out


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[MetricsServer]:
    """memexport's real /metrics endpoint (global registry, no collector thread)."""
    server = start_http_server(0, "127.0.0.1", registry=CollectorRegistry(), collector=False)
    try:
        yield server
    finally:
        server.close()


def private_exposition(reg: Registry) -> str:
    prom = CollectorRegistry()
    register_collector(prom, reg)
    return generate_latest(prom).decode()


def scrape(server: MetricsServer) -> str:
    with urllib.request.urlopen(server.url, timeout=10) as resp:
        return resp.read().decode()


# -- SQLAlchemy --------------------------------------------------------------------------------


def sqlite_engine(path: Path, **kw: Any) -> Any:
    from sqlalchemy.pool import QueuePool

    return sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=QueuePool, pool_size=1,
                                    max_overflow=0, pool_timeout=0.05, **kw)


def test_sqlalchemy_sqlite_engine_exhausts_and_reports_exact_values(
        tmp_path: Path, metrics_server: MetricsServer) -> None:
    from sqlalchemy import text

    engine = sqlite_engine(tmp_path / "app.db")
    assert memexport.pool(engine, name="sqlite_app") is engine  # events: nothing to swap
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        v = pool_values(scrape(metrics_server), "sqlite_app")
        assert (v["resources[in_use]"], v["resources[idle]"], v["max_resources"]) == (1, 0, 1)
        with pytest.raises(sqlalchemy.exc.TimeoutError, match="QueuePool limit"):
            engine.connect()  # pool_size=1, max_overflow=0: the second checkout times out
        assert v["oldest_use_seconds"] > 0
    v = pool_values(scrape(metrics_server), "sqlite_app")
    assert v == {
        "resources[idle]": 1,
        "resources[in_use]": 0,
        "max_resources": 1,
        "pending_acquires": 0,
        "acquires_total": 2,  # the begin() and the connect()
        "exhausted_total": 1,
        "acquire_errors_total": 0,
        "acquire_wait_seconds_count": 2,
        "acquire_wait_seconds_sum": v["acquire_wait_seconds_sum"],
        "use_seconds_count": 2,
        "use_seconds_sum": v["use_seconds_sum"],
        "created_total": 1,  # one SQLite connection, reused
        "destroyed_total": 0,
        "oldest_use_seconds": 0,
    }
    engine.dispose()  # closes the idle connection; a new pool replaces the old one
    with engine.connect() as conn:
        conn.execute(text("SELECT n FROM t"))
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()  # the new pool is instrumented too
    v = pool_values(scrape(metrics_server), "sqlite_app")
    assert (v["destroyed_total"], v["created_total"], v["acquires_total"]) == (1, 2, 3)
    assert (v["exhausted_total"], v["use_seconds_count"], v["resources[in_use]"]) == (2, 3, 0)
    engine.dispose()


def test_sqlalchemy_sixteen_threads_balance(tmp_path: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.pool import QueuePool

    reg = Registry()
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'busy.db'}", poolclass=QueuePool,
                                      pool_size=4, max_overflow=0, pool_timeout=30)
    memexport.pool(engine, name="busy", registry=reg)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    v = pool_values(private_exposition(reg), "busy")
    assert (v["acquires_total"], v["use_seconds_count"]) == (320, 320)
    assert (v["resources[in_use]"], v["pending_acquires"], v["exhausted_total"]) == (0, 0, 0)
    assert v["resources[idle]"] == v["created_total"] <= 4
    engine.dispose()


def test_sqlalchemy_async_engine_under_a_real_loop(tmp_path: Path) -> None:
    pytest.importorskip("aiosqlite")
    pytest.importorskip("greenlet")
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    reg = Registry()

    async def script() -> dict[str, float]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
                                     pool_size=1, max_overflow=0, pool_timeout=0.05)
        memexport.pool(engine, name="async_db", registry=reg)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                async with engine.connect():
                    pass
        v = pool_values(private_exposition(reg), "async_db")
        await engine.dispose()
        return v

    v = asyncio.run(script())
    assert (v["acquires_total"], v["exhausted_total"], v["resources[in_use]"]) == (1, 1, 0)


# -- redis-py ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    """A real redis-server on a free loopback port, no persistence."""
    binary = require_binary("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"redis-server did not start:\n{stop_process(proc)}") from exc
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        stop_process(proc)


@pytest.mark.e2e
def test_redis_connection_pool_exact_values(redis_port: int,
                                            metrics_server: MetricsServer) -> None:
    raw = redis.ConnectionPool(host="127.0.0.1", port=redis_port, max_connections=2)
    pool = memexport.pool(raw, name="redis_cache")
    client = redis.Redis(connection_pool=pool)
    client.set("k", "v")
    assert client.get("k") == b"v"
    c1 = pool.get_connection()
    c2 = pool.get_connection()
    v = pool_values(scrape(metrics_server), "redis_cache")
    assert (v["resources[in_use]"], v["resources[idle]"], v["max_resources"]) == (2, 0, 2)
    with pytest.raises(redis.ConnectionError, match="Too many connections"):
        client.get("k")  # both connections out: redis-py refuses
    pool.release(c1)
    pool.release(c2)
    assert client.get("k") == b"v"
    v = pool_values(scrape(metrics_server), "redis_cache")
    assert v == {
        "resources[idle]": 2,
        "resources[in_use]": 0,
        "max_resources": 2,
        "pending_acquires": 0,
        "acquires_total": 5,  # set, get, two by hand, get
        "exhausted_total": 1,
        "acquire_errors_total": 0,
        "acquire_wait_seconds_count": 5,
        "acquire_wait_seconds_sum": v["acquire_wait_seconds_sum"],
        "use_seconds_count": 5,
        "use_seconds_sum": v["use_seconds_sum"],
        "created_total": 2,
        "destroyed_total": 0,
        "oldest_use_seconds": 0,
    }
    client.close()


@pytest.mark.e2e
def test_redis_blocking_pool_times_out(redis_port: int, metrics_server: MetricsServer) -> None:
    raw = redis.BlockingConnectionPool(host="127.0.0.1", port=redis_port, max_connections=1,
                                       timeout=0.05)
    pool = memexport.pool(raw, name="redis_blocking")
    client = redis.Redis(connection_pool=pool)
    assert client.ping()
    held = pool.get_connection()
    with pytest.raises(redis.ConnectionError, match="No connection available"):
        client.ping()
    v = pool_values(scrape(metrics_server), "redis_blocking")
    assert (v["resources[in_use]"], v["resources[idle]"], v["exhausted_total"]) == (1, 0, 1)
    assert v["oldest_use_seconds"] > 0
    pool.release(held)
    v = pool_values(scrape(metrics_server), "redis_blocking")
    assert (v["resources[in_use]"], v["resources[idle]"], v["created_total"]) == (0, 1, 1)
    assert (v["acquires_total"], v["use_seconds_count"], v["pending_acquires"]) == (2, 2, 0)
    client.close()


@pytest.mark.e2e
def test_redis_asyncio_pool_under_a_real_loop(redis_port: int) -> None:
    import redis.asyncio as aioredis

    reg = Registry()

    async def script() -> dict[str, float]:
        pool = memexport.pool(aioredis.ConnectionPool(host="127.0.0.1", port=redis_port,
                                                      max_connections=1),
                              name="aioredis", registry=reg)
        client = aioredis.Redis(connection_pool=pool)
        await client.set("a", "1")
        conn = await pool.get_connection()
        with pytest.raises(redis.ConnectionError, match="Too many connections"):
            await client.get("a")
        await pool.release(conn)
        assert await client.get("a") == b"1"
        v = pool_values(private_exposition(reg), "aioredis")
        await client.aclose()
        return v

    v = asyncio.run(script())
    assert (v["acquires_total"], v["exhausted_total"], v["resources[in_use]"]) == (3, 1, 0)
    assert v["use_seconds_count"] == 3


@pytest.mark.e2e
def test_promtool_check_metrics_on_all_pool_kinds(redis_port: int, tmp_path: Path,
                                                  metrics_server: MetricsServer) -> None:
    promtool = require_binary("promtool")
    engine = sqlite_engine(tmp_path / "check.db")
    memexport.pool(engine, name="check_sqlite")
    with engine.connect():
        pass
    pool = memexport.pool(redis.ConnectionPool(host="127.0.0.1", port=redis_port),
                          name="check_redis")
    redis.Redis(connection_pool=pool).ping()
    text = scrape(metrics_server)
    assert 'pool="check_sqlite"' in text and 'pool="check_redis"' in text
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    engine.dispose()
    assert REGISTRY is memexport.REGISTRY


def test_sqlalchemy_engine_is_not_kept_alive(tmp_path: Path) -> None:
    import gc
    import weakref

    reg = Registry()
    engine = sqlite_engine(tmp_path / "gone.db")
    memexport.pool(engine, name="sqlite_gone", registry=reg)
    with engine.connect():
        pass
    ref = weakref.ref(engine)
    engine.dispose()
    del engine
    gc.collect()
    assert ref() is None
    v = pool_values(private_exposition(reg), "sqlite_gone")
    assert (v["acquires_total"], v["created_total"], v["destroyed_total"]) == (1, 1, 1)
