"""What the actions and the webhook did, as metric families (a source of the registry).

Every series exists from the moment its action is registered (at 0), so ``rate()`` and
``increase()`` see the first run, failure or skip. Labels are bounded: ``action`` is a name
the developer chose (at most ``MAX_ACTIONS``), the others are fixed enums.
"""

from __future__ import annotations

from collections.abc import Callable

from memexport.actions.catalog import Action
from memexport.actions.limits import SKIP_REASONS
from memexport.actions.payload import REASONS, STATUSES
from memexport.core import forks
from memexport.core.counters import Histogram
from memexport.core.model import Family

__all__ = ["ALERT_RESULTS", "DURATION_BUCKETS", "FAILURE_REASONS", "RELAY_RESULTS",
           "REQUEST_RESULTS", "STEPS", "ActionMetrics"]

#: Why a run failed: it raised, or it was still running at its timeout.
FAILURE_REASONS = ("error", "timeout")
#: The ``result`` of a webhook request.
REQUEST_RESULTS = ("accepted", "unauthorized", "bad_method", "unsupported_media_type",
                   "too_large", *REASONS, "error")
#: What became of each alert of an accepted request.
ALERT_RESULTS = ("matched", "unmatched", "other_process", "relayed")
#: What became of a notification relayed to another replica.
RELAY_RESULTS = ("sent", "failed", "dropped")
#: Shedding steps (``step`` label of the freed bytes), ``custom`` for ``ctx.freed()``.
STEPS = ("caches", "histories", "pools", "cleanups", "gc", "malloc_trim", "custom")
#: Buckets from 1 ms to 5 minutes: a gc.collect() to a memray capture.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 120.0, 300.0)

RUNS = "memexport_action_runs_total"
FAILURES = "memexport_action_failures_total"
SKIPPED = "memexport_action_skipped_total"
DURATION = "memexport_action_duration_seconds"
FREED = "memexport_action_freed_bytes_total"
STEP_FREED = "memexport_action_step_freed_bytes_total"
REQUESTS = "memexport_webhook_requests_total"
ALERTS = "memexport_webhook_alerts_total"
RELAYS = "memexport_webhook_relays_total"
EVIDENCE_BYTES = "memexport_evidence_bytes"
EVIDENCE_FILES = "memexport_evidence_files"

Key = tuple[str, tuple[str, ...]]


class ActionMetrics:
    """Counters of runs, failures, skips, durations, bytes freed, requests and alerts."""

    def __init__(self) -> None:
        self._lock = forks.RLock()  # a forked child gets it free
        self._counts: dict[Key, float] = {}
        self._durations: dict[str, Histogram] = {}
        self._actions: dict[str, tuple[bool, tuple[str, ...]]] = {}
        self.evidence: Callable[[], tuple[int, int] | None] | None = None
        for result in REQUEST_RESULTS:
            self._counts[(REQUESTS, (result,))] = 0.0
        for status in STATUSES:
            for res in ALERT_RESULTS:
                self._counts[(ALERTS, (status, res))] = 0.0
        for res in RELAY_RESULTS:
            self._counts[(RELAYS, (res,))] = 0.0

    def declare(self, act: Action) -> None:
        """Create an action's series at 0."""
        with self._lock:
            self._actions[act.name] = (act.frees, act.steps)
            self._counts.setdefault((RUNS, (act.name,)), 0.0)
            for reason in FAILURE_REASONS:
                self._counts.setdefault((FAILURES, (act.name, reason)), 0.0)
            for reason in SKIP_REASONS:
                self._counts.setdefault((SKIPPED, (act.name, reason)), 0.0)
            if act.frees:
                self._counts.setdefault((FREED, (act.name,)), 0.0)
            for step in act.steps:
                self._counts.setdefault((STEP_FREED, (act.name, step)), 0.0)
            self._durations.setdefault(act.name, Histogram(DURATION_BUCKETS))

    def _add(self, key: Key, amount: float = 1.0) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + amount

    def request(self, result: str) -> None:
        self._add((REQUESTS, (result,)))

    def alert(self, status: str, result: str) -> None:
        self._add((ALERTS, (status, result)))

    def relay(self, result: str) -> None:
        self._add((RELAYS, (result,)))

    def run(self, name: str) -> None:
        self._add((RUNS, (name,)))

    def failure(self, name: str, reason: str) -> None:
        self._add((FAILURES, (name, reason)))

    def skipped(self, name: str, reason: str) -> None:
        self._add((SKIPPED, (name, reason)))

    def duration(self, name: str, seconds: float) -> None:
        with self._lock:
            hist = self._durations.setdefault(name, Histogram(DURATION_BUCKETS))
        hist.observe(seconds)

    def freed(self, name: str, nbytes: float) -> None:
        if nbytes > 0:
            self._add((FREED, (name,)), nbytes)

    def step_freed(self, name: str, step: str, nbytes: float) -> None:
        if nbytes > 0:
            self._add((STEP_FREED, (name, step if step in STEPS else "custom")), nbytes)

    def value(self, metric: str, *labels: str) -> float:
        """A counter's current value (for tests and the status endpoint)."""
        with self._lock:
            return self._counts.get((metric, labels), 0.0)

    def families(self) -> list[Family]:
        """The families of one scrape."""
        defs = {
            RUNS: ("Runs of this action started (by an alert through the webhook).",
                   ("action",), ""),
            FAILURES: ("Runs of this action that failed: raised (error) or still running at "
                       "their timeout (timeout).", ("action", "reason"), ""),
            SKIPPED: ("Matched alerts that did not run this action, by reason: cooldown, "
                      "rate_limit, running, queue_full, dry_run.", ("action", "reason"), ""),
            FREED: ("Process RSS returned to the OS by runs of this action (before minus "
                    "after, when positive).", ("action",), "bytes"),
            STEP_FREED: ("Bytes freed by one step of this action, as the step measures them "
                         "(component bytes for caches and histories, RSS for the others).",
                         ("action", "step"), "bytes"),
            REQUESTS: ("Requests to the Alertmanager webhook, by result (accepted, or why "
                       "it was refused).", ("result",), ""),
            ALERTS: ("Alerts of accepted webhook requests, by status and what became of "
                     "them: matched an action, matched none, named another process, or "
                     "relayed to the replica they name.", ("status", "result"), ""),
            RELAYS: ("Notifications relayed to another replica's receiver, by result: sent, "
                     "failed, dropped (queue full).", ("result",), ""),
        }
        fams = {m: Family(m, "counter", h, unit) for m, (h, _labels, unit) in defs.items()}
        with self._lock:
            counts = sorted(self._counts.items())
            hists = sorted(self._durations.items())
        for (metric, values), v in counts:
            names = defs[metric][1]
            fams[metric].add(dict(zip(names, values, strict=True)), v)
        duration = Family(DURATION, "histogram", "How long runs of this action took.",
                          "seconds")
        for name, hist in hists:
            duration.add({"action": name}, hist.value())
        out = [*fams.values(), duration]
        usage = self.evidence() if self.evidence is not None else None
        if usage is not None:
            nbytes, files = usage
            out.append(Family(EVIDENCE_BYTES, "gauge",
                              "Bytes of evidence files in the evidence directory.", "bytes",
                              [({}, float(nbytes))]))
            out.append(Family(EVIDENCE_FILES, "gauge",
                              "Evidence files in the evidence directory.", "",
                              [({}, float(files))]))
        return out
