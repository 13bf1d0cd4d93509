"""The process collector: memory-limit lookup on real files, the thread, GC pauses, tracemalloc."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import memexport
from memexport.core.model import Family
from memexport.core.registry import Registry
from memexport.exporters.prometheus import register_collector
from memexport.process.collector import ProcessCollector, detect_memory_limit

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 30.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(reg: Registry) -> str:
    prom = CollectorRegistry(auto_describe=True)
    register_collector(prom, reg)
    return generate_latest(prom).decode()


def samples(reg: Registry) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(scrape(reg)):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def named(s: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in s.items() if n == name}


def wait_for(cond: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def collectors() -> Iterator[list[ProcessCollector]]:
    """Collectors a test starts; all stopped afterwards, even when the test fails."""
    started: list[ProcessCollector] = []
    yield started
    for c in started:
        c.stop()


# -- memory limit, against real files ------------------------------------------------------


def fake_fs(tmp_path: Path, proc_cgroup: str | None, files: dict[str, str]) -> tuple[str, str]:
    """Write /proc/self/cgroup and cgroup files under tmp_path; return (cgroup_root, proc)."""
    cg, proc = tmp_path / "cgroup", tmp_path / "proc"
    cg.mkdir()
    (proc / "self").mkdir(parents=True)
    if proc_cgroup is not None:
        (proc / "self" / "cgroup").write_text(proc_cgroup)
    for rel, text in files.items():
        path = cg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(cg), str(proc)


def fallback() -> tuple[int, str]:
    """What the lookup must give when no cgroup limit applies, for this test process."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        return soft, "rlimit_as"
    return psutil.virtual_memory().total, "physical"


V2 = "0::/app.slice/worker\n"
V1 = "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"


@pytest.mark.parametrize(
    ("proc_cgroup", "files", "expected"),
    [
        pytest.param(V2, {"app.slice/worker/memory.max": "536870912\n"},
                     (536870912, "cgroup_v2"), id="v2-number"),
        pytest.param(V2, {"app.slice/worker/memory.max": "max\n",
                          "app.slice/memory.max": "268435456\n"},
                     (268435456, "cgroup_v2"), id="v2-parent-limit-binds"),
        pytest.param("0::/host/path/not/visible\n", {"memory.max": "1073741824\n"},
                     (1073741824, "cgroup_v2"), id="v2-container-without-cgroupns"),
        pytest.param(V2, {"app.slice/worker/memory.max": "max\n"}, None, id="v2-max"),
        pytest.param(V1, {"memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
                          "memory/memory.limit_in_bytes": "9223372036854771712\n"},
                     (2147483648, "cgroup_v1"), id="v1-number"),
        pytest.param(V1, {"memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n"},
                     None, id="v1-unlimited"),
        pytest.param("0::/\n", {}, None, id="no-cgroup-files"),
        pytest.param(None, {}, None, id="no-proc-self-cgroup"),
    ],
)
def test_memory_limit_lookup(tmp_path: Path, proc_cgroup: str | None, files: dict[str, str],
                             expected: tuple[int, str] | None) -> None:
    cg, proc = fake_fs(tmp_path, proc_cgroup, files)
    want = expected or fallback()
    assert detect_memory_limit(cg, proc) == want
    reg = Registry()
    reading = ProcessCollector(reg, cgroup_root=cg, proc_root=proc).tick()
    assert (reading.limit_bytes, reading.limit_source) == want
    s = samples(reg)
    assert named(s, "memexport_process_memory_limit_bytes") == {(("source", want[1]),): want[0]}
    assert s[("memexport_collector_errors_total", (("collector", "memory_limit"),))] == 0


def test_rlimit_as_is_the_limit_when_no_cgroup_sets_one(tmp_path: Path) -> None:
    cg, proc = fake_fs(tmp_path, "0::/\n", {})
    code = (
        "import json, resource, sys\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, hard))\n"
        "from memexport.process.collector import detect_memory_limit\n"
        "print(json.dumps(detect_memory_limit(sys.argv[1], sys.argv[2])))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, cg, proc], capture_output=True,
                         text=True, cwd=ROOT, timeout=60, check=True).stdout
    assert json.loads(out) == [8 << 30, "rlimit_as"]


