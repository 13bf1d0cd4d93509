"""Process-memory collector thread: memory limit, available memory, threads, GC pauses, tracemalloc.

It replaces the guide's ``MemoryMonitor`` (RSS against 80 % of a host total),
``AutomaticMemoryManager`` statistics and ``MemoryProfiler``: a daemon thread takes one reading
at start and then every ``interval`` seconds, and every scrape serves the latest reading
(``registry.add_source("process", collector.families)``), so a scrape never waits on a probe.
prometheus_client's own ``process_*`` and ``python_gc_*`` series are kept, not duplicated.

Every probe is timed (``memexport_collector_duration_seconds{collector}``) and every failure
counted (``memexport_collector_errors_total{collector}``) and skipped: a series that cannot be
read is absent, never a made-up value, and nothing here raises into the application. The
thread is restarted in a forked child (pre-fork servers) and stopped cleanly at exit.
"""

from __future__ import annotations

import atexit
import gc
import math
import os
import threading
import time
import tracemalloc as _tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil

from memexport.core.counters import Histogram
from memexport.core.model import Family
from memexport.core.registry import REGISTRY, Registry

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "GC_PAUSE_BUCKETS",
    "LIMIT_SOURCES",
    "ProcessCollector",
    "ProcessReading",
    "detect_memory_limit",
    "start_collector",
    "stop_collector",
]

#: Histogram bounds for GC pauses: young collections take microseconds, full ones up to seconds.
GC_PAUSE_BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)
#: Values of the ``source`` label of ``memexport_process_memory_limit_bytes``, in lookup order.
LIMIT_SOURCES = ("cgroup_v2", "cgroup_v1", "rlimit_as", "physical")

DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PROC_ROOT = "/proc"
_V1_UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as ~2**63 rounded down to a page
_GENERATIONS = ("0", "1", "2")
_OWN_DIR = os.path.dirname(os.path.abspath(__file__))
_FORK_LOCK_TIMEOUT = 1.0
DEFAULT_INTERVAL = 15.0
_EXIT_JOIN_TIMEOUT = 1.0

T = TypeVar("T")
#: An extra probe: (collector name, function returning families). Runs on each tick, timed.
Probe = tuple[str, Callable[[], Iterable[Family]]]


# -- memory limit ------------------------------------------------------------------------


def _cgroup_paths(proc_root: str) -> tuple[str | None, str | None]:
    """The process's cgroup v2 path and cgroup v1 memory-controller path, from /proc."""
    try:
        with open(os.path.join(proc_root, "self", "cgroup")) as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None, None  # not Linux, or /proc not mounted
    v2 = v1 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _levels(mount: str, cgroup_path: str) -> list[str]:
    """The cgroup's directory under ``mount`` and its ancestors up to the mount itself.

    Without a cgroup namespace a container sees the host's path in /proc/self/cgroup but has
    its own cgroup mounted at the root: when the path is not there, only the root is read.
    """
    parts = [p for p in cgroup_path.split("/") if p and p != "."]
    if ".." in parts or not os.path.isdir(os.path.join(mount, *parts)):
        parts = []
    return [os.path.join(mount, *parts[:i]) for i in range(len(parts), -1, -1)]


def _lowest(dirs: list[str], filename: str, parse: Callable[[str], int | None]) -> int | None:
    """The lowest limit set in ``filename`` over ``dirs`` (a parent's limit binds its children)."""
    best: int | None = None
    for d in dirs:
        try:
            with open(os.path.join(d, filename)) as f:
                text = f.read()
        except (FileNotFoundError, NotADirectoryError):
            continue
        value = parse(text.strip())
        if value is not None and (best is None or value < best):
            best = value
    return best


def _parse_v2(text: str) -> int | None:
    if text == "max":
        return None
    return int(text)


def _parse_v1(text: str) -> int | None:
    value = int(text)
    return None if value >= _V1_UNLIMITED or value < 0 else value


