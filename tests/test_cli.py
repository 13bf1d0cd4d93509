"""The ``memexport`` command: demo runs and stops cleanly, bench prints its JSON shape."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, free_port


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memexport.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_help_lists_the_commands() -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    assert "demo" in res.stdout and "bench" in res.stdout


def test_unknown_command_fails() -> None:
    res = run_cli("nope")
    assert res.returncode == 2 and "unknown command 'nope'" in res.stderr


def test_demo_runs_for_its_duration_and_prints_status() -> None:
    res = run_cli("demo", "--port", str(free_port()), "--duration", "2", "--tick", "0.1",
                  "--collector-interval", "0.5")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("memexport demo: scenario 'healthy'")
    status = [line for line in lines if line.startswith("memexport demo [healthy]")]
    assert status, res.stdout
    assert "rss " in status[-1] and "components " in status[-1] and "scrapes " in status[-1]
    assert lines[-1] == "memexport demo: stopped"


def test_demo_port_in_use_exits_with_a_clear_message() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_cli("demo", "--port", str(port), "--duration", "1")
    assert res.returncode == 2
    assert f"127.0.0.1:{port}: address already in use" in res.stderr


def test_demo_rejects_bad_arguments() -> None:
    res = run_cli("demo", "--scenario", "nope")
    assert res.returncode == 2 and "invalid choice: 'nope'" in res.stderr
    res = run_cli("demo", "--duration", "-1")
    assert res.returncode == 2 and "--duration must be positive" in res.stderr


def test_bench_quick_json_prints_every_case_with_its_ratio() -> None:
    res = run_cli("bench", "--quick", "--json", timeout=300)
    assert res.returncode == 0, res.stderr
    cases = json.loads(res.stdout)["cases"]
    names = {c["name"] for c in cases}
    assert {"counter: bare int += 1", "counter: memexport Counter.inc()",
            "counter: prometheus_client Counter.labels(...).inc()",
            "counter: OpenTelemetry Counter.add()",
            "collector: one tick, default probes (CPU)",
            "scrape: memexport, 1000 components"} <= names
    for area in ("cache: ", "pool: ", "message: ", "agent: ", "otel: "):
        assert any(n.startswith(area) for n in names), f"no {area!r} case"
    for c in cases:
        assert set(c) == {"name", "ns_per_op", "baseline", "baseline_ns_per_op", "ratio"}
        assert c["ns_per_op"] > 0
        if c["baseline"] is not None:
            assert c["baseline"] in names
            assert c["ratio"] == pytest.approx(c["ns_per_op"] / c["baseline_ns_per_op"],
                                               rel=1e-3)


def test_version_and_python_dash_m() -> None:
    import memexport

    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout == f"memexport {memexport.__version__}\n"
    res = subprocess.run([sys.executable, "-m", "memexport", "--help"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0 and "demo" in res.stdout and "bench" in res.stdout
    res = subprocess.run([sys.executable, "-m", "memexport", "--version"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert res.stdout == f"memexport {memexport.__version__}\n"


def test_bench_only_matching_nothing_is_an_error() -> None:
    res = run_cli("bench", "--only", "nonexistent", timeout=120)
    assert res.returncode == 2
    assert "--only 'nonexistent' matches no case name" in res.stderr
    assert res.stdout == ""