def test_garbled_limit_file_is_counted_and_the_series_absent(tmp_path: Path) -> None:
    cg, proc = fake_fs(tmp_path, V2, {"app.slice/worker/memory.max": "lots\n"})
    reg = Registry()
    reading = ProcessCollector(reg, cgroup_root=cg, proc_root=proc).tick()
    assert reading.limit_bytes is None and reading.limit_source is None
    s = samples(reg)
    assert named(s, "memexport_process_memory_limit_bytes") == {}
    assert s[("memexport_collector_errors_total", (("collector", "memory_limit"),))] == 1
    assert s[("memexport_system_memory_available_bytes", ())] > 0  # the rest is served


# -- readings and the thread ---------------------------------------------------------------


def test_thread_ticks_and_publishes_sane_values(collectors: list[ProcessCollector]) -> None:
    reg = Registry()
    c = ProcessCollector(reg, interval=0.02)
    collectors.append(c.start())
    wait_for(lambda: c.ticks >= 3, "three readings")
    latest = c.latest
    assert latest is not None and latest.pid == os.getpid()
    assert latest.rss_bytes and latest.rss_bytes > 0
    assert latest.limit_bytes and latest.limit_bytes > 0
    s = samples(reg)
    [limit] = named(s, "memexport_process_memory_limit_bytes").values()
    assert limit > 0
    assert s[("memexport_system_memory_available_bytes", ())] > 0
    assert s[("memexport_process_threads", ())] >= 2  # this one and the collector
    durations = named(s, "memexport_collector_duration_seconds")
    assert {(("collector", "process"),), (("collector", "memory_limit"),)} <= set(durations)
    assert all(v >= 0 for v in durations.values())
    errors = named(s, "memexport_collector_errors_total")
    assert errors[(("collector", "process"),)] == 0
    assert ("memexport_process_uss_bytes", ()) not in s  # opt-in
    assert not named(s, "memexport_tracemalloc_site_bytes")

    c.stop()
    assert not c.running
    assert c._gc.on_gc not in gc.callbacks
    assert not any(n.startswith("memexport_gc_") or n == "memexport_process_threads"
                   for n, _ in samples(reg))
    ticks = c.ticks
    c.start()  # a stopped collector starts again
    wait_for(lambda: c.ticks > ticks, "a reading after restart")


def test_uss_is_opt_in() -> None:
    reg = Registry()
    reading = ProcessCollector(reg, uss=True).tick()
    assert reading.uss_bytes and reading.uss_bytes > 0
    s = samples(reg)
    assert s[("memexport_process_uss_bytes", ())] == reading.uss_bytes
    assert s[("memexport_collector_errors_total", (("collector", "uss"),))] == 0


def test_gc_pauses_are_observed_by_generation(collectors: list[ProcessCollector]) -> None:
    reg = Registry()
    c = ProcessCollector(reg, interval=3600)
    collectors.append(c.start())

    def counts() -> dict[str, float]:
        return {dict(labels)["generation"]: v
                for labels, v in named(samples(reg), "memexport_gc_pause_seconds_count").items()}

    before = counts()
    assert set(before) == {"0", "1", "2"}
    gc.collect()
    gc.collect(0)
    after = counts()
    assert after["2"] >= before["2"] + 1
    assert after["0"] >= before["0"] + 1
    s = samples(reg)
    assert s[("memexport_gc_pause_seconds_sum", (("generation", "2"),))] > 0
    inf = s[("memexport_gc_pause_seconds_bucket", (("generation", "2"), ("le", "+Inf")))]
    assert inf == after["2"]


def hog() -> list[bytearray]:
    """Allocate about 8 MB on one line, so it tops tracemalloc's sites."""
    return [bytearray(40_000) for _ in range(200)]


HOG_LINE = hog.__code__.co_firstlineno + 2


def test_tracemalloc_sites_point_at_the_allocating_line(
        collectors: list[ProcessCollector]) -> None:
    was_tracing = tracemalloc.is_tracing()
    reg = Registry()
    c = ProcessCollector(reg, interval=3600, tracemalloc=True, tracemalloc_top=5)
    collectors.append(c.start())
    assert tracemalloc.is_tracing()
    held = hog()
    reading = c.tick()
    s = samples(reg)
    sites = {dict(labels)["site"]: v
             for labels, v in named(s, "memexport_tracemalloc_site_bytes").items()}
    assert 1 <= len(sites) <= 5
    site = f"test_process.py:{HOG_LINE}"
    assert site in sites and sites[site] >= 200 * 40_000
    assert max(sites, key=sites.__getitem__) == site
    assert not any(k.startswith(("tracemalloc.py", "process.py")) for k in sites)
    assert reading.traced_bytes and reading.traced_bytes >= 200 * 40_000
    assert s[("memexport_tracemalloc_peak_bytes", ())] >= s[
        ("memexport_tracemalloc_traced_bytes", ())]
    assert s[("memexport_collector_errors_total", (("collector", "tracemalloc"),))] == 0
    del held
    c.stop()
    assert tracemalloc.is_tracing() == was_tracing  # stopped only if memexport started it


