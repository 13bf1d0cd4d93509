"""The one reader of this process's OS-level figures (psutil and /proc), for all of memexport.

Everything in memexport that needs RSS, USS, VMS, descriptors or threads reads them here, so
the figures agree and the ``psutil.Process`` is made once per process (a forked child gets
its own on first use: the reader follows ``os.getpid()``, no fork hook needed).

Two ways in:

- ``current()`` returns the process-wide ``ProcessReader``; its methods raise what psutil or
  the kernel raise, for callers that count failures (the collector, the OTel exporter);
- ``rss_bytes()``, ``uss_bytes()``, ``vms_bytes()``, ``open_fds()``, ``threads()`` never raise
  and return ``None`` where the figure cannot be read (``kinds/cleanup.py``'s before/after).

``smaps_rollup()`` and ``proc_status()`` parse ``/proc/self/smaps_rollup`` and
``/proc/self/status`` into bytes, for the RSS ledger.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import psutil

__all__ = [
    "ProcessReader",
    "current",
    "open_fds",
    "proc_status",
    "rss_bytes",
    "smaps_rollup",
    "threads",
    "uss_bytes",
    "vms_bytes",
]

T = TypeVar("T")


class ProcessReader:
    """psutil readings of one process; methods raise on failure (psutil errors, OSError)."""

    def __init__(self, pid: int | None = None, proc_root: str = "/proc") -> None:
        self.pid = os.getpid() if pid is None else pid
        self.proc_root = proc_root
        self._proc = psutil.Process(self.pid)

    def rss(self) -> int:
        """Resident set size in bytes (the kernel's counters, as prometheus_client reads)."""
        return int(self._proc.memory_info().rss)

    def vms(self) -> int:
        """Virtual memory size in bytes."""
        return int(self._proc.memory_info().vms)

    def memory(self) -> tuple[int, int]:
        """(RSS, VMS) in bytes from one read."""
        mem = self._proc.memory_info()
        return int(mem.rss), int(mem.vms)

    def uss(self) -> int:
        """Unique set size in bytes (walks smaps: costly for large processes)."""
        return int(self._proc.memory_full_info().uss)

    def fds(self) -> int:
        """Open file descriptors."""
        return int(self._proc.num_fds())

    def threads(self) -> int:
        """OS threads of the process (including those not started from Python)."""
        return int(self._proc.num_threads())

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds."""
        cpu = self._proc.cpu_times()
        return float(cpu.user), float(cpu.system)

    def start_time(self) -> float:
        """Process start time, seconds since the Unix epoch."""
        return float(self._proc.create_time())

    def smaps_rollup(self) -> dict[str, int]:
        """``/proc/<pid>/smaps_rollup`` as bytes per field (``Rss``, ``Anonymous``, ...)."""
        return _kib_fields(os.path.join(self.proc_root, str(self.pid), "smaps_rollup"))

    def status(self) -> dict[str, int]:
        """The ``kB`` fields of ``/proc/<pid>/status`` as bytes (``VmRSS``, ``RssAnon``, ...)."""
        return _kib_fields(os.path.join(self.proc_root, str(self.pid), "status"))


def _kib_fields(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[name] = int(parts[0]) * 1024
    return out


_reader: ProcessReader | None = None


def current() -> ProcessReader:
    """The reader of this process (a new one after a fork: it follows ``os.getpid()``)."""
    global _reader
    reader = _reader
    pid = os.getpid()
    if reader is None or reader.pid != pid:
        # No lock held across the psutil call: a lock orphaned by fork cannot block us, and
        # two threads racing here build two equal readers, one of which wins.
        reader = ProcessReader(pid)
        _reader = reader
    return reader


def _quiet(fn: Callable[[ProcessReader], T]) -> T | None:
    try:
        return fn(current())
    except Exception:
        return None


def rss_bytes() -> int | None:
    """RSS in bytes, or None where it cannot be read. Never raises."""
    return _quiet(ProcessReader.rss)


def uss_bytes() -> int | None:
    """USS in bytes (costly: walks smaps), or None. Never raises."""
    return _quiet(ProcessReader.uss)


def vms_bytes() -> int | None:
    """VMS in bytes, or None. Never raises."""
    return _quiet(ProcessReader.vms)


def open_fds() -> int | None:
    """Open file descriptors, or None. Never raises."""
    return _quiet(ProcessReader.fds)


def threads() -> int | None:
    """OS threads of this process, or None. Never raises."""
    return _quiet(ProcessReader.threads)


def smaps_rollup() -> dict[str, int] | None:
    """``/proc/self/smaps_rollup`` in bytes per field, or None. Never raises."""
    return _quiet(ProcessReader.smaps_rollup)


def proc_status() -> dict[str, int] | None:
    """The ``kB`` fields of ``/proc/self/status`` in bytes, or None. Never raises."""
    return _quiet(ProcessReader.status)
