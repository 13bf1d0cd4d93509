"""Pre-fork servers (gunicorn, uvicorn workers): every worker's metrics through one ``/metrics``.

A custom collector only sees the process that answers the scrape, so in a pre-fork server
memexport uses prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): the
process-collector thread of each worker writes memexport's families -- and the standard
``process_*``/``python_gc_*`` series, which prometheus_client's own collectors cannot serve in
that mode -- into the per-process files, and ``/metrics`` merges the files of all workers.

How each family is merged:

* component gauges of a kind: summed over the live workers (``livesum``; ``livemax`` for the
  gauges a kind aggregates with ``max``), with the same labels as in one process -- a cache
  named ``llm`` in 4 workers is one group of 4 members. A gauge whose members are all gone
  reads 0 (the files cannot delete a series). Kind budgets are summed the same way, so they
  stay comparable with the usage they bound.
* process-level gauges (``process_resident_memory_bytes``, ``memexport_process_*``,
  ``memexport_gc_*``, collector health): one series per live worker, labelled ``pid``
  (``liveall``); a dead worker's series leave with ``mark_process_dead``.
* counters and histograms: summed over every worker that ever ran since the server started,
  so they never go backwards when a worker is replaced (a dead worker's counts stay in its
  file).

gunicorn, one line in ``gunicorn.conf.py``::

    from memexport.exporters.multiprocess import child_exit, on_starting, post_fork  # noqa: F401

and in the app ``metrics = memexport.exporters.multiprocess.make_wsgi_app()`` (or
``make_asgi_app()``) mounted at ``/metrics``. ``PROMETHEUS_MULTIPROC_DIR`` should name an
empty directory in the server's environment (``on_starting`` creates one if it is unset and
wipes stale files).
``MEMEXPORT_COLLECTOR_INTERVAL`` sets how often each worker writes (seconds, default 5).
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any

import prometheus_client
from prometheus_client import values as prom_values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from memexport.core.counters import HistogramValue
from memexport.core.forks import after_fork_in_child
from memexport.core.model import Family
from memexport.core.registry import REGISTRY, Registry

__all__ = [
    "DEFAULT_INTERVAL",
    "MultiprocessWriter",
    "child_exit",
    "cleanup_dead_workers",
    "make_asgi_app",
    "make_wsgi_app",
    "multiproc_dir",
    "on_starting",
    "post_fork",
    "start_worker",
]

log = logging.getLogger("memexport")

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
ENV_INTERVAL = "MEMEXPORT_COLLECTOR_INTERVAL"
DEFAULT_INTERVAL = 5.0
COLLECTOR = "multiprocess"

_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")

ValueKey = tuple[str, str, str, str, tuple[tuple[str, str], ...]]


def multiproc_dir() -> str:
    """The multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``); ValueError if unusable."""
    path = os.environ.get(ENV_DIR) or os.environ.get(ENV_DIR.lower())
    if not path:
        raise ValueError(f"{ENV_DIR} is not set: point it at an empty directory writable by "
                         f"every worker (memexport.exporters.multiprocess.on_starting creates one)")
    if not os.path.isdir(path):
        raise ValueError(f"{ENV_DIR}={path!r} is not a directory")
    return path


def _interval_from_env(interval: float | None) -> float:
    if interval is None:
        raw = os.environ.get(ENV_INTERVAL)
        if not raw:
            return DEFAULT_INTERVAL
        try:
            interval = float(raw)
        except ValueError:
            raise ValueError(f"{ENV_INTERVAL} must be a number of seconds, got {raw!r}") from None
    if (isinstance(interval, bool) or not isinstance(interval, int | float)
            or not math.isfinite(interval) or interval <= 0):
        raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
    return float(interval)


_own_class: Any = None
_own_lock = threading.Lock()


def _value_class() -> Any:
    """prometheus_client's multiprocess value class: the one its own metrics use when the
    directory was set before it was imported (two writers must never share a file), else one
    of our own."""
    global _own_class
    vc = prom_values.ValueClass
    if getattr(vc, "_multiprocess", False):
        return vc
    with _own_lock:
        if _own_class is None:
            _own_class = prom_values.MultiProcessValue()  # type: ignore[no-untyped-call]
        return _own_class


class MultiprocessWriter:
    """Writes one process's metrics into its multiprocess files; ``write()`` does one pass.

    Counters are written as absolute totals on top of what the file already held for this
    pid (a reused pid never makes a sum go backwards); histogram buckets are written per
    bucket, as prometheus_client's own histograms store them.
    """

    def __init__(self, registry: Registry = REGISTRY, *, standard: bool = True) -> None:
        multiproc_dir()
        self.registry = registry
        self.standard = standard
        self.writes = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._values: dict[ValueKey, Any] = {}
        self._base: dict[ValueKey, float] = {}
        self._last: dict[ValueKey, float] = {}
        self._present: set[ValueKey] = set()
        self._kind_modes: dict[str, str] = {}
        self._kinds_seen = -1
        registry.errors.declare(COLLECTOR)

    # -- how each family merges --------------------------------------------------------

    def _gauge_modes(self) -> dict[str, str]:
        kinds = self.registry.kinds()
        if len(kinds) != self._kinds_seen:
            modes: dict[str, str] = {}
            for kind in kinds:
                for m in kind.metrics:
                    if m.type == "gauge":
                        modes[m.name] = "livemax" if m.agg == "max" else "livesum"
                if kind.bytes_metric:
                    modes[kind.budget_metric] = "livesum"
            self._kind_modes, self._kinds_seen = modes, len(kinds)
        return self._kind_modes

    # -- writing -----------------------------------------------------------------------

    def _value(self, typ: str, mode: str, metric: str, sample: str, labels: dict[str, str],
               help_text: str) -> tuple[ValueKey, Any]:
        lk = tuple(sorted(labels.items()))
        key: ValueKey = (typ, mode, metric, sample, lk)
        v = self._values.get(key)
        if v is None:
            names = [k for k, _ in lk]
            vals = [val for _, val in lk]
            v = _value_class()(typ, metric, sample, names, vals, help_text,
                               multiprocess_mode=mode)
            self._values[key] = v
            # Counts left in this pid's file by an earlier process with the same pid.
            self._base[key] = v.get() if typ != "gauge" else 0.0
        return key, v

    def _set(self, seen: set[ValueKey], typ: str, mode: str, metric: str, sample: str,
             labels: dict[str, str], help_text: str, value: float) -> None:
        key, v = self._value(typ, mode, metric, sample, labels, help_text)
        seen.add(key)
        value = self._base[key] + value
        if self._last.get(key) != value:
            v.set(value)
            self._last[key] = value

    def _write_family(self, seen: set[ValueKey], fam: Family, modes: dict[str, str]) -> None:
        if fam.type == "counter":
            base = fam.name.removesuffix("_total")
            for labels, value in fam.samples:
                self._set(seen, "counter", "", base, base + "_total", labels, fam.help,
                          float(value))  # type: ignore[arg-type]
        elif fam.type == "histogram":
            for labels, value in fam.samples:
                if not isinstance(value, HistogramValue):
                    continue
                prev = 0
                bounds = [*value.bounds, math.inf]  # cumulative ends with the +Inf bucket
                for bound, cum in zip(bounds, value.cumulative, strict=True):
                    le = floatToGoString(bound)  # type: ignore[no-untyped-call]
                    self._set(seen, "histogram", "", fam.name, fam.name + "_bucket",
                              {**labels, "le": le}, fam.help, float(cum - prev))
                    prev = cum
                self._set(seen, "histogram", "", fam.name, fam.name + "_sum", labels,
                          fam.help, float(value.sum))
        else:
            mode = modes.get(fam.name, "liveall")
            for labels, value in fam.samples:
                self._set(seen, "gauge", mode, fam.name, fam.name, labels, fam.help,
                          float(value))  # type: ignore[arg-type]

    def _standard_families(self) -> Iterable[Family]:
        """prometheus_client's process, platform and GC collectors, as families."""
        for collector in (prometheus_client.PROCESS_COLLECTOR,
                          prometheus_client.PLATFORM_COLLECTOR, prometheus_client.GC_COLLECTOR):
            try:
                metrics = list(collector.collect())
            except Exception as exc:
                self.registry.errors.record(COLLECTOR, type(collector).__name__, exc)
                continue
            for metric in metrics:
                if metric.type not in ("counter", "gauge"):
                    continue
                name = metric.name + "_total" if metric.type == "counter" else metric.name
                fam = Family(name, "counter" if metric.type == "counter" else "gauge",
                             metric.documentation)
                for s in metric.samples:
                    if s.name == name:
                        fam.add(dict(s.labels), s.value)
                yield fam

    def write(self) -> int:
        """Write the current values of this process; returns how many series it holds."""
        with self._lock:
            pid = os.getpid()
            if pid != self._pid:  # forked: prometheus_client reopens files for the new pid
                self._pid = pid
                self._values.clear()
                self._base.clear()
                self._last.clear()
                self._present.clear()
            modes = self._gauge_modes()
            families = self.registry.collect()
            if self.standard:
                families.extend(self._standard_families())
            seen: set[ValueKey] = set()
            for fam in families:
                try:
                    self._write_family(seen, fam, modes)
                except Exception as exc:
                    self.registry.errors.record(COLLECTOR, f"writing {fam.name}", exc)
            for key in self._present - seen:
                typ, mode = key[0], key[1]
                if typ == "gauge":  # a gauge that left: neutral for sums, absent-ish alone
                    gone = math.nan if mode == "liveall" else 0.0
                    self._values[key].set(gone)
                    self._last[key] = gone
            self._present = seen | {k for k in self._present if k[0] != "gauge"}
            self.writes += 1
            return len(seen)

    def tick_job(self, deadline: float) -> None:
        """The process collector's tick job (``registry.add_tick_job``)."""
        self.write()


