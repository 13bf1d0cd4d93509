"""Each action's safety limits: at most ``max_runs`` per ``window``, a ``cooldown``, one at a time.

A run is admitted (or refused with a reason) when the webhook request is handled, before it
is queued, so two notifications arriving together cannot both pass; the slot is released
when the run ends, however it ends (a run past its timeout keeps it until it returns).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from memexport.core import forks
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
        self._running = False  # a run started and not returned
        self._running_firing = False
        self._late = False  # ... and past its timeout: nothing else of this action may start
        self._queued = 0  # admitted, waiting for the dispatcher
        self._queued_firing = 0
        self._lock = forks.RLock()

    def admit(self, *, limited: bool = True) -> str | None:
        """Reserve a run: None if admitted, else the skip reason. Runs of one action never
        overlap: the dispatcher runs them in turn, and none starts while one is past its
        timeout. ``limited=False`` (resolved alerts) needs only that; a firing run also needs
        no other firing run waiting or running, and its limits."""
        now = self._clock()
        lim = self.limits
        with self._lock:
            if self._late or (limited and (self._queued_firing or self._running_firing)):
                return "running"
            if limited:
                while self._starts and now - self._starts[0] >= lim.window:
                    self._starts.popleft()
                if self._starts and now - self._starts[-1] < lim.cooldown:
                    return "cooldown"
                if len(self._starts) >= lim.max_runs:
                    return "rate_limit"
                self._starts.append(now)
                self._queued_firing += 1
            self._queued += 1
            return None

    def cancel(self, *, limited: bool = True) -> None:
        """An admitted run that will not start after all (queue full, dry run)."""
        with self._lock:
            self._queued = max(0, self._queued - 1)
            if limited:
                self._queued_firing = max(0, self._queued_firing - 1)
                if self._starts:
                    self._starts.pop()

    def start(self, *, limited: bool = True) -> None:
        """The dispatcher starts an admitted run."""
        with self._lock:
            self._queued = max(0, self._queued - 1)
            if limited:
                self._queued_firing = max(0, self._queued_firing - 1)
            self._running = True
            self._running_firing = limited

    def timed_out(self) -> None:
        """The started run is past its timeout and still going."""
        with self._lock:
            self._late = self._running

    def release(self) -> None:
        """The started run returned."""
        with self._lock:
            self._running = self._running_firing = self._late = False

    @property
    def late(self) -> bool:
        return self._late

    @property
    def busy(self) -> bool:
        return self._running or self._queued > 0

    def reset_after_fork(self) -> None:
        """A child has no run in progress or waiting (those threads stayed in the parent)."""
        self._running = self._running_firing = self._late = False
        self._queued = self._queued_firing = 0
