"""Pre-fork servers: prometheus_client multiprocess mode, and per-worker OTLP push.

Unit tests fork real processes that write into a temporary ``PROMETHEUS_MULTIPROC_DIR``; the
end-to-end tests run the shipped example (examples/gunicorn) under a real gunicorn with 4
workers scraped by a real Prometheus, kill a worker with SIGKILL and watch it being replaced.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import Registry
from memexport.exporters import multiprocess as mpx
from tests.conftest import ROOT, free_port, stop_process, wait_http
from tests.test_otel_support import OtlpHttpReceiver, Prometheus, wait_for

EXAMPLE = ROOT / "examples" / "gunicorn"

GIZMO = Kind(
    "gizmo",
    "gizmo",
    (
        MetricDef("memexport_gizmo_items", "gauge", "Items."),
        MetricDef("memexport_gizmo_largest_items", "gauge", "Largest.", agg="max"),
        MetricDef("memexport_gizmo_bytes", "gauge", "Bytes.", "bytes"),
        MetricDef("memexport_gizmo_requests_total", "counter", "Requests.", labels=("result",)),
        MetricDef("memexport_gizmo_wait_seconds", "histogram", "Wait.", "seconds",
                  buckets=(0.1, 1.0)),
    ),
    bytes_metric="memexport_gizmo_bytes",
)


class Box(list):
    pass


@pytest.fixture
def mpdir(tmp_path, monkeypatch) -> Iterator[Path]:
    path = tmp_path / "multiproc"
    path.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    yield path


def merged(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(mpx._merged_registry(str(path))).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def in_child(fn) -> int:
    """Run ``fn`` in a forked child (a stand-in for a pre-fork worker); return its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            mpx._own_class = None  # a fresh process: no files opened by an earlier test
            fn()
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid


def worker(n: int, *, keep: bool = True, budget: float | None = None) -> None:
    reg = Registry()
    boxes = [Box([1] * n), Box([1])]
    for b in boxes:
        comp = reg.register(b, GIZMO, "g")
        comp.gauge("memexport_gizmo_items", len)
        comp.gauge("memexport_gizmo_largest_items", len)
        for _ in range(n):
            comp.counter("memexport_gizmo_requests_total", "hit").inc()
        comp.histogram("memexport_gizmo_wait_seconds").observe(0.05 * n)
    if budget is not None:
        reg.set_budget(budget, "gizmo", "g")
    writer = mpx.MultiprocessWriter(reg)
    writer.write()
    if not keep:
        del boxes, comp, b
        gc.collect()
        writer.write()


def test_workers_merge_by_kind_semantics(mpdir):
    pids = [in_child(functools.partial(worker, n, budget=100.0)) for n in (2, 5)]
    s = merged(mpdir)
    g = (("gizmo", "g"),)
    assert s[("memexport_gizmo_items", g)] == (2 + 1) + (5 + 1)  # summed over live workers
    assert s[("memexport_gizmo_largest_items", g)] == 5  # max where the kind says max
    assert s[("memexport_gizmo_budget_bytes", g)] == 200  # summed like the bytes it bounds
    assert s[("memexport_gizmo_requests_total", (("gizmo", "g"), ("result", "hit")))] == 14
    assert s[("memexport_gizmo_wait_seconds_count", g)] == 4
    assert s[("memexport_gizmo_wait_seconds_bucket", (("gizmo", "g"), ("le", "0.1")))] == 2
    assert s[("memexport_gizmo_wait_seconds_sum", g)] == pytest.approx(2 * 0.1 + 2 * 0.25)
    # process-level series: one per worker, labelled pid
    rss = {dict(k)["pid"] for (name, k) in s if name == "process_resident_memory_bytes"}
    assert rss == {str(p) for p in pids}
    errors = {dict(k)["pid"] for (name, k) in s if name == "memexport_collector_duration_seconds"}
    assert errors == {str(p) for p in pids}
    assert s[("python_gc_collections_total", (("generation", "0"),))] > 0