_writers: dict[int, MultiprocessWriter] = {}
_writers_lock = threading.Lock()


@after_fork_in_child
def _after_fork_in_child() -> None:
    global _writers_lock, _own_lock
    _writers_lock = threading.Lock()
    _own_lock = threading.Lock()
    for writer in _writers.values():
        writer._lock = threading.Lock()


def _current_writer() -> MultiprocessWriter | None:
    with _writers_lock:
        return _writers.get(os.getpid())


def start_worker(interval: float | None = None, *, registry: Registry = REGISTRY,
                 standard: bool = True) -> MultiprocessWriter:
    """Start writing this worker's metrics every ``interval`` seconds (idempotent per pid).

    Call it in each worker: gunicorn's ``post_fork`` does; with ``uvicorn --workers`` call it
    when the app starts. ``interval`` defaults to ``MEMEXPORT_COLLECTOR_INTERVAL`` or 5 s.
    """
    seconds = _interval_from_env(interval)
    pid = os.getpid()
    with _writers_lock:
        writer = _writers.get(pid)
        if writer is None:
            writer = _writers[pid] = MultiprocessWriter(registry, standard=standard)
    registry.add_tick_job(COLLECTOR, writer.tick_job)
    from memexport.process.collector import start_collector

    start_collector(seconds, registry=registry)  # its first tick writes at once
    return writer


