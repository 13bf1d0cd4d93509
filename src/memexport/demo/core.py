"""Demo part for the process itself: a process budget, and in ``leak`` a growing heap."""

from __future__ import annotations

import memexport
from memexport.demo.app import ACCELERATED, Part

#: Bytes the leak scenario retains per tick (so RSS grows steadily, about 15 MiB a minute).
LEAK_PER_TICK = 256 * 1024


class ProcessBallast:
    """Retains memory the way an app that never lets go of anything does."""

    def __init__(self, leak: bool) -> None:
        self.leak = leak
        self.retained: list[bytes] = []
        self.scratch: list[bytes] = []
        # What the app's own cleanup would drop; the demo's shed action runs it.
        self.release = memexport.cleanup(self.retained.clear, name="ballast")

    def step(self, tick: int) -> None:
        # Every scenario churns short-lived garbage (a GC sawtooth); leak also keeps some.
        self.scratch = [bytes(1024) for _ in range(64)]
        if self.leak and not ACCELERATED:  # accelerated: the memo cache leaks instead
            self.retained.append(bytes(LEAK_PER_TICK))


def parts(scenario: str) -> list[Part]:
    memexport.budget(1 << 30)  # the process should stay under 1 GiB: an alert compares
    return [ProcessBallast(leak=scenario == "leak")]
