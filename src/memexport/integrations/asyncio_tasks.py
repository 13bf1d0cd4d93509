"""asyncio tasks left pending: how many per coroutine, and how old the oldest is (opt-in).

``track_asyncio_tasks(name="main")``, called inside a running loop (or with ``loop=``), adds
a registry source that, at each scrape, lists the loop's pending tasks with
``asyncio.all_tasks(loop)`` (made to be called from another thread: it copies the loop's weak
set of tasks, retrying if the set changes meanwhile; no lock is taken) and exports:

- ``memexport_asyncio_tasks{loop, coroutine}``: pending tasks by the ``__qualname__`` of
  their coroutine (a code name, never a task name or an argument). The ``top`` names with
  the most tasks get a series each; the rest are summed under ``coroutine="__overflow__"``;
- ``memexport_asyncio_task_oldest_age_seconds{loop, coroutine}``: how long the oldest of them
  has been pending, counted from the first scrape that saw it (a task is not timestamped by
  asyncio: the age is exact to a scrape interval, and a task already running when tracking
  starts counts from then).

Cost per scrape: one pass over the pending tasks (about 1 us each); nothing on the loop's
thread. The loop is held weakly: a closed or collected loop's series leave. The leak rule
(alerts/tasks.rules.yml) watches a coroutine's pending tasks making new highs for hours.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from typing import Any

from memexport.core.checks import shown, validate_name
from memexport.core.model import Family
from memexport.core.registry import REGISTRY, Registry

__all__ = ["AGE", "OVERFLOW", "SOURCE", "TASKS", "TaskTracker", "track_asyncio_tasks",
           "untrack_asyncio_tasks"]

TASKS = "memexport_asyncio_tasks"
AGE = "memexport_asyncio_task_oldest_age_seconds"
OVERFLOW = "__overflow__"
SOURCE = "asyncio_tasks"
DEFAULT_TOP = 20


def coroutine_name(task: Any) -> str:
    """The qualified name of ``task``'s coroutine (bounded by the code, not by data)."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None)
    if not isinstance(name, str):
        name = type(coro).__qualname__
    return name[:128]


class _Loop:
    """One tracked loop: weakly, with when each of its tasks was first seen pending."""

    __slots__ = ("loop", "name", "seen", "top")

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, top: int) -> None:
        self.loop = weakref.ref(loop)
        self.name = name
        self.top = top
        self.seen: dict[int, tuple[weakref.ref[Any], float]] = {}

    def read(self, now: float) -> list[tuple[str, int, float]] | None:
        """``(coroutine, pending, oldest age)`` by coroutine, top first, overflow last."""
        loop = self.loop()
        if loop is None or loop.is_closed():
            return None
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        seen = self.seen
        fresh: dict[int, tuple[weakref.ref[Any], float]] = {}
        by_name: dict[str, list[float]] = {}
        for task in tasks:
            key = id(task)
            entry = seen.get(key)
            if entry is None or entry[0]() is not task:
                entry = (weakref.ref(task), now)
            fresh[key] = entry
            stats = by_name.setdefault(coroutine_name(task), [0.0, 0.0])
            stats[0] += 1
            stats[1] = max(stats[1], now - entry[1])
        self.seen = fresh  # tasks that finished are forgotten
        ranked = sorted(by_name.items(), key=lambda kv: (-kv[1][0], kv[0]))
        out = [(n, int(c), age) for n, (c, age) in ranked[:self.top]]
        rest = ranked[self.top:]
        if rest:
            out.append((OVERFLOW, int(sum(c for _n, (c, _a) in rest)),
                        max(a for _n, (_c, a) in rest)))
        return out


class TaskTracker:
    """The registry source serving every tracked loop of one registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loops: dict[str, _Loop] = {}

    def add(self, loop: asyncio.AbstractEventLoop, name: str, top: int) -> None:
        with self._lock:
            known = self._loops.get(name)
            if known is not None and known.loop() not in (None, loop):
                raise ValueError(f"asyncio loop name {shown(name)} already tracks another "
                                 f"loop: give each loop its own name")
            self._loops[name] = _Loop(loop, name, top)

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._loops.pop(name, None) is not None

    def families(self) -> list[Family]:
        tasks = Family(TASKS, "gauge",
                       "Pending asyncio tasks of the loop, by coroutine (top names, the rest "
                       "under __overflow__).")
        age = Family(AGE, "gauge",
                     "How long the oldest pending task of this coroutine has been pending "
                     "(since a scrape first saw it).", "seconds")
        now = time.monotonic()
        with self._lock:
            loops = list(self._loops.values())
        for tracked in loops:
            rows = tracked.read(now)
            if rows is None:
                with self._lock:
                    if self._loops.get(tracked.name) is tracked:
                        del self._loops[tracked.name]
                continue
            for coro, count, oldest in rows:
                labels = {"loop": tracked.name, "coroutine": coro}
                tasks.add(labels, float(count))
                age.add(labels, oldest)
        return [tasks, age]


_trackers: weakref.WeakKeyDictionary[Registry, TaskTracker] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def track_asyncio_tasks(loop: asyncio.AbstractEventLoop | None = None, *, name: str = "main",
                        top: int = DEFAULT_TOP, registry: Registry = REGISTRY) -> None:
    """Export the pending tasks of ``loop`` (default: the running one) as ``name``.

    Call it once per loop, from inside it (``async def main(): track_asyncio_tasks()``) or
    with the loop. ``top`` (1-1000) bounds the coroutine names exported per loop; the rest
    are summed under ``__overflow__``. Calling it again for the same loop and name is a no-op
    that takes the new ``top``.
    """
    validate_name("asyncio loop", name)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 1000:
        raise ValueError(f"top must be an int from 1 to 1000, got {shown(top)}")
    if not isinstance(registry, Registry):
        raise ValueError(f"registry={shown(registry)} is not a memexport Registry")
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ValueError("track_asyncio_tasks() needs a loop: call it inside a running "
                             "loop (in a coroutine) or pass loop=") from None
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise ValueError(f"loop={shown(loop)} is not an asyncio event loop")
    with _lock:
        tracker = _trackers.get(registry)
        if tracker is None:
            tracker = _trackers[registry] = TaskTracker()
            registry.add_source(SOURCE, tracker.families)
    tracker.add(loop, name, top)


def untrack_asyncio_tasks(name: str = "main", *, registry: Registry = REGISTRY) -> bool:
    """Stop exporting the loop tracked as ``name``; whether one was."""
    with _lock:
        tracker = _trackers.get(registry)
    return tracker.remove(name) if tracker is not None else False
