"""Process memory: the collector thread and its readings, one concern per module.

``limits`` (the memory limit and cgroup paths), ``reader`` (the one psutil / /proc reader),
``gcpause`` (GC pauses), ``tracesites`` and ``suspects`` (tracemalloc sites and leak
suspects), ``allocator`` (glibc and pymalloc), ``cgroup`` (OOM and pressure forensics),
``ledger`` (the RSS ledger), ``collector`` (the
thread).
"""

from memexport.process.allocator import malloc_trim
from memexport.process.collector import (
    GC_PAUSE_BUCKETS,
    LIMIT_SOURCES,
    MIN_INTERVAL,
    ProcessCollector,
    ProcessReading,
    detect_memory_limit,
    start_collector,
    stop_collector,
)
from memexport.process.ledger import CLASSES as LEDGER_CLASSES
from memexport.process.ledger import Ledger

__all__ = [
    "GC_PAUSE_BUCKETS",
    "LEDGER_CLASSES",
    "LIMIT_SOURCES",
    "MIN_INTERVAL",
    "Ledger",
    "ProcessCollector",
    "ProcessReading",
    "detect_memory_limit",
    "malloc_trim",
    "start_collector",
    "stop_collector",
]
