"""The built-in ``evidence`` action: what memory looked like when the alert fired, kept on disk.

On a firing alert it writes one JSON file to the evidence directory with the sections it was
given (``sections.SECTIONS``; by default tracemalloc sites that grew since the last
baseline, the component table, the RSS ledger and thread stacks), each timed, within the
action's timeout; sections past the deadline are marked skipped. On a resolved alert (when
``on`` includes it) it only takes a new tracemalloc baseline, so the next capture shows what
grew since the process was healthy; that writes nothing.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from memexport.actions.catalog import Action, ActionContext, Match
from memexport.actions.limits import Limits
from memexport.actions.referrers import type_counts
from memexport.actions.sections import (
    DEFAULT_SECTIONS,
    SECTIONS,
    EvidenceState,
    rebaseline,
)
from memexport.core import forks
from memexport.core.checks import shown

__all__ = ["Evidence", "evidence"]


class Evidence:
    """The evidence action's callable: ``sections`` in order, with state between runs."""

    def __init__(self, sections: Iterable[str], state: EvidenceState) -> None:
        self.sections = tuple(sections)
        for name in self.sections:
            if name not in SECTIONS:
                raise ValueError(f"unknown evidence section {shown(name)}: use some of "
                                 f"{sorted(SECTIONS)}")
        self.state = state
        self._primed = False
        self._lock = forks.RLock()  # a forked child gets it free

    def prime(self) -> None:
        """Take the first baseline (the receiver calls it once, off the request thread)."""
        with self._lock:
            if not self._primed:
                self._primed = True
                if "tracemalloc" in self.sections and self.state.baseline is None:
                    rebaseline(self.state)
                if "referrers" in self.sections and self.state.type_counts is None:
                    self.state.type_counts = type_counts(gc.get_objects())

    def __call__(self, ctx: ActionContext) -> None:
        with self._lock:
            self._primed = True
            if ctx.status == "resolved":
                ctx.result["rebaselined"] = rebaseline(self.state)
                if "referrers" in self.sections:
                    self.state.type_counts = type_counts(gc.get_objects())
                return
            self._capture(ctx)

    def _capture(self, ctx: ActionContext) -> None:
        if ctx.store is None:
            raise RuntimeError("the evidence action needs an evidence directory")
        doc: dict[str, Any] = {
            "alertname": ctx.alertname, "status": ctx.status, "action": ctx.action,
            "pid": os.getpid(), "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime()),
            "alerts": [dict(a.labels) for a in ctx.alerts[:20]],
            "sections": {}, "seconds": {},
        }
        for name in self.sections:
            if ctx.expired():
                doc["sections"][name] = {"skipped": "deadline"}
                continue
            start = time.perf_counter()
            try:
                doc["sections"][name] = SECTIONS[name](self.state, ctx)
            except Exception as exc:  # the rest of the report is still worth writing
                doc["sections"][name] = {"error": type(exc).__name__}
            doc["seconds"][name] = round(time.perf_counter() - start, 6)
        data = (json.dumps(doc, indent=1, default=_number) + "\n").encode()
        name = ctx.store.write(ctx.alertname, ctx.action, "json", data)
        ctx.result.update(file=name, bytes=len(data), seconds=doc["seconds"])
        memray = doc["sections"].get("memray")
        if isinstance(memray, dict) and memray.get("file"):
            ctx.result["memray_file"] = memray["file"]


def _number(value: Any) -> Any:
    """JSON for what sections may hold besides JSON types (numbers of numpy and such)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return type(value).__name__


def evidence(*, name: str = "evidence", alerts: str | Iterable[str] | None = None,
             labels: Mapping[str, Any] | None = None,
             on: str | Iterable[str] = ("firing", "resolved"), max_runs: int = 3,
             window: float = 3600.0, cooldown: float = 600.0, timeout: float = 30.0,
             sections: Iterable[str] = DEFAULT_SECTIONS, top: int = 25,
             referrers: bool = False, referrer_types: int = 5, memray_seconds: float = 0.0,
             start_tracemalloc: bool = False, match: Match | None = None,
             limits: Limits | None = None) -> Action:
    """The evidence action for ``alerts`` (pass it to ``start_actions(actions=[...])``).

    ``sections`` (names of ``memexport.actions.sections.SECTIONS``), ``top`` tracemalloc
    sites, ``referrers=True`` adds the referrer report of the ``referrer_types`` most grown
    types, ``memray_seconds`` > 0 adds a memray capture of that long (memray installed),
    ``start_tracemalloc`` starts tracing at the first alert if nothing traces yet.
    """
    chosen = list(sections)
    if referrers and "referrers" not in chosen:
        chosen.append("referrers")
    if memray_seconds and "memray" not in chosen:
        chosen.append("memray")
    for value, what in ((top, "top"), (referrer_types, "referrer_types")):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise ValueError(f"{what} must be an int from 1 to 1000, got {shown(value)}")
    if (isinstance(memray_seconds, bool) or not isinstance(memray_seconds, int | float)
            or memray_seconds < 0):
        raise ValueError(f"memray_seconds must be a number >= 0, got {shown(memray_seconds)}")
    state = EvidenceState(top=top, start_tracemalloc=bool(start_tracemalloc),
                          memray_seconds=float(memray_seconds), referrer_types=referrer_types)
    if match is None:
        if alerts is None:
            raise ValueError("evidence needs alerts= (alert names, or '*' for any)")
        match = Match.of(alerts, labels, on)
    if limits is None:
        limits = Limits(max_runs=max_runs, window=window, cooldown=cooldown, timeout=timeout)
    if memray_seconds and memray_seconds >= limits.timeout:
        raise ValueError(f"memray_seconds ({memray_seconds}) must be shorter than the "
                         f"action's timeout ({limits.timeout})")
    return Action(name, Evidence(chosen, state), match, limits, order=10)