def detect_memory_limit(
    cgroup_root: str = DEFAULT_CGROUP_ROOT,
    proc_root: str = DEFAULT_PROC_ROOT,
    total_memory: int | None = None,
) -> tuple[int, str]:
    """The effective memory limit of this process and where it comes from.

    Looks up, in order: cgroup v2 ``memory.max``, cgroup v1 ``memory.limit_in_bytes`` (the
    lowest over the cgroup and its ancestors), ``RLIMIT_AS``, else physical memory
    (``total_memory`` if given, else ``psutil.virtual_memory().total``). Missing files fall
    through; an unreadable or garbled one raises, so the caller can leave the limit absent
    rather than report a wrong one.
    """
    v2_path, v1_path = _cgroup_paths(proc_root)
    if v2_path is not None:
        limit = _lowest(_levels(cgroup_root, v2_path), "memory.max", _parse_v2)
        if limit is not None:
            return limit, "cgroup_v2"
    if v1_path is not None:
        mount = os.path.join(cgroup_root, "memory")
        limit = _lowest(_levels(mount, v1_path), "memory.limit_in_bytes", _parse_v1)
        if limit is not None:
            return limit, "cgroup_v1"
    if resource is not None:
        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            return int(soft), "rlimit_as"
    if total_memory is None:
        total_memory = int(psutil.virtual_memory().total)
    return total_memory, "physical"


# -- readings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessReading:
    """The latest reading of the collector (``None`` fields could not be read)."""

    timestamp: float  # time.time() when the reading was taken
    pid: int
    rss_bytes: int | None
    limit_bytes: int | None
    limit_source: str | None
    available_bytes: int | None
    threads: int | None
    uss_bytes: int | None = None
    traced_bytes: int | None = None


def _check_interval(interval: object) -> float:
    if (isinstance(interval, bool) or not isinstance(interval, (int, float))
            or not math.isfinite(interval) or interval <= 0):
        raise ValueError(f"interval must be a positive finite number of seconds, got {interval!r}")
    return float(interval)


def _check_top(top: object) -> int:
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
        raise ValueError(f"tracemalloc_top must be an int from 1 to 100, got {top!r}")
    return top


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _gauge(name: str, help: str, unit: str, value: float | None,
           labels: dict[str, str] | None = None) -> list[Family]:
    if value is None:
        return []
    return [Family(name, "gauge", help, unit, [(labels or {}, float(value))])]


_TRACE_FILTERS = (
    _tracemalloc.Filter(False, _tracemalloc.__file__),
    _tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    _tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    _tracemalloc.Filter(False, "<unknown>"),
    _tracemalloc.Filter(False, os.path.join(_OWN_DIR, "*")),
)


