"""The built-in ``shed`` action: give memory back, step by step, each step measured.

Steps, in this order, each skipped once the action's deadline has passed:

==============  ==========================================================  =================
step            what it does                                                freed, measured as
==============  ==========================================================  =================
``caches``      shrinks the named caches by their fraction (``shrink``)     component bytes
``histories``   runs the ``@trimmer`` hook of each named conversation       component bytes
``pools``       closes idle pool resources (``dispose``, ``disconnect``,    RSS
                a ``@reaper`` hook)
``cleanups``    runs the registered ``memexport.cleanup`` jobs (those       RSS
                callable without arguments; not coroutines)
``gc``          ``gc.collect()``                                            RSS
``malloc_trim`` ``malloc_trim(0)``: free glibc heap back to the OS          RSS
==============  ==========================================================  =================

Each step's figure goes to ``memexport_action_step_freed_bytes_total{step}``; the whole
run's RSS before minus after to ``memexport_action_freed_bytes_total``. Component bytes
come from the component's own figure or a fresh sampled deep size; freed Python objects go
back to pymalloc's arenas first, so RSS usually drops only after ``gc`` and
``malloc_trim``.
"""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from memexport.actions.catalog import Action, ActionContext, Match
from memexport.actions.limits import Limits
from memexport.actions.shrink import hook_for, measure, members, reap_pool, shrink_cache
from memexport.core.checks import positive_number, shown
from memexport.core.component import Component
from memexport.core.registry import Registry
from memexport.process.allocator import malloc_trim
from memexport.process.reader import rss_bytes

__all__ = ["STEP_ORDER", "Shed", "shed"]

STEP_ORDER = ("caches", "histories", "pools", "cleanups", "gc", "malloc_trim")
IDLE_KEY = ("memexport_pool_resources", ("idle",))


def _names(value: Any, what: str) -> Any:
    if value == "*":
        return "*"
    names = frozenset([value] if isinstance(value, str) else value)
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what} must be '*' or a list of names, got {shown(value)}")
    return names


class Shed:
    """The shed action's callable (see the module docstring)."""

    def __init__(self, *, caches: Mapping[str, float], histories: Any, history_fraction: float,
                 pools: Any, cleanups: Any, collect: bool, trim: bool) -> None:
        self.caches = dict(caches)
        self.histories = histories
        self.history_fraction = history_fraction
        self.pools = pools
        self.cleanups = cleanups
        steps: list[tuple[str, Callable[[ActionContext], dict[str, Any]]]] = []
        if self.caches:
            steps.append(("caches", self._caches))
        if histories:
            steps.append(("histories", self._histories))
        if pools:
            steps.append(("pools", self._pools))
        if cleanups:
            steps.append(("cleanups", self._cleanups))
        if collect:
            steps.append(("gc", self._gc))
        if trim:
            steps.append(("malloc_trim", self._trim))
        self.steps = steps

    def __call__(self, ctx: ActionContext) -> None:
        if ctx.status != "firing":
            return
        for step, fn in self.steps:
            if ctx.expired():
                ctx.result[step] = {"skipped": "deadline"}
                continue
            start = time.perf_counter()
            rss0 = rss_bytes()
            out = fn(ctx)
            rss1 = rss_bytes()
            rss_freed = max(0, rss0 - rss1) if rss0 is not None and rss1 is not None else 0
            out["rss_freed_bytes"] = rss_freed
            out["seconds"] = round(time.perf_counter() - start, 6)
            freed = out.get("freed_bytes", rss_freed)
            ctx.freed(freed, step)
            ctx.result[step] = out

    # -- steps -----------------------------------------------------------------------------

    def _caches(self, ctx: ActionContext) -> dict[str, Any]:
        default = self.caches.get("*")
        names = "*" if default is not None else set(self.caches)
        freed = 0.0
        removed = 0
        done: dict[str, str] = {}
        for name, comp, obj in members(ctx.registry, "cache", names):
            if ctx.expired():
                break
            fraction = self.caches.get(name, default or 0.0)
            before = _bytes(comp, obj, ctx.registry)
            n, how = shrink_cache(obj, fraction, hook_for("cache", name), ctx.deadline)
            after = _bytes(comp, obj, ctx.registry)
            removed += n
            done[name] = how
            if before is not None and after is not None and before > after:
                freed += before - after
        return {"freed_bytes": freed, "entries_removed": removed, "caches": done}

    def _histories(self, ctx: ActionContext) -> dict[str, Any]:
        freed = 0.0
        trimmed = 0
        without_hook: set[str] = set()
        for name, comp, obj in members(ctx.registry, "conversation", self.histories):
            if ctx.expired():
                break
            hook = hook_for("conversation", name)
            if hook is None:
                without_hook.add(name)
                continue
            before = _bytes(comp, obj, ctx.registry)
            hook(obj, self.history_fraction)
            after = _bytes(comp, obj, ctx.registry)
            trimmed += 1
            if before is not None and after is not None and before > after:
                freed += before - after
        return {"freed_bytes": freed, "histories": trimmed,
                "without_trimmer": sorted(without_hook)}

    def _pools(self, ctx: ActionContext) -> dict[str, Any]:
        closed = 0.0
        done: dict[str, str] = {}
        for name, comp, obj in members(ctx.registry, "pool", self.pools):
            if ctx.expired():
                break
            reader = comp.profile.readers.get(IDLE_KEY)
            before = _idle(reader, obj)
            done[name] = reap_pool(obj, hook_for("pool", name))
            after = _idle(reader, obj)
            if before is not None and after is not None and before > after:
                closed += before - after
        return {"idle_closed": int(closed), "pools": done}

    def _cleanups(self, ctx: ActionContext) -> dict[str, Any]:
        ran: list[str] = []
        failed: dict[str, str] = {}
        skipped: list[str] = []
        for name, _comp, obj in members(ctx.registry, "cleanup", self.cleanups):
            if ctx.expired():
                break
            fn = inspect.unwrap(obj)
            try:
                inspect.signature(obj).bind()
                runnable = not inspect.iscoroutinefunction(fn)
            except (TypeError, ValueError):
                runnable = False
            if not runnable:
                skipped.append(name)
                continue
            try:
                obj()  # counted in memexport_cleanup_* as the app's own runs are
                ran.append(name)
            except Exception as exc:
                failed[name] = type(exc).__name__
        return {"ran": ran, "failed": failed, "skipped": skipped}

    def _gc(self, ctx: ActionContext) -> dict[str, Any]:
        return {"collected": gc.collect()}

    def _trim(self, ctx: ActionContext) -> dict[str, Any]:
        return {"trimmed": malloc_trim(0)}