def test_a_file_a_worker_is_still_creating_does_not_fail_the_scrape(mpdir):
    """prometheus_client makes a worker's value file, then sizes it: a scrape in between (or
    after the worker was killed in between) found a 0-byte file and failed whole with a 500
    (client_python#1199, seen here as a flaky uvicorn e2e). It is left out of the merge."""
    in_child(functools.partial(worker, 2))
    (mpdir / "counter_999999.db").write_bytes(b"")
    (mpdir / "gauge_livesum_999999.db").write_bytes(b"\0\0")
    s = merged(mpdir)
    assert s[("memexport_gizmo_requests_total", (("gizmo", "g"), ("result", "hit")))] == 4


def test_dead_worker_keeps_its_counts_and_loses_its_gauges(mpdir):
    dead = in_child(functools.partial(worker, 3))
    alive = in_child(functools.partial(worker, 4))
    before = merged(mpdir)
    hits = ("memexport_gizmo_requests_total", (("gizmo", "g"), ("result", "hit")))
    assert before[hits] == 14
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(dead, str(mpdir))
    after = merged(mpdir)
    assert after[hits] == 14  # never backwards when a worker is replaced
    assert after[("memexport_gizmo_items", (("gizmo", "g"),))] == 5  # only the live worker
    pids = {dict(k)["pid"] for (name, k) in after if name == "process_resident_memory_bytes"}
    assert pids == {str(alive)}
    assert not list(mpdir.glob(f"gauge_live*_{dead}.db"))
    assert (mpdir / f"counter_{dead}.db").exists()


def test_components_that_left_read_zero_not_a_stale_sum(mpdir):
    in_child(functools.partial(worker, 3, keep=False))
    s = merged(mpdir)
    assert s[("memexport_gizmo_items", (("gizmo", "g"),))] == 0
    assert s[("memexport_gizmo_requests_total", (("gizmo", "g"), ("result", "hit")))] == 6


def _same_pid_twice() -> None:
    reg = Registry()
    box = Box([1])
    comp = reg.register(box, GIZMO, "g")
    for _ in range(5):
        comp.counter("memexport_gizmo_requests_total", "hit").inc()
    mpx.MultiprocessWriter(reg, standard=False).write()
    # A new process with the same pid (fresh registry and files) finds the old file.
    mpx._own_class = None
    reg2 = Registry()
    box2 = Box([1])
    comp2 = reg2.register(box2, GIZMO, "g")
    comp2.counter("memexport_gizmo_requests_total", "hit").inc()
    mpx.MultiprocessWriter(reg2, standard=False).write()


def test_a_reused_pid_never_makes_a_sum_go_backwards(mpdir):
    in_child(_same_pid_twice)
    hits = ("memexport_gizmo_requests_total", (("gizmo", "g"), ("result", "hit")))
    assert merged(mpdir)[hits] == 6


def test_cleanup_dead_workers_marks_gone_pids(mpdir):
    dead = in_child(functools.partial(worker, 1))
    assert list(mpdir.glob(f"gauge_live*_{dead}.db"))
    assert dead in mpx.cleanup_dead_workers(str(mpdir))
    assert not list(mpdir.glob(f"gauge_live*_{dead}.db"))


def test_settings_are_validated(monkeypatch, tmp_path):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR"):
        mpx.MultiprocessWriter(Registry())
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="missing"):
        mpx.multiproc_dir()
    monkeypatch.setenv("MEMEXPORT_COLLECTOR_INTERVAL", "soon")
    with pytest.raises(ValueError, match="'soon'"):
        mpx._interval_from_env(None)
    with pytest.raises(ValueError, match="-1"):
        mpx._interval_from_env(-1)