class ProcessCollector:
    """Reads process memory on its own daemon thread; scrapes serve the latest reading.

    Created on a registry, it serves that registry's ``process`` source (``tick()`` alone
    publishes a reading, which the benchmark uses); ``stop()`` withdraws the readings.

    ``cgroup_root`` and ``proc_root`` point the memory-limit lookup elsewhere (tests feed it
    files); ``probes`` adds ``(collector, fn)`` pairs whose families join each reading.
    """

    def __init__(
        self,
        registry: Registry = REGISTRY,
        *,
        interval: float = DEFAULT_INTERVAL,
        uss: bool = False,
        tracemalloc: bool = False,
        tracemalloc_top: int = 10,
        cgroup_root: str = DEFAULT_CGROUP_ROOT,
        proc_root: str = DEFAULT_PROC_ROOT,
        probes: Sequence[Probe] = (),
    ) -> None:
        self.registry = registry
        self._interval = _check_interval(interval)
        self._uss = _check_flag("uss", uss)
        self._tracemalloc = _check_flag("tracemalloc", tracemalloc)
        self._top = _check_top(tracemalloc_top)
        self.cgroup_root = os.fspath(cgroup_root)
        self.proc_root = os.fspath(proc_root)
        self._probes = tuple(probes)
        self._proc = psutil.Process()
        self._tick_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._families: list[Family] = []
        self._ticks = 0
        self.latest: ProcessReading | None = None
        self._started_tracemalloc = False
        self._gc_hists = {g: Histogram(GC_PAUSE_BUCKETS) for g in _GENERATIONS}
        self._gc_t0 = 0.0
        self._gc_installed = False
        self._declare()
        registry.add_source("process", self.families)

    # -- settings and lifecycle --------------------------------------------------------

    @property
    def ticks(self) -> int:
        """Readings taken so far."""
        return self._ticks

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def configure(self, *, interval: float | None = None, uss: bool | None = None,
                  tracemalloc: bool | None = None, tracemalloc_top: int | None = None) -> None:
        """Change settings (``None`` keeps one); a running thread takes a reading at once."""
        new_interval = self._interval if interval is None else _check_interval(interval)
        new_uss = self._uss if uss is None else _check_flag("uss", uss)
        new_tm = self._tracemalloc if tracemalloc is None else _check_flag(
            "tracemalloc", tracemalloc)
        new_top = self._top if tracemalloc_top is None else _check_top(tracemalloc_top)
        changed = (new_interval, new_uss, new_tm, new_top) != (
            self._interval, self._uss, self._tracemalloc, self._top)
        self._interval, self._uss, self._top = new_interval, new_uss, new_top
        self._tracemalloc = new_tm
        self._declare()
        if self.running:
            self._apply_tracemalloc()
            if changed:
                self._wake.set()

    def start(self) -> ProcessCollector:
        """Start the thread (no-op when running) and serve its readings from the registry."""
        with self._state_lock:
            if self.running:
                return self
            self._install_gc()
            self._apply_tracemalloc()
            self.registry.add_source("process", self.families)  # this one serves, again
            self._spawn()
        with _running_lock:
            _running.add(self)
        return self

    def _spawn(self) -> None:
        self._stop_event = stop = threading.Event()
        self._wake = wake = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop, wake),
                                  name="memexport-process-collector", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread, remove the GC callback; the readings leave the next scrape."""
        with _running_lock:
            _running.discard(self)
        with self._state_lock:
            thread = self._thread
            self._thread = None
            self._stop_event.set()
            self._wake.set()
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
            self._remove_gc()
            if self._started_tracemalloc:
                self._started_tracemalloc = False
                _tracemalloc.stop()
            self._families = []

    def _run(self, stop: threading.Event, wake: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # tick guards each probe; this is the last resort
                self._record("process", "process collector tick", exc)
            wake.wait(self._interval)
            wake.clear()

    def _apply_tracemalloc(self) -> None:
        if self._tracemalloc and not _tracemalloc.is_tracing():
            _tracemalloc.start(1)
            self._started_tracemalloc = True
        elif not self._tracemalloc and self._started_tracemalloc:
            self._started_tracemalloc = False
            _tracemalloc.stop()
        self._declare()

    def _declare(self) -> None:
        """Show 0 errors for each probe that runs, so rate() works from the first failure."""
        names = ["process", "memory_limit", *(name for name, _fn in self._probes)]
        if self._uss:
            names.append("uss")
        if self._tracemalloc:
            names.append("tracemalloc")
        for name in names:
            self.registry.errors.declare(name)

    # -- GC pauses ---------------------------------------------------------------------

    def _install_gc(self) -> None:
        if not self._gc_installed:
            gc.callbacks.append(self._on_gc)
            self._gc_installed = True

    def _remove_gc(self) -> None:
        if self._gc_installed:
            self._gc_installed = False
            try:
                gc.callbacks.remove(self._on_gc)
            except ValueError:
                pass

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: time each collection. Lock-free, and never raises."""
        try:
            if phase == "start":
                self._gc_t0 = time.perf_counter()
            elif self._gc_t0:
                elapsed = time.perf_counter() - self._gc_t0
                self._gc_t0 = 0.0
                hist = self._gc_hists.get(str(info.get("generation")))
                if hist is not None:
                    hist.observe(elapsed)
        except Exception:  # pragma: no cover - a GC callback must not raise
            pass

    # -- readings ----------------------------------------------------------------------

    def _record(self, collector: str, source: str, exc: BaseException) -> None:
        try:
            self.registry.errors.record(collector, source, exc)
        except Exception:  # pragma: no cover - counting must not stop the thread
            pass

    def _read(self, collector: str, source: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except Exception as exc:
            self._record(collector, source, exc)
            return None

    def tick(self) -> ProcessReading:
        """Take one reading now (the thread calls this every ``interval`` seconds)."""
        with self._tick_lock:
            start = time.perf_counter()
            proc = self._proc
            vm = self._read("process", "psutil.virtual_memory()", psutil.virtual_memory)
            rss = self._read("process", "psutil memory_info().rss",
                             lambda: int(proc.memory_info().rss))
            threads = self._read("process", "psutil num_threads()", proc.num_threads)
            available = int(vm.available) if vm is not None else None
            fams = _gauge("memexport_system_memory_available_bytes",
                          "Memory available to new allocations on the host without swapping "
                          "(psutil.virtual_memory().available).", "bytes", available)
            fams += _gauge("memexport_process_threads",
                           "OS threads of this process (psutil num_threads).", "", threads)

            t0 = time.perf_counter()
            total = int(vm.total) if vm is not None else None
            limit = self._read("memory_limit", "memory limit (cgroup, RLIMIT_AS, physical)",
                               lambda: detect_memory_limit(self.cgroup_root, self.proc_root,
                                                           total))
            self.registry.record_duration("memory_limit", time.perf_counter() - t0)
            if limit is not None:
                fams += _gauge("memexport_process_memory_limit_bytes",
                               "Effective memory limit of this process; source is cgroup_v2, "
                               "cgroup_v1, rlimit_as or physical.", "bytes", limit[0],
                               {"source": limit[1]})

            uss = None
            if self._uss:
                t0 = time.perf_counter()
                uss = self._read("uss", "psutil memory_full_info().uss",
                                 lambda: int(proc.memory_full_info().uss))
                self.registry.record_duration("uss", time.perf_counter() - t0)
                fams += _gauge("memexport_process_uss_bytes",
                               "Unique set size: memory freed if this process exited.",
                               "bytes", uss)

            traced = None
            if self._tracemalloc:
                t0 = time.perf_counter()
                tm = self._read("tracemalloc", "tracemalloc snapshot", self._trace)
                self.registry.record_duration("tracemalloc", time.perf_counter() - t0)
                if tm is not None:
                    traced, tm_fams = tm
                    fams += tm_fams

            for name, probe in self._probes:
                t0 = time.perf_counter()
                extra = self._read(name, f"probe {name}", lambda p=probe: list(p()))
                self.registry.record_duration(name, time.perf_counter() - t0)
                if extra:
                    fams += extra

            reading = ProcessReading(
                timestamp=time.time(), pid=proc.pid, rss_bytes=rss,
                limit_bytes=limit[0] if limit else None,
                limit_source=limit[1] if limit else None,
                available_bytes=available, threads=threads, uss_bytes=uss,
                traced_bytes=traced)
            self._families = fams
            self.latest = reading
            self._ticks += 1
            self.registry.record_duration("process", time.perf_counter() - start)
            # Expensive sampling of components (deep sizes) runs here, off the app's threads.
            self.registry.run_tick_jobs()
            return reading

    def _trace(self) -> tuple[int, list[Family]] | None:
        """Traced/peak bytes and the top allocation sites (``file.py:line``)."""
        if not _tracemalloc.is_tracing():
            return None  # turned off by someone else: the series are absent
        current, peak = _tracemalloc.get_traced_memory()
        snapshot = _tracemalloc.take_snapshot().filter_traces(_TRACE_FILTERS)
        by_site: dict[str, int] = {}
        for stat in snapshot.statistics("lineno"):
            frame = stat.traceback[0]
            site = f"{os.path.basename(frame.filename)}:{frame.lineno}"
            by_site[site] = by_site.get(site, 0) + stat.size  # same basename, same line
        del snapshot
        top = sorted(by_site.items(), key=lambda kv: (-kv[1], kv[0]))[: self._top]
        sites = Family("memexport_tracemalloc_site_bytes", "gauge",
                       "Bytes traced by tracemalloc per allocation site (top N by size).",
                       "bytes", [({"site": s}, float(n)) for s, n in top])
        fams = _gauge("memexport_tracemalloc_traced_bytes",
                      "Bytes currently allocated by Python and traced by tracemalloc.",
                      "bytes", current)
        fams += _gauge("memexport_tracemalloc_peak_bytes",
                       "Peak of traced bytes since tracemalloc started.", "bytes", peak)
        fams.append(sites)
        return current, fams

    def families(self) -> list[Family]:
        """The latest reading as families, plus the GC pause histogram (read live, cheap)."""
        out = list(self._families)
        if self._gc_installed:
            hist = Family("memexport_gc_pause_seconds", "histogram",
                          "Time each garbage collection took, by generation.", "seconds")
            for gen, h in self._gc_hists.items():
                hist.add({"generation": gen}, h.value())
            out.append(hist)
        return out

    # -- fork --------------------------------------------------------------------------

    def _after_fork_in_child(self, was_running: bool) -> None:
        self._tick_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._proc = psutil.Process()  # the child's pid
        self._thread = None
        if was_running:
            self._spawn()


# -- the process-wide collector ----------------------------------------------------------

_lock = threading.Lock()
_collector: ProcessCollector | None = None
_running_lock = threading.Lock()
_running: set[ProcessCollector] = set()
_held_at_fork: list[ProcessCollector] = []


def start_collector(
    interval: float | None = None,
    *,
    uss: bool | None = None,
    tracemalloc: bool | None = None,
    tracemalloc_top: int | None = None,
    registry: Registry = REGISTRY,
) -> ProcessCollector:
    """Start the process collector thread (or update the running one) and return it.

    ``uss=True`` adds ``memexport_process_uss_bytes`` (reads smaps: costly);
    ``tracemalloc=True`` traces allocations (1 frame, if memexport starts tracemalloc) and
    exports the top ``tracemalloc_top`` sites. ``None`` keeps the running collector's setting
    (15 s, off, off and 10 sites for a new one), so ``start_http_server()`` does not undo
    them.
    """
    global _collector
    if interval is not None:
        interval = _check_interval(interval)
    if uss is not None:
        _check_flag("uss", uss)
    if tracemalloc is not None:
        _check_flag("tracemalloc", tracemalloc)
    if tracemalloc_top is not None:
        _check_top(tracemalloc_top)
    with _lock:
        collector = _collector
        if collector is not None and collector.registry is not registry:
            collector.stop()
            collector = None
        if collector is None:
            collector = _collector = ProcessCollector(
                registry, interval=DEFAULT_INTERVAL if interval is None else interval,
                uss=bool(uss), tracemalloc=bool(tracemalloc),
                tracemalloc_top=10 if tracemalloc_top is None else tracemalloc_top)
        else:
            collector.configure(interval=interval, uss=uss, tracemalloc=tracemalloc,
                                tracemalloc_top=tracemalloc_top)
        return collector.start()


def stop_collector() -> None:
    """Stop the process collector thread started by ``start_collector`` (no-op if none)."""
    with _lock:
        collector = _collector
    if collector is not None:
        collector.stop()


def _before_fork() -> None:
    # Fork between ticks, so the child never inherits a lock a half-done tick held.
    with _running_lock:
        running = list(_running)
    for c in running:
        if c._tick_lock.acquire(timeout=_FORK_LOCK_TIMEOUT):
            _held_at_fork.append(c)


def _after_fork_in_parent() -> None:
    while _held_at_fork:
        _held_at_fork.pop()._tick_lock.release()


def _after_fork_in_child() -> None:
    global _lock, _running_lock
    try:
        _held_at_fork.clear()
        _lock = threading.Lock()
        _running_lock = threading.Lock()
        for c in list(_running):
            c._after_fork_in_child(was_running=True)
    except Exception:  # pragma: no cover - never break the child
        pass


def _stop_all_at_exit() -> None:
    with _running_lock:
        running = list(_running)
    for c in running:
        try:
            c.stop(timeout=_EXIT_JOIN_TIMEOUT)
        except Exception:  # pragma: no cover
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
atexit.register(_stop_all_at_exit)