def _bytes(comp: Component, obj: Any, registry: Registry) -> float | None:
    try:
        return measure(comp, obj, registry)
    except Exception:
        return None


def _idle(reader: Any, obj: Any) -> float | None:
    try:
        value = reader(obj) if reader is not None else None
        return None if value is None else float(value)
    except Exception:
        return None


def shed(*, name: str = "shed", alerts: str | Iterable[str] | None = None,
         labels: Mapping[str, Any] | None = None, on: str | Iterable[str] = ("firing",),
         max_runs: int = 3, window: float = 3600.0, cooldown: float = 600.0,
         timeout: float = 30.0, caches: Mapping[str, float] | None = None,
         histories: Any = "*", history_fraction: float = 0.5, pools: Any = "*",
         cleanups: Any = "*", gc: bool = True, malloc_trim: bool = True,
         match: Match | None = None, limits: Limits | None = None) -> Action:
    """The shedding action for ``alerts`` (pass it to ``start_actions(actions=[...])``).

    ``caches``: ``{name: fraction}`` (``"*"`` for every cache) to remove, 0 < fraction <= 1;
    ``histories``: conversation names whose ``@trimmer`` hook to run with
    ``history_fraction``; ``pools``: pools whose idle resources to close; ``cleanups``:
    ``memexport.cleanup`` names to run (``"*"``: all; ``()``: none); ``gc`` and
    ``malloc_trim`` turn those steps off with ``False``.
    """
    fractions = {}
    for cache, fraction in (caches or {}).items():
        if not isinstance(cache, str) or not cache:
            raise ValueError(f"caches keys must be cache names or '*', got {shown(cache)}")
        f = positive_number(fraction, f"caches[{cache!r}]")
        if f > 1:
            raise ValueError(f"caches[{cache!r}] must be a fraction in (0, 1], got "
                             f"{shown(fraction)}")
        fractions[cache] = f
    hf = positive_number(history_fraction, "history_fraction")
    if hf > 1:
        raise ValueError(f"history_fraction must be in (0, 1], got {shown(history_fraction)}")
    for flag, what in ((gc, "gc"), (malloc_trim, "malloc_trim")):
        if not isinstance(flag, bool):
            raise ValueError(f"{what} must be True or False, got {shown(flag)}")
    fn = Shed(caches=fractions, histories=_names(histories, "histories") if histories else (),
              history_fraction=hf, pools=_names(pools, "pools") if pools else (),
              cleanups=_names(cleanups, "cleanups") if cleanups else (), collect=gc,
              trim=malloc_trim)
    if match is None:
        if alerts is None:
            raise ValueError("shed needs alerts= (alert names, or '*' for any)")
        match = Match.of(alerts, labels, on)
    if limits is None:
        limits = Limits(max_runs=max_runs, window=window, cooldown=cooldown, timeout=timeout)
    return Action(name, fn, match, limits, frees=True, order=20,
                  steps=tuple(s for s, _ in fn.steps))