def cleanup_dead_workers(path: str | None = None) -> list[int]:
    """``mark_process_dead`` for every pid whose live-gauge files remain but whose process is
    gone (a safety net for servers without a ``child_exit`` hook); returns those pids."""
    import psutil

    path = path or multiproc_dir()
    dead = []
    pids = {int(m.group(1)) for f in os.listdir(path) if (m := _LIVE_FILE.match(f))}
    for pid in sorted(pids):
        if pid != os.getpid() and not psutil.pid_exists(pid):
            mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
            dead.append(pid)
    return dead


def _refresh() -> None:
    writer = _current_writer()
    if writer is not None:
        try:
            writer.write()  # the answering worker's own values are current
        except Exception as exc:
            writer.registry.errors.record(COLLECTOR, "write at scrape", exc)
    try:
        cleanup_dead_workers()
    except Exception as exc:
        REGISTRY.errors.record(COLLECTOR, "cleanup_dead_workers", exc)


#: A value file shorter than its header: a worker is creating it (prometheus_client makes the
#: file, then sizes it), or was killed doing so. prometheus_client's merge fails on one
#: (client_python#1199), taking every worker's metrics down with a 500.
_HEADER_BYTES = 8


class _MergingCollector(MultiProcessCollector):
    """``MultiProcessCollector`` leaving out value files not yet sized by their worker."""

    def collect(self) -> Any:
        files = []
        for f in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(f) >= _HEADER_BYTES:
                    files.append(f)
            except OSError:  # removed since the listing (a dead worker's live gauges)
                continue
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


def _merged_registry(path: str | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    _MergingCollector(registry, path or multiproc_dir())  # type: ignore[no-untyped-call]
    return registry


def make_wsgi_app(path: str | None = None) -> Callable[..., Any]:
    """A WSGI app serving the merged metrics of all workers (mount it at ``/metrics``)."""
    inner: list[Callable[..., Any]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        _refresh()
        if not inner:
            inner.append(prometheus_client.make_wsgi_app(_merged_registry(path)))
        return inner[0](environ, start_response)

    return app


def make_asgi_app(path: str | None = None) -> Callable[..., Any]:
    """An ASGI app serving the merged metrics of all workers (uvicorn workers)."""
    inner: list[Callable[..., Any]] = []

    async def app(scope: dict[str, Any], receive: Callable[..., Any],
                  send: Callable[..., Any]) -> None:
        _refresh()
        if not inner:
            inner.append(prometheus_client.make_asgi_app(_merged_registry(path)))
        await inner[0](scope, receive, send)

    return app


# -- gunicorn server hooks ---------------------------------------------------------------


def on_starting(server: Any) -> None:
    """gunicorn ``on_starting``: make sure the directory exists and holds no stale files."""
    path = os.environ.get(ENV_DIR)
    if not path:
        path = tempfile.mkdtemp(prefix="memexport-multiproc-")
        os.environ[ENV_DIR] = path
        log.warning("memexport: %s was not set; using %s (set it in the server's environment "
                    "so your own prometheus_client metrics use it too)", ENV_DIR, path)
    os.makedirs(path, exist_ok=True)
    for f in glob.glob(os.path.join(path, "*.db")):
        os.remove(f)


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn ``post_fork``: start writing this worker's metrics."""
    try:
        start_worker()
    except Exception as exc:  # a worker must start even if its metrics cannot
        log.warning("memexport: multiprocess metrics not started in worker %s (%s)",
                    os.getpid(), type(exc).__name__)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit``: drop the dead worker's live gauges (its counts stay)."""
    try:
        mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    except Exception as exc:
        log.warning("memexport: mark_process_dead(%s) failed (%s)", worker.pid,
                    type(exc).__name__)