def test_on_starting_creates_and_wipes_the_directory(monkeypatch, tmp_path):
    # on_starting sets the variable itself: setitem first, so the teardown removes it.
    monkeypatch.setitem(os.environ, "PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    mpx.on_starting(None)
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    try:
        assert made.is_dir()
        stale = tmp_path / "counter_1.db"
        stale.write_bytes(b"x")
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        mpx.on_starting(None)
        assert not stale.exists()
    finally:
        made.rmdir()


def test_the_documented_config_is_one_line():
    conf = (EXAMPLE / "gunicorn.conf.py").read_text()
    assert "from memexport.exporters.multiprocess import child_exit, on_starting, post_fork" in conf
    for hook in ("child_exit", "on_starting", "post_fork"):
        assert callable(getattr(mpx, hook))


# -- a real gunicorn -------------------------------------------------------------------------


@functools.cache
def _gunicorn_flags() -> tuple[str, ...]:
    help_text = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True,
                               text=True, timeout=60).stdout
    return ("--no-control-socket",) if "--no-control-socket" in help_text else ()


class Gunicorn:
    """The example app under a real gunicorn master with its workers."""

    def __init__(self, tmp: Path, config: str, app: str, workers: int, *,
                 worker_class: str | None = None, **env: str) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "gunicorn", "-c", str(EXAMPLE / config),
                "--chdir", str(EXAMPLE), "-b", f"127.0.0.1:{self.port}", "-w", str(workers),
                "--graceful-timeout", "5", *_gunicorn_flags()]
        if worker_class:
            args += ["-k", worker_class]
        environ = {**os.environ,
                   "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
                   "MEMEXPORT_COLLECTOR_INTERVAL": "0.5", **env}
        self.proc = subprocess.Popen([*args, app], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=environ, cwd=tmp)
        self.workers = workers
        try:
            wait_http(f"{self.url}/work?warmup", 60, self.proc)
            wait_for(lambda: len(self.worker_pids()) == workers, 30, f"{workers} workers")
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> set[int]:
        try:
            return {c.pid for c in psutil.Process(self.proc.pid).children()
                    if c.status() != psutil.STATUS_ZOMBIE}
        except psutil.NoSuchProcess:
            return set()

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return resp.read().decode()

    def requests(self, n: int, start: int = 0) -> None:
        for i in range(start, start + n):
            self.get(f"/work?k{i % 7}")

    def close(self) -> str:
        return stop_process(self.proc)


def _scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


PUTS = 'memexport_cache_puts_total{cache="request_scratch"}'


@pytest.mark.e2e
def test_gunicorn_worker_replacement_keeps_counters_and_per_worker_memory(tmp_path):
    mp = tmp_path / "multiproc"
    mp.mkdir()
    server = Gunicorn(tmp_path, "gunicorn.conf.py", "app:app", 4,
                      PROMETHEUS_MULTIPROC_DIR=str(mp))
    prom = None
    try:
        server.requests(40)  # + 1 warm-up: 41 requests, 10 scratch puts each
        prom = Prometheus(tmp_path / "prom", [{
            "job_name": "gunicorn", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}])
        first = server.worker_pids()

        def pids_in_prometheus() -> set[int]:
            return {int(dict(k)["pid"]) for k in prom.values(
                'process_resident_memory_bytes{job="gunicorn"}')}

        wait_for(lambda: pids_in_prometheus() == first, 30,
                 "one process_resident_memory_bytes series per live worker")
        wait_for(lambda: prom.values(f"sum({PUTS})") and
                 next(iter(prom.values(f"sum({PUTS})").values())) == 410, 30,
                 "every worker's counts summed")
        series = prom.values('memexport_cache_items{cache="responses"}')
        assert len(series) == 1 and "pid" not in dict(next(iter(series)))  # summed over workers
        assert next(iter(series.values())) >= 7

        # kill the worker that holds the most counts, mid-test, without a goodbye
        def counts_of(pid: int) -> float:
            from prometheus_client.multiprocess import MultiProcessCollector

            total = 0.0
            for metric in MultiProcessCollector.merge([str(mp / f"counter_{pid}.db")]):
                total += sum(s.value for s in metric.samples
                             if s.labels.get("cache") == "request_scratch"
                             and s.name == "memexport_cache_puts_total")
            return total

        victim = max(first, key=counts_of)
        assert counts_of(victim) > 0
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: (p := server.worker_pids()) and len(p) == 4
                            and victim not in p and p, 30, "a replacement worker")
        wait_for(lambda: pids_in_prometheus() == replaced, 30,
                 "the dead worker's series gone and the new worker's present")
        assert not list(mp.glob(f"gauge_live*_{victim}.db"))  # cleaned by child_exit
        assert (mp / f"counter_{victim}.db").exists()  # its counts stay in the sum

        server.requests(20, start=40)
        wait_for(lambda: next(iter(prom.values(f"sum({PUTS})").values()), 0) == 610, 30,
                 "the counts of old, dead and new workers summed")
        direct = _scraped(server.get("/metrics"))
        assert direct[("memexport_cache_puts_total", (("cache", "request_scratch"),))] == 610
        live = {int(dict(k)["pid"]) for (n, k) in direct if n == "process_resident_memory_bytes"}
        assert live == replaced
        # never backwards, at any scrape of the test
        for counter in (PUTS, "memexport_cache_requests_total",
                        "python_gc_collections_total"):
            resets = prom.values(f"resets({counter}[5m])")
            assert resets and all(v == 0 for v in resets.values()), (counter, resets)
    finally:
        if prom is not None:
            prom.close()
        out = server.close()
    assert "Traceback" not in out, out