def test_failing_probe_is_counted_and_the_thread_keeps_ticking(
        collectors: list[ProcessCollector]) -> None:
    calls = []

    def flaky() -> list[Family]:
        calls.append(1)
        raise psutil.AccessDenied(os.getpid(), "flaky")

    reg = Registry()
    c = ProcessCollector(reg, interval=0.01, probes=[("flaky", flaky)])
    collectors.append(c.start())
    wait_for(lambda: c.ticks >= 5, "five readings despite the failing probe")
    assert c.running and len(calls) >= 5
    s = samples(reg)
    assert s[("memexport_collector_errors_total", (("collector", "flaky"),))] >= 5
    assert s[("memexport_collector_errors_total", (("collector", "process"),))] == 0
    assert ("memexport_process_threads", ()) in s  # the other probes are served


def test_extra_probe_families_join_the_reading() -> None:
    reg = Registry()
    fam = Family("memexport_test_extra_bytes", "gauge", "Extra.", "bytes", [({}, 7.0)])
    ProcessCollector(reg, probes=[("extra", lambda: [fam])]).tick()
    assert samples(reg)[("memexport_test_extra_bytes", ())] == 7.0


def test_fork_restarts_the_collector_in_the_child(collectors: list[ProcessCollector]) -> None:
    reg = Registry()
    c = ProcessCollector(reg, interval=0.02)
    collectors.append(c.start())
    wait_for(lambda: c.ticks >= 1, "a first reading")
    parent_thread = c._thread
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            at_fork = c.ticks
            end = time.monotonic() + DEADLINE_S
            while c.ticks < at_fork + 2 and time.monotonic() < end:
                time.sleep(0.01)
            latest = c.latest
            report = {
                "running": c.running,
                "new_thread": c._thread is not parent_thread,
                "advanced": c.ticks >= at_fork + 2,
                "pid_ok": latest is not None and latest.pid == os.getpid(),
            }
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        report = json.loads(f.read() or b"{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {"running": True, "new_thread": True, "advanced": True, "pid_ok": True}
    assert c.running and c._thread is parent_thread  # the parent's thread is untouched


# -- the process-wide API --------------------------------------------------------------------


def test_start_collector_is_idempotent_and_updates_settings() -> None:
    reg = Registry()
    try:
        c = memexport.start_collector(0.05, registry=reg, uss=True)
        thread = c._thread
        assert memexport.start_collector(0.02, registry=reg) is c
        assert c._thread is thread and c.interval == 0.02
        assert c._uss  # None keeps the running setting
        ticks = c.ticks
        wait_for(lambda: c.ticks >= ticks + 2, "readings at the new interval")
        assert ("memexport_process_uss_bytes", ()) in samples(reg)
    finally:
        memexport.stop_collector()
    assert not c.running
    memexport.stop_collector()  # stopping twice is fine


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), "5", True])
def test_bad_interval_is_named(interval: object) -> None:
    with pytest.raises(ValueError, match=r"interval .*" + repr(interval).replace("(", r"\(")):
        memexport.start_collector(interval, registry=Registry())  # type: ignore[arg-type]


@pytest.mark.parametrize("top", [0, 101, 2.5, True, "10"])
def test_bad_tracemalloc_top_is_named(top: object) -> None:
    with pytest.raises(ValueError, match=r"tracemalloc_top .*" + repr(top)):
        memexport.start_collector(1.0, tracemalloc_top=top, registry=Registry())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tracemalloc_top"):
        ProcessCollector(Registry(), tracemalloc_top=top)  # type: ignore[arg-type]


def test_bad_flag_is_named() -> None:
    with pytest.raises(ValueError, match="uss must be True or False, got 'yes'"):
        memexport.start_collector(1.0, uss="yes", registry=Registry())  # type: ignore[arg-type]


# -- exposition ------------------------------------------------------------------------------


