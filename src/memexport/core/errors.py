"""Failed reads: counted per collector, logged once per exception type, never with content.

A sizer, ``__len__`` or reader that raises is the user's code: its message may quote their
data (``cannot size 'card 4111-...'``), so only the exception's type and where it was raised
(file and line) reach the log, and nothing of it reaches a metric.
"""

from __future__ import annotations

import logging
import os

from memexport.core import forks

__all__ = ["ErrorLog", "raised_at", "raised_by_memexport"]

log = logging.getLogger("memexport")


def raised_at(exc: BaseException) -> str:
    """``file.py:123`` of the innermost frame that raised ``exc`` ("" without a traceback)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"


_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def raised_by_memexport(exc: BaseException) -> bool:
    """Whether the innermost Python frame of ``exc`` is memexport's (or code it generated)."""
    tb = exc.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    return filename.startswith((_OWN_DIR, "<memexport"))


class ErrorLog:
    """Counts failed reads per collector and logs the first of each exception type once."""

    _MAX_LOGGED = 10_000

    def __init__(self) -> None:
        self._lock = forks.RLock()  # re-entrant: a signal handler may record while we do
        self._counts: dict[str, int] = {}
        self._logged: set[tuple[str, str]] = set()

    def after_fork(self) -> None:
        self._lock = forks.RLock()

    def declare(self, collector: str) -> None:
        """Make ``collector`` appear with 0 errors, so rate() works from the first failure."""
        with self._lock:
            self._counts.setdefault(collector, 0)

    def record(self, collector: str, source: str, exc: BaseException) -> None:
        """Count a failure of ``collector``; ``source`` names what failed (our names only)."""
        kind = type(exc).__name__
        with self._lock:
            self._counts[collector] = self._counts.get(collector, 0) + 1
            key = (collector, kind)
            first = key not in self._logged and len(self._logged) < self._MAX_LOGGED
            if first:
                self._logged.add(key)
        if first:
            where = raised_at(exc)
            log.warning(
                "memexport: reading %s failed (%s%s); skipped, counted in "
                "memexport_collector_errors_total{collector=%r}; further %s failures of this "
                "collector are counted, not logged",
                source, kind, f" at {where}" if where else "", collector, kind,
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