@pytest.mark.e2e
def test_uvicorn_workers_share_one_metrics_endpoint(tmp_path):
    pytest.importorskip("uvicorn")
    mp = tmp_path / "multiproc"
    mp.mkdir()
    server = Gunicorn(tmp_path, "gunicorn.conf.py", "asgi_app:app", 2,
                      worker_class="uvicorn.workers.UvicornWorker",
                      PROMETHEUS_MULTIPROC_DIR=str(mp))
    try:
        server.requests(10)
        pids = server.worker_pids()

        def complete() -> dict | None:
            s = _scraped(server.get("/metrics"))
            live = {int(dict(k)["pid"]) for (n, k) in s if n == "process_resident_memory_bytes"}
            puts = s.get(("memexport_cache_puts_total", (("cache", "request_scratch"),)))
            return s if live == pids and puts == 110 else None

        try:
            s = wait_for(complete, 30, "both uvicorn workers' metrics in one /metrics")
        except urllib.error.HTTPError as exc:  # a failed scrape: say what the worker logged
            raise AssertionError(f"/metrics answered {exc.code}:\n{server.close()}") from None
        assert s[("memexport_cache_items", (("cache", "responses"),))] >= 7
    finally:
        out = server.close()
    assert "Traceback" not in out, out


@pytest.mark.e2e
def test_each_worker_pushes_over_otlp(tmp_path):
    receiver = OtlpHttpReceiver()
    server = Gunicorn(tmp_path, "gunicorn_otlp.conf.py", "app:app", 2,
                      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=receiver.endpoint,
                      OTEL_METRIC_EXPORT_INTERVAL="300", OTEL_SERVICE_NAME="push-test")
    try:
        server.requests(10)
        pids = server.worker_pids()

        def per_worker() -> dict | None:
            got = {k: v for k, v in receiver.by_resource("process.pid").items()
                   if k in pids and "memexport.cache.puts" in v}
            if set(got) != pids:
                return None
            total = sum(p[1] for m in got.values() for p in m["memexport.cache.puts"]["points"]
                        if p[0].get("memexport.cache.name") == "request_scratch")
            return got if total == 110 else None

        got = wait_for(per_worker, 90, "a push from every worker with all its counts")
        ids = {next(iter(m.values()))["resource"]["service.instance.id"] for m in got.values()}
        assert len(ids) == 2  # series of sibling workers never collide
        for m in got.values():
            assert m["process.memory.usage"]["resource"]["service.name"] == "push-test"
            assert m["process.memory.usage"]["points"][0][1] > 0
            assert not math.isnan(m["process.memory.usage"]["points"][0][1])
    finally:
        out = server.close()
        receiver.close()
    assert "Traceback" not in out, out