def test_exposition_passes_promtool(promtool_bin: str,
                                   collectors: list[ProcessCollector]) -> None:
    reg = Registry()
    c = ProcessCollector(reg, interval=3600, uss=True, tracemalloc=True)
    collectors.append(c.start())
    held = hog()
    gc.collect()
    c.tick()
    text = scrape(reg)
    for name in ("memexport_process_memory_limit_bytes", "memexport_system_memory_available_bytes",
                 "memexport_process_uss_bytes", "memexport_process_threads",
                 "memexport_gc_pause_seconds_bucket", "memexport_tracemalloc_traced_bytes",
                 "memexport_tracemalloc_peak_bytes", "memexport_tracemalloc_site_bytes",
                 "memexport_collector_duration_seconds", "memexport_collector_errors_total"):
        assert f"\n{name}{{" in text or f"\n{name} " in text, name
    del held
    result = subprocess.run([promtool_bin, "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "memexport_" in line]
    assert not problems, problems
    assert result.returncode == 0, result.stdout + result.stderr


def test_tick_is_thread_safe_with_the_running_thread(
        collectors: list[ProcessCollector]) -> None:
    reg = Registry()
    c = ProcessCollector(reg, interval=0.01)
    collectors.append(c.start())
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(50):
                c.tick()
                samples(reg)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert c.ticks >= 100
    assert reg.errors.counts()["process"] == 0


# -- adversarial: BaseException, fork mid-tick, silly intervals (issues 11 and 12) ------------


def test_system_exit_from_a_tick_job_is_counted_and_the_thread_lives(
        collectors: list[ProcessCollector], caplog: pytest.LogCaptureFixture) -> None:
    reg = Registry()
    calls: list[int] = []

    def job(deadline: float) -> None:  # user code sampled on the collector thread
        calls.append(1)
        raise SystemExit(3)

    reg.add_tick_job("sizer", job)
    c = ProcessCollector(reg, interval=0.01, ledger=False, cgroup=False)
    collectors.append(c.start())
    wait_for(lambda: len(calls) >= 5, "five ticks despite SystemExit")
    assert c.running
    assert reg.errors.counts()["sizer"] >= 5
    assert sum("SystemExit" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_keyboard_interrupt_from_a_probe_does_not_kill_the_thread(
        collectors: list[ProcessCollector]) -> None:
    calls: list[int] = []

    def probe() -> list[Family]:
        calls.append(1)
        raise KeyboardInterrupt

    reg = Registry()
    c = ProcessCollector(reg, interval=0.01, probes=[("kb", probe)], ledger=False, cgroup=False)
    collectors.append(c.start())
    wait_for(lambda: len(calls) >= 3, "three ticks despite KeyboardInterrupt")
    assert c.running
    assert reg.errors.counts()["process"] >= 2


@pytest.mark.parametrize("interval", [1e-9, 0.001, 0.009])
def test_an_interval_below_the_minimum_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match=r"at least 0\.01 seconds, got " + repr(interval)):
        memexport.start_collector(interval, registry=Registry())
    with pytest.raises(ValueError, match="at least"):
        ProcessCollector(Registry(), interval=interval)


def test_fork_hooks_come_from_core_forks() -> None:
    from memexport.core import forks
    from memexport.process import collector

    assert collector._after_fork_in_child in forks._child
    for path in (ROOT / "src" / "memexport" / "process").glob("*.py"):
        assert "register_at_fork" not in path.read_text(), path.name


def test_a_child_forked_while_user_code_runs_never_blocks(
        collectors: list[ProcessCollector]) -> None:
    """The collector thread is inside a tick job holding a lock at fork time: the child's
    collector must keep ticking (it skips user code), not hang on that lock forever."""
    reg = Registry()
    held = threading.Lock()
    inside = threading.Event()
    release = threading.Event()

    def job(deadline: float) -> None:
        with held:
            inside.set()
            release.wait(DEADLINE_S)

    reg.add_tick_job("sizer", job)
    c = ProcessCollector(reg, interval=0.02, ledger=False, cgroup=False)
    collectors.append(c.start())
    assert inside.wait(DEADLINE_S)
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            at_fork = c.ticks
            end = time.monotonic() + 10
            while c.ticks < at_fork + 3 and time.monotonic() < end:
                time.sleep(0.01)
            os.write(write_fd, json.dumps({"advanced": c.ticks >= at_fork + 3,
                                           "running": c.running}).encode())
            code = 0
        finally:
            os._exit(code)
    release.set()
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        report = json.loads(f.read() or b"{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {"advanced": True, "running": True}


# -- tracemalloc: grouped first, time-boxed ---------------------------------------------------


def test_tracemalloc_grouping_matches_filter_then_group(collectors: list[ProcessCollector]) -> None:
    from memexport.process.tracesites import EXCLUDED_FILES, TraceSites

    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start(1)
    try:
        held = hog()
        sites = TraceSites(10)
        reading = sites.read(60.0)
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, p) for p in EXCLUDED_FILES])
        old: dict[str, int] = {}
        for stat in snap.statistics("lineno"):
            frame = stat.traceback[0]
            key = f"{os.path.basename(frame.filename)}:{frame.lineno}"
            old[key] = old.get(key, 0) + stat.size
        assert reading is not None and reading.coverage == 1.0
        site = f"test_process.py:{HOG_LINE}"
        assert reading.sites[site] == old[site]
        top_new = sorted(reading.sites, key=lambda k: -reading.sites[k])[:3]
        top_old = sorted(old, key=lambda k: -old[k])[:3]
        assert top_new[0] == top_old[0] == site
        # A time box of zero groups one chunk and scales the rest up from it.
        cut = sites.read(0.0)
        assert cut is not None and 0 < cut.coverage <= 1.0
        del held
    finally:
        if not was:
            tracemalloc.stop()


