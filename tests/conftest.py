"""Shared fixtures: real servers on free loopback ports, and the rule that CI never skips them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))

#: Where each server binary comes from, for the error message.
DEBIAN_PACKAGE = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
    "tmux": "tmux",
    "node": "nodejs",
    "npm": "npm",
    "kubectl": "kubernetes-client",
}


#: Catalogued metrics that exist only on some hosts: {name: where they are shown}. Each is
#: exported from a fixture tree in the test named here; the demo on this host cannot show
#: them, so the catalogue and dashboard-data checks leave them out (and nothing else).
HOST_DEPENDENT = {
    "memexport_cgroup_memory_high_bytes":
        "cgroup v2 with memory.high set (tests/test_cgroup.py::test_v2_fixture)",
}


def require_binary(name: str) -> str:
    """The path of ``name``; a missing binary fails the test in CI and skips it elsewhere."""
    path = shutil.which(name)
    if path is None:
        pkg = DEBIAN_PACKAGE.get(name, name)
        msg = (f"{name} not found: install the Debian package {pkg!r} "
               f"(./scripts/test installs it)")
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, deadline_s: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail with the process output if it died."""
    end = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited with {proc.returncode} before {url} "
                                 f"answered:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {deadline_s}s: {last}")


def stop_process(proc: subprocess.Popen) -> str:
    """Terminate ``proc`` (then kill) and return what it printed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.stdout.read() if proc.stdout else ""


@pytest.fixture
def prometheus_bin() -> str:
    return require_binary("prometheus")


@pytest.fixture
def promtool_bin() -> str:
    return require_binary("promtool")


@pytest.fixture
def fresh_registry() -> Iterator[object]:
    """A private memexport Registry, so a test does not see other tests' components."""
    from memexport.core.registry import Registry

    yield Registry()


def pytest_collection_finish(session: pytest.Session) -> None:
    """In CI, a run without end-to-end tests is a broken run, not a green one."""
    if IN_CI and not any(item.get_closest_marker("e2e") for item in session.items):
        raise pytest.UsageError("CI=true but no end-to-end (e2e) test was collected")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """In CI nothing skips silently: a skipped test (a missing server, library or tool) fails."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """The same for a whole module skipped at import (``pytest.importorskip``)."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped in CI (CI=true): {report.longrepr}"


def start_demo(port: int, scenario: str = "leak", duration: float = 300.0,
               tick: float = 0.2, collector_interval: float = 1.0) -> subprocess.Popen:
    """Start ``memexport demo`` as a real process and wait until /metrics answers."""
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "memexport.cli", "demo", "--port", str(port),
         "--scenario", scenario, "--duration", str(duration), "--tick", str(tick),
         "--collector-interval", str(collector_interval)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", 60, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()
