"""The ``memexport`` command: demo runs and stops cleanly, bench prints its JSON shape."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, free_port


def run_cli(*args: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memexport.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env=None if env is None else {**os.environ, **env})


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


def _check_result(c: dict[str, object], names: set[str]) -> None:
    assert set(c) == {"name", "value", "unit", "baseline", "baseline_value", "ratio", "delta",
                      "target", "met", "note"}
    value, base = c["value"], c["baseline_value"]
    assert isinstance(value, float | int)
    if c["baseline"] is not None:
        assert c["baseline"] in names
        assert isinstance(base, float | int)
        if base:
            assert c["ratio"] == pytest.approx(value / base, rel=1e-3, abs=1e-3)
        assert c["delta"] == pytest.approx(value - base, rel=1e-3, abs=1e-2)
    target = c["target"]
    if target is None:
        assert c["met"] is None
        return
    assert isinstance(target, dict)
    assert set(target) == {"limit", "of", "op", "unit", "text"}
    figure = {"value": value, "ratio": c["ratio"], "delta": c["delta"]}[target["of"]]
    assert isinstance(figure, float | int)
    expected = figure <= target["limit"] if target["op"] == "<=" else figure >= target["limit"]
    assert c["met"] is expected, c


def test_bench_quick_json_runs_every_case_with_its_target_and_verdict() -> None:
    res = run_cli("bench", "--quick", "--json", timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    cases, skipped = report["cases"], report["skipped"]
    names = {c["name"] for c in cases}
    assert len(names) == len(cases)
    from memexport.bench import CASE_MODULES

    prefixes = {"core": "counter: ", "caches": "cache: ", "pools": "pool: ",
                "agents": "message: ", "patched": "untracked: ", "otel": "otel: ",
                "process": "process: ", "threads": "threads: ", "memory": "memory: ",
                "instrumenting": "instrument: ", "cycles": "cycles: ", "sampling": "sampling: ",
                "startup": "startup: ", "scrape": "scrape: ", "tracing": "process: tracemalloc"}
    assert set(prefixes) == set(CASE_MODULES)
    for mod, prefix in prefixes.items():
        assert any(n.startswith(prefix) for n in names), f"no case of module {mod!r}"
    # Nothing of memexport itself may be missing: only optional packages skip cases.
    for s in skipped:
        assert set(s) == {"name", "reason"} and "memexport" not in s["reason"], s
    for c in cases:
        _check_result(c, names)
    judged = [c["met"] for c in cases if c["met"] is not None]
    assert report["summary"] == {"met": judged.count(True), "missed": judged.count(False),
                                 "without_target": len(cases) - len(judged),
                                 "skipped": len(skipped)}
    # The targets of the issue are all there, as data.
    with_target = {c["name"] for c in cases if c["target"] is not None}
    for wanted in ("scrape: memexport, 100 caches (GC on)",
                   "scrape: memexport, 1,000 caches (GC on)",
                   "startup: import memexport (process CPU)",
                   "memory: cache: dict, bytes per component",
                   "memory: cache: dict, GC objects per component",
                   "instrument: cache: dict, none alive",
                   "pool: queue.Queue, memexport.pool",
                   "pool: guide ResourcePool, memexport.pool",
                   "cache: dict get d[k], memexport",
                   "process: tracemalloc tick, 50k traced blocks (CPU)"):
        assert wanted in with_target, wanted
    # Scrapes compare equal output: the note says the sample lines match.
    for c in cases:
        if c["name"].startswith("scrape: memexport, ") and "caches (GC" in c["name"]:
            assert "same sample lines" in c["note"], c


def test_bench_table_lists_verdicts_and_only_brings_the_baseline() -> None:
    res = run_cli("bench", "--quick", "--only", "cache: dict get d[k], memexport", timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["#", "case"]
    assert any("cache: dict get d[k], uninstrumented" in line for line in lines)
    ours = next(line for line in lines if "cache: dict get d[k], memexport " in line)
    assert "<= +60.0 ns" in ours and ("met" in ours or "MISSED" in ours) and "vs #" in ours
    assert lines[-1].startswith("targets: ")


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


def test_bench_times_prometheus_client_in_its_default_mode_whatever_the_environment(
        tmp_path: Path) -> None:
    """A shell of a gunicorn app (PROMETHEUS_MULTIPROC_DIR set) runs the bench as anywhere
    else: prometheus_client writes no file into that directory (nor fails on a missing one)."""
    for mp in (tmp_path, tmp_path / "gone"):
        res = run_cli("bench", "--only", "counter: prometheus_client", "--quick",
                      env={"PROMETHEUS_MULTIPROC_DIR": str(mp)}, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "prometheus_client Counter.labels(...).inc()" in res.stdout
    assert list(tmp_path.iterdir()) == []
