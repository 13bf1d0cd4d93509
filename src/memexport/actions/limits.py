"""Each action's safety limits: at most ``max_runs`` per ``window``, a ``cooldown``, one at a time.

A run is admitted (or refused with a reason) when the webhook request is handled, before it
is queued, so two notifications arriving together cannot both pass; the slot is released
when the run ends, however it ends (a run past its timeout keeps it until it returns).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from memexport.core.checks import positive_number, shown

__all__ = ["SKIP_REASONS", "Limiter", "Limits"]

#: Why a matched action did not run (the ``reason`` of ``memexport_action_skipped_total``).
SKIP_REASONS = ("cooldown", "rate_limit", "running", "queue_full", "dry_run")


@dataclass(frozen=True)
class Limits:
    """``max_runs`` per ``window`` seconds, ``cooldown`` seconds between starts, a run stopped
    waiting for after ``timeout`` seconds."""

    max_runs: int = 3
    window: float = 3600.0
    cooldown: float = 300.0
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if (isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int)
                or self.max_runs < 1):
            raise ValueError(f"max_runs must be a positive int, got {shown(self.max_runs)}")
        positive_number(self.window, "window")
        positive_number(self.cooldown, "cooldown", allow_zero=True)
        positive_number(self.timeout, "timeout")


class Limiter:
    """The run history of one action against its ``Limits``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._clock = time.monotonic
        self._starts: deque[float] = deque()
        self._busy = False
        self._lock = threading.Lock()

    def admit(self, *, limited: bool = True) -> str | None:
        """Take the run slot: None if admitted, else the skip reason. ``limited=False``
        (resolved alerts) checks only that no run is in progress."""
        now = self._clock()
        lim = self.limits
        with self._lock:
            if self._busy:
                return "running"
            if limited:
                while self._starts and now - self._starts[0] >= lim.window:
                    self._starts.popleft()
                if self._starts and now - self._starts[-1] < lim.cooldown:
                    return "cooldown"
                if len(self._starts) >= lim.max_runs:
                    return "rate_limit"
                self._starts.append(now)
            self._busy = True
            return None

    def release(self) -> None:
        """The admitted run ended (or was never started)."""
        with self._lock:
            self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    def reset_after_fork(self) -> None:
        """A child has no run in progress (the thread running it stayed in the parent)."""
        self._lock = threading.Lock()
        self._busy = False