def test_grouping_sums_sizes_per_line_and_splits_large_traces_at_512_bytes() -> None:
    from memexport.process.tracesites import group_traces

    a, b = ("a.py", 1), ("b.py", 2)
    traces = [(0, 100, (a,), 1), (0, 513, (a,), 1), (0, 512, (a, b), 2), (0, 4096, (b,), 1),
              (0, 8, (), 0), (0, 700, (b, a), 2)]
    by_frame, large, n_large, grouped = group_traces(traces, time.thread_time() + 60)
    assert by_frame == {a: 100 + 513 + 512, b: 4096 + 700, None: 8}
    assert (large, n_large, grouped) == (513 + 4096 + 700, 3, 6)


def test_grouping_over_several_chunks_adds_up_every_chunk() -> None:
    from memexport.process.tracesites import _CHUNK, group_traces

    site = ("x.py", 1)
    traces = [(0, 32 if i % 2 else 1000, (site,), 1) for i in range(2 * _CHUNK + 1)]
    n_big = (len(traces) + 1) // 2
    by_frame, large, n_large, grouped = group_traces(traces, time.thread_time() + 60)
    assert grouped == len(traces)
    assert (large, n_large) == (1000 * n_big, n_big)
    assert by_frame == {site: 1000 * n_big + 32 * (len(traces) - n_big)}


def test_the_grouping_time_box_is_the_collector_threads_cpu_time() -> None:
    from memexport.process.tracesites import _CHUNK, group_traces

    site = ("x.py", 1)
    traces = [(0, 32, (site,), 1)] * (2 * _CHUNK + 1)
    # A deadline in thread CPU seconds: a minute ahead groups everything (a wall-clock
    # reading, far larger, would be past it); one already passed stops after a chunk.
    whole = group_traces(traces, time.thread_time() + 60)
    assert whole[3] == len(traces) and whole[0] == {site: 32 * len(traces)}
    cut = group_traces(traces, time.thread_time() - 1)
    assert cut[3] == _CHUNK and cut[0] == {site: 32 * _CHUNK}


def test_growing_allocation_sites_become_suspects(collectors: list[ProcessCollector]) -> None:
    reg = Registry()
    c = ProcessCollector(reg, interval=3600, tracemalloc=True, ledger=False, cgroup=False)
    collectors.append(c.start())
    leak: list[bytearray] = []
    suspects: dict[str, float] = {}
    for _ in range(5):
        leak.extend(bytearray(10_000) for _ in range(100))  # 1 MB more per window
        c.tick()
        suspects = {dict(labels)["site"]: v
                    for labels, v in named(samples(reg),
                                           "memexport_tracemalloc_site_growth_bytes").items()}
    line = test_growing_allocation_sites_become_suspects.__code__.co_firstlineno + 7
    assert suspects.get(f"test_process.py:{line}", 0) >= 3_000_000, suspects
    assert "__overflow__" in suspects
