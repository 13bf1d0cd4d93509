"""Running actions off the request thread: one dispatcher thread, each run time-boxed.

The webhook request only admits and queues (``submit``); the dispatcher thread takes runs in
order (a notification's evidence before its shedding) and starts each on a thread of its own,
waiting at most the action's ``timeout``. A run still going then is counted as a ``timeout``
failure and left to finish on its own (Python cannot stop a thread): its action stays busy,
so it is not started again meanwhile, and the dispatcher goes on with the next run.
Whatever a run raises, ``SystemExit`` included, is counted and logged once by type.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from memexport.actions.catalog import Action, ActionContext
from memexport.actions.metrics import ActionMetrics
from memexport.actions.payload import Alert
from memexport.core import forks
from memexport.core.errors import raised_at
from memexport.process.reader import rss_bytes

__all__ = ["DEFAULT_QUEUE", "Dispatcher", "Job"]

log = logging.getLogger("memexport")

#: Runs waiting for the dispatcher at most; more are skipped (``queue_full``).
DEFAULT_QUEUE = 32


_dispatchers: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


@forks.after_fork_in_child
def _after_fork() -> None:
    """A child has no action thread: each dispatcher starts afresh (held weakly here)."""
    for dispatcher in list(_dispatchers):
        dispatcher._after_fork()


@dataclass(frozen=True)
class Job:
    action: Action
    status: str
    alerts: tuple[Alert, ...]


class Dispatcher:
    """Admits runs against each action's limits and runs them on the action thread."""

    def __init__(self, metrics: ActionMetrics, *, queue_size: int = DEFAULT_QUEUE,
                 dry_run: bool = False, registry: Any = None, store: Any = None) -> None:
        self.metrics = metrics
        self.registry = registry
        self.store = store
        self.dry_run = dry_run
        self._queue_size = queue_size
        self._queue: queue.Queue[Job | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._lock = forks.RLock()
        self._closed = False
        self._logged: set[tuple[str, str]] = set()
        self.completed = 0  # runs that ended (for tests: no sleeping on time)
        self._idle = threading.Condition(threading.Lock())
        _dispatchers.add(self)

    def _after_fork(self) -> None:
        self._queue = queue.Queue(self._queue_size)
        self._thread = None
        self._idle = threading.Condition(threading.Lock())

    def submit(self, act: Action, status: str, alerts: tuple[Alert, ...]) -> str | None:
        """Queue a run of ``act``: None if queued, else why it was skipped (counted)."""
        limited = status == "firing"
        reason = act.limiter.admit(limited=limited)
        if reason is None and self.dry_run:
            act.limiter.cancel(limited=limited)
            reason = "dry_run"
        if reason is None:
            try:
                self._queue.put_nowait(Job(act, status, alerts))
            except queue.Full:
                act.limiter.cancel(limited=limited)
                reason = "queue_full"
            else:
                self._ensure_thread()
        if reason is not None:
            self.metrics.skipped(act.name, reason)
        return reason

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._loop, name="memexport-actions",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            except BaseException as exc:  # never end the dispatcher
                self._log_once("dispatcher", exc)

    def _run(self, job: Job) -> None:
        act, metrics = job.action, self.metrics
        timeout = act.limits.timeout

        def report(step: str, nbytes: float) -> None:
            metrics.step_freed(act.name, step, nbytes)

        ctx = ActionContext(act.name, job.status, job.alerts, timeout, report,
                            registry=self.registry, store=self.store)
        outcome: dict[str, Any] = {}
        done = threading.Event()
        handoff = threading.Lock()  # who reports the end: the dispatcher, or a late run
        late = [False]

        def work() -> None:
            rss0 = rss_bytes() if act.frees else None
            start = time.perf_counter()
            try:
                act(ctx)
                outcome["outcome"] = "ok"
            except BaseException as exc:
                outcome["outcome"] = "error"
                outcome["error_type"] = type(exc).__name__
                self._log_once(act.name, exc)
            finally:
                outcome["duration_seconds"] = round(time.perf_counter() - start, 6)
                if rss0 is not None:
                    rss1 = rss_bytes()
                    freed = max(0, rss0 - rss1) if rss1 is not None else 0
                    outcome.update(freed_bytes=freed, rss_before_bytes=rss0,
                                   rss_after_bytes=rss1)
                    metrics.freed(act.name, freed)
                with handoff:
                    done.set()
                    is_late = late[0]
                if is_late:
                    act.last = self._summary(job, ctx, {**outcome, "outcome": "timeout"})
                act.limiter.release()
                if is_late:
                    self._ended()

        limited = job.status == "firing"
        if act.limiter.late:  # its previous run is still going, past its timeout
            act.limiter.cancel(limited=limited)
            metrics.skipped(act.name, "running")
            self._ended()
            return
        act.limiter.start(limited=limited)
        metrics.run(act.name)
        try:
            thread = threading.Thread(target=work, name=f"memexport-action-{act.name}",
                                      daemon=True)
            thread.start()
        except BaseException as exc:  # no thread could be started
            act.limiter.release()
            metrics.failure(act.name, "error")
            self._log_once(act.name, exc)
            self._ended()
            return
        done.wait(timeout)
        with handoff:
            late[0] = not done.is_set()
        if late[0]:
            act.limiter.timed_out()
            metrics.failure(act.name, "timeout")
            metrics.duration(act.name, timeout)
            act.last = self._summary(job, ctx, {"outcome": "timeout"})
            self._log_timeout(act.name, timeout)
            return
        metrics.duration(act.name, float(outcome.get("duration_seconds", 0.0)))
        if outcome.get("outcome") == "error":
            metrics.failure(act.name, "error")
        act.last = self._summary(job, ctx, outcome)
        self._ended()
        log.info("memexport: action %s ran for %s alert %s: %s in %.3f s%s", act.name,
                 job.status, ctx.alertname or "?", outcome.get("outcome"),
                 outcome.get("duration_seconds", 0.0),
                 f", {outcome['freed_bytes']} bytes of RSS freed" if "freed_bytes" in outcome
                 else "")

    def _ended(self) -> None:
        with self._idle:
            self.completed += 1
            self._idle.notify_all()

    @staticmethod
    def _summary(job: Job, ctx: ActionContext, outcome: dict[str, Any]) -> dict[str, Any]:
        return {"status": job.status, "alertname": ctx.alertname, "alerts": len(job.alerts),
                "finished_at": time.time(), **outcome, "result": dict(ctx.result)}

    def _log_once(self, name: str, exc: BaseException) -> None:
        key = (name, type(exc).__name__)
        if key in self._logged or len(self._logged) > 1000:
            return
        self._logged.add(key)
        where = raised_at(exc)
        log.warning("memexport: action %s raised %s%s; counted in "
                    "memexport_action_failures_total, further ones are not logged", name,
                    type(exc).__name__, f" at {where}" if where else "")

    def _log_timeout(self, name: str, timeout: float) -> None:
        key = (name, "timeout")
        if key not in self._logged:
            self._logged.add(key)
            log.warning("memexport: action %s still running after its timeout (%.1f s): "
                        "counted as failed; it is not started again until it returns", name,
                        timeout)

    def wait_idle(self, completed: int, timeout: float = 30.0) -> bool:
        """Block until at least ``completed`` runs have ended (for tests and ``close``)."""
        end = time.monotonic() + timeout
        with self._idle:
            while self.completed < completed:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the dispatcher after the runs already queued (bounded wait)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            thread.join(timeout)
