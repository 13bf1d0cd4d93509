"""Process memory: the collector thread and its readings (limit, RSS, GC, tracemalloc)."""

from memexport.process.collector import (
    GC_PAUSE_BUCKETS,
    LIMIT_SOURCES,
    ProcessCollector,
    ProcessReading,
    detect_memory_limit,
    start_collector,
    stop_collector,
)

__all__ = [
    "GC_PAUSE_BUCKETS",
    "LIMIT_SOURCES",
    "ProcessCollector",
    "ProcessReading",
    "detect_memory_limit",
    "start_collector",
    "stop_collector",
]
