"""Process-memory collector thread: one reading at start, then every ``interval`` seconds.

It replaces the guide's ``MemoryMonitor`` (RSS against 80 % of a host total),
``AutomaticMemoryManager`` statistics and ``MemoryProfiler``: every scrape serves the latest
reading (``registry.add_source("process", collector.families)``), so a scrape never waits on a
probe. Each probe lives in its own module of this package (``limits``, ``reader``,
``gcpause``, ``tracesites``, ``cgroup``, ``allocator``, ``ledger``); this module
times them (``memexport_collector_duration_seconds{collector}``), counts their failures
(``memexport_collector_errors_total{collector}``) and skips them: a series that cannot be
read is absent, never a made-up value, and nothing here raises into the application.

The thread survives anything a tick raises, ``SystemExit`` from user code sampled in a tick
job included (counted, logged once). Fork hooks (``core/forks``) re-create its state in a
forked child without waiting on anything; a child forked while the thread was running user
code (tick jobs, component readers) skips that code from then on, as its locks may be held
by a thread that no longer exists.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import tracemalloc as _tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import psutil

from memexport.core import forks
from memexport.core.model import Family
from memexport.core.registry import REGISTRY, Registry
from memexport.process import cgroup as cgroup_files
from memexport.process import ledger as rss_ledger
from memexport.process.gcpause import GC_PAUSE_BUCKETS, GCPauses
from memexport.process.ledger import Ledger
from memexport.process.limits import (
    DEFAULT_CGROUP_ROOT,
    DEFAULT_PROC_ROOT,
    LIMIT_SOURCES,
    detect_memory_limit,
)
from memexport.process.reader import ProcessReader
from memexport.process.tracesites import TraceReading, TraceSites

__all__ = [
    "DEFAULT_INTERVAL",
    "GC_PAUSE_BUCKETS",
    "LIMIT_SOURCES",
    "MIN_INTERVAL",
    "ProcessCollector",
    "ProcessReading",
    "detect_memory_limit",
    "start_collector",
    "stop_collector",
]

#: Names of the metrics this module exports (the shipped dashboards read them).
AVAILABLE_BYTES = "memexport_system_memory_available_bytes"
THREADS = "memexport_process_threads"
LIMIT_BYTES = "memexport_process_memory_limit_bytes"
USS_BYTES = "memexport_process_uss_bytes"

DEFAULT_INTERVAL = 15.0
#: The shortest interval accepted: shorter would keep a core busy reading /proc.
MIN_INTERVAL = 0.01
#: CPU seconds (of the collector thread) the grouping of one tick's tracemalloc traces may
#: take before it samples (see tracesites); tracemalloc's own copy of the traces comes first.
TRACEMALLOC_BUDGET = 0.5
#: Time the ledger's component readings may take per tick.
LEDGER_BUDGET = 0.05
_EXIT_JOIN_TIMEOUT = 1.0
_CHILD_FIRST_TICK = 0.1  # a forked child's first reading waits this long (or the interval)

T = TypeVar("T")
#: An extra probe: (collector name, function returning families). Runs on each tick, timed.
Probe = tuple[str, Callable[[], Iterable[Family]]]


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
    ledger: Ledger | None = None


def _check_interval(interval: object) -> float:
    if (isinstance(interval, bool) or not isinstance(interval, (int, float))
            or not math.isfinite(interval) or interval <= 0):
        raise ValueError(f"interval must be a positive finite number of seconds, got {interval!r}")
    if interval < MIN_INTERVAL:
        raise ValueError(f"interval must be at least {MIN_INTERVAL} seconds, got {interval!r}")
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


class ProcessCollector:
    """Reads process memory on its own daemon thread; scrapes serve the latest reading.

    Created on a registry, it serves that registry's ``process`` source (``tick()`` alone
    publishes a reading, which the benchmark uses); ``stop()`` withdraws the readings.

    ``cgroup_root`` and ``proc_root`` point the cgroup lookups elsewhere (tests feed fixture
    trees); ``probes`` adds ``(collector, fn)`` pairs whose families join each reading.
    ``ledger`` (on) adds the RSS ledger and ``cgroup`` (on) the cgroup forensics.
    """

    def __init__(
        self,
        registry: Registry = REGISTRY,
        *,
        interval: float = DEFAULT_INTERVAL,
        uss: bool = False,
        tracemalloc: bool = False,
        tracemalloc_top: int = 10,
        ledger: bool = True,
        cgroup: bool = True,
        cgroup_root: str = DEFAULT_CGROUP_ROOT,
        proc_root: str = DEFAULT_PROC_ROOT,
        probes: Sequence[Probe] = (),
    ) -> None:
        self.registry = registry
        self._interval = _check_interval(interval)
        self._uss = _check_flag("uss", uss)
        self._tracemalloc = _check_flag("tracemalloc", tracemalloc)
        self._top = _check_top(tracemalloc_top)
        self._ledger = _check_flag("ledger", ledger)
        self._cgroup = _check_flag("cgroup", cgroup)
        self.cgroup_root = str(cgroup_root)
        self.proc_root = str(proc_root)
        self._probes = tuple(probes)
        self._reader = ProcessReader()
        self._tick_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._families: list[Family] = []
        self._ticks = 0
        self.latest: ProcessReading | None = None
        self._started_tracemalloc = False
        self._gc = GCPauses()
        self._sites = TraceSites(self._top)
        self._in_user_code = False  # running tick jobs or component readers now
        self._user_code_off = False  # a child forked while user code ran: never again
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
        self._interval, self._uss = new_interval, new_uss
        if new_top != self._top:
            self._top = new_top
            self._sites = TraceSites(new_top)
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
            self._gc.install()
            self._apply_tracemalloc()
            self.registry.add_source("process", self.families)  # this one serves, again
            self._spawn(0.0)
        with _running_lock:
            _running.add(self)
        return self

    def _spawn(self, first_delay: float) -> None:
        self._stop_event = stop = threading.Event()
        self._wake = wake = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop, wake, first_delay),
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
            self._gc.remove()
            if self._started_tracemalloc:
                self._started_tracemalloc = False
                _tracemalloc.stop()
            self._families = []

    def _run(self, stop: threading.Event, wake: threading.Event, first_delay: float) -> None:
        if first_delay:
            wake.wait(first_delay)
            wake.clear()
        while not stop.is_set():
            try:
                self.tick()
            except BaseException as exc:  # SystemExit raised by user code, too
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
        for on, name in ((self._uss, "uss"), (self._tracemalloc, "tracemalloc"),
                         (self._ledger, "ledger"), (self._cgroup, "cgroup")):
            if on:
                names.append(name)
        for name in names:
            self.registry.errors.declare(name)

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

    def _timed(self, collector: str, source: str, fn: Callable[[], T]) -> T | None:
        t0 = time.perf_counter()
        try:
            return self._read(collector, source, fn)
        finally:
            self.registry.record_duration(collector, time.perf_counter() - t0)

    def tick(self) -> ProcessReading:
        """Take one reading now (the thread calls this every ``interval`` seconds)."""
        with self._tick_lock:
            start = time.perf_counter()
            proc = self._reader
            vm = self._read("process", "psutil.virtual_memory()", psutil.virtual_memory)
            rss = self._read("process", "psutil memory_info().rss", proc.rss)
            threads = self._read("process", "psutil num_threads()", proc.threads)
            available = int(vm.available) if vm is not None else None
            fams = _gauge(AVAILABLE_BYTES,
                          "Memory available to new allocations on the host without swapping "
                          "(psutil.virtual_memory().available).", "bytes", available)
            fams += _gauge(THREADS,
                           "OS threads of this process (psutil num_threads).", "", threads)

            total = int(vm.total) if vm is not None else None
            limit = self._timed("memory_limit", "memory limit (cgroup, RLIMIT_AS, physical)",
                                lambda: detect_memory_limit(self.cgroup_root, self.proc_root,
                                                            total))
            if limit is not None:
                fams += _gauge(LIMIT_BYTES,
                               "Effective memory limit of this process; source is cgroup_v2, "
                               "cgroup_v1, rlimit_as or physical.", "bytes", limit[0],
                               {"source": limit[1]})

            uss = None
            if self._uss:
                uss = self._timed("uss", "psutil memory_full_info().uss", proc.uss)
                fams += _gauge(USS_BYTES,
                               "Unique set size: memory freed if this process exited.",
                               "bytes", uss)

            traced: TraceReading | None = None
            if self._tracemalloc:
                sites = self._sites
                traced = self._timed("tracemalloc", "tracemalloc snapshot",
                                     lambda: sites.read(TRACEMALLOC_BUDGET))
                if traced is not None:
                    fams += sites.families(traced)

            if self._cgroup:
                cg = self._timed("cgroup", "cgroup memory files",
                                 lambda: cgroup_files.read_cgroup(self.cgroup_root, self.proc_root))
                if cg is not None:
                    fams += cgroup_files.families(cg)

            book = None
            if self._ledger:
                book = self._timed("ledger", "RSS ledger", lambda: self._build_ledger(traced))
                if book is not None:
                    fams += rss_ledger.families(book)

            for name, probe in self._probes:
                extra = self._timed(name, f"probe {name}", _listing(probe))
                if extra:
                    fams += extra

            reading = ProcessReading(
                timestamp=time.time(), pid=proc.pid, rss_bytes=rss,
                limit_bytes=limit[0] if limit else None,
                limit_source=limit[1] if limit else None,
                available_bytes=available, threads=threads, uss_bytes=uss,
                traced_bytes=traced.traced if traced is not None else None, ledger=book)
            self._families = fams
            self.latest = reading
            self._ticks += 1
            self.registry.record_duration("process", time.perf_counter() - start)
            # Expensive sampling of components (deep sizes) runs here, off the app's threads.
            if not self._user_code_off:
                self._in_user_code = True
                try:
                    self.registry.run_tick_jobs()
                finally:
                    self._in_user_code = False
            return reading

    def _build_ledger(self, traced: TraceReading | None) -> Ledger:
        skip = self._user_code_off
        if not skip:
            self._in_user_code = True
        try:
            return rss_ledger.read_ledger(self.registry, self._reader, traced,
                                          components=not skip, budget_seconds=LEDGER_BUDGET)
        finally:
            self._in_user_code = False

    def families(self) -> list[Family]:
        """The latest reading as families, plus the GC pause histogram (read live, cheap)."""
        return [*self._families, *self._gc.families()]

    # -- fork --------------------------------------------------------------------------

    def _after_fork_in_child(self, was_running: bool) -> None:
        if self._in_user_code:  # its locks may be held by a thread that is gone
            self._user_code_off = True
            self._in_user_code = False
            self._record("process", "user code skipped in a child forked while it ran",
                         RuntimeError("forked during a tick"))
        self._tick_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._reader = ProcessReader()  # the child's pid
        self._thread = None
        if was_running:
            self._spawn(min(self._interval, _CHILD_FIRST_TICK))


def _listing(probe: Callable[[], Iterable[Family]]) -> Callable[[], list[Family]]:
    return lambda: list(probe())


# -- the process-wide collector ----------------------------------------------------------

_lock = threading.Lock()
_collector: ProcessCollector | None = None
_running_lock = threading.Lock()
_running: set[ProcessCollector] = set()


def start_collector(
    interval: float | None = None,
    *,
    uss: bool | None = None,
    tracemalloc: bool | None = None,
    tracemalloc_top: int | None = None,
    registry: Registry = REGISTRY,
) -> ProcessCollector:
    """Start the process collector thread (or update the running one) and return it.

    ``interval`` is at least ``MIN_INTERVAL`` (0.01 s). ``uss=True`` adds
    ``memexport_process_uss_bytes`` (reads smaps: costly); ``tracemalloc=True`` traces
    allocations (1 frame, if memexport starts tracemalloc) and exports the top
    ``tracemalloc_top`` sites and the growing ones. ``None`` keeps the running collector's
    setting (15 s, off, off, 10 for a new one), so ``start_http_server()`` does not undo them.
    """
    global _collector
    if interval is not None:
        interval = _check_interval(interval)
    for name, flag in (("uss", uss), ("tracemalloc", tracemalloc)):
        if flag is not None:
            _check_flag(name, flag)
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


def _running_now() -> list[ProcessCollector]:
    for _ in range(10):  # no lock: one held by another thread at fork must not block us
        try:
            return list(_running)
        except RuntimeError:
            continue
    return []


@forks.after_fork_in_child
def _after_fork_in_child() -> None:
    global _lock, _running_lock
    _lock = threading.Lock()
    _running_lock = threading.Lock()
    for c in _running_now():
        try:
            c._after_fork_in_child(was_running=True)
        except Exception:  # pragma: no cover - never break the child
            pass


def _stop_all_at_exit() -> None:
    for c in _running_now():
        try:
            c.stop(timeout=_EXIT_JOIN_TIMEOUT)
        except Exception:  # pragma: no cover
            pass


atexit.register(_stop_all_at_exit)
