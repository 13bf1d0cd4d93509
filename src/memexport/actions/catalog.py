"""Actions and what triggers them: alert names and labels, firing or resolved, and limits.

An action is a callable ``fn(ctx)`` run off the request thread with an ``ActionContext``
(the matching alerts, a deadline, where to report bytes freed). ``@memexport.action(...)``
registers one in ``ACTIONS``, the process-wide set the receiver uses unless given another;
the built-in ``evidence`` and ``shed`` actions are registered the same way.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from memexport.actions.limits import Limiter, Limits
from memexport.actions.payload import STATUSES, Alert
from memexport.core import forks
from memexport.core.checks import shown

__all__ = ["ACTIONS", "MAX_ACTIONS", "Action", "ActionContext", "ActionSet", "Match", "action",
           "validate_action_name"]

#: Actions one set may hold (their names are a metric label).
MAX_ACTIONS = 50

_ACTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ALERT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*|\*")

F = TypeVar("F", bound=Callable[..., Any])


def validate_action_name(name: object) -> str:
    if not isinstance(name, str) or not _ACTION_NAME.fullmatch(name):
        raise ValueError(f"action name must be 1-64 characters from A-Z a-z 0-9 _ (not "
                         f"starting with a digit), got {shown(name)}")
    return name


@dataclass(frozen=True)
class Match:
    """Which alerts trigger an action: ``alerts`` (alert names, ``"*"`` for any), ``labels``
    (each label must have one of the values given), ``on`` (``firing``, ``resolved``)."""

    alerts: frozenset[str]
    labels: Mapping[str, frozenset[str]] = field(default_factory=dict)
    on: frozenset[str] = frozenset({"firing"})

    @classmethod
    def of(cls, alerts: str | Iterable[str], labels: Mapping[str, Any] | None = None,
           on: str | Iterable[str] = ("firing",)) -> Match:
        names = frozenset([alerts] if isinstance(alerts, str) else alerts)
        if not names:
            raise ValueError("alerts must name at least one alert name (or '*' for any)")
        for n in names:
            if not isinstance(n, str) or not _ALERT_NAME.fullmatch(n):
                raise ValueError(f"invalid alert name {shown(n)}")
        wanted: dict[str, frozenset[str]] = {}
        for k, v in (labels or {}).items():
            values = frozenset([v] if isinstance(v, str) else v)
            if not isinstance(k, str) or not values or not all(isinstance(x, str)
                                                               for x in values):
                raise ValueError(f"labels[{shown(k)}] must be a str or a list of str")
            wanted[k] = values
        statuses = frozenset([on] if isinstance(on, str) else on)
        if not statuses or not statuses <= set(STATUSES):
            raise ValueError(f"on must be 'firing' and/or 'resolved', got {shown(on)}")
        return cls(names, wanted, statuses)

    def matches(self, alert: Alert) -> bool:
        if alert.status not in self.on:
            return False
        if "*" not in self.alerts and alert.name not in self.alerts:
            return False
        return all(alert.labels.get(k) in vs for k, vs in self.labels.items())


class ActionContext:
    """What an action gets: the alerts that triggered it, its deadline, its report."""

    def __init__(self, action: str, status: str, alerts: tuple[Alert, ...], timeout: float,
                 report: Callable[[str, float], None] | None = None, *, registry: Any = None,
                 store: Any = None) -> None:
        self.action = action
        #: The memexport ``Registry`` whose components the action works on.
        self.registry = registry
        #: The ``EvidenceStore`` (None when no evidence directory is configured).
        self.store = store
        #: ``firing`` or ``resolved``.
        self.status = status
        self.alerts = alerts
        self.started = time.perf_counter()
        #: ``time.perf_counter()`` value to finish by; long steps check ``expired()``.
        self.deadline = self.started + timeout
        #: What the run found and did (numbers and names only), shown by ``GET /actions``.
        self.result: dict[str, Any] = {}
        self._report = report

    @property
    def alertname(self) -> str:
        return self.alerts[0].name if self.alerts else ""

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.perf_counter())

    def expired(self) -> bool:
        return time.perf_counter() >= self.deadline

    def freed(self, nbytes: float, step: str = "custom") -> None:
        """Report ``nbytes`` freed by ``step`` (``memexport_action_step_freed_bytes_total``)."""
        if nbytes > 0 and self._report is not None:
            self._report(step, float(nbytes))


class Action:
    """One registered action: its callable, its trigger and its limits."""

    def __init__(self, name: str, fn: Callable[[ActionContext], Any], match: Match,
                 limits: Limits | None = None, *, frees: bool = False, order: int = 50,
                 steps: tuple[str, ...] = ()) -> None:
        self.name = validate_action_name(name)
        if not callable(fn):
            raise ValueError(f"action {name!r} needs a callable, got {shown(fn)}")
        self.fn = fn
        self.match = match
        self.limits = limits or Limits()
        self.limiter = Limiter(self.limits)
        #: Frees memory: its bytes freed are exported (and watched by the rules).
        self.frees = frees
        #: Steps it reports freed bytes for (series that exist from the start).
        self.steps = steps
        #: Runs for one notification go in this order (evidence before shedding).
        self.order = order
        self.last: dict[str, Any] | None = None

    def __call__(self, ctx: ActionContext) -> Any:
        return self.fn(ctx)


class ActionSet:
    """Actions by name; the receiver matches every alert against them."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}
        self._lock = forks.RLock()
        self._listeners: list[Callable[[Action], None]] = []
        _sets.add(self)

    def add(self, act: Action, *, replace: bool = False) -> Action:
        with self._lock:
            if act.name in self._actions and not replace:
                raise ValueError(f"an action named {act.name!r} is already registered")
            if act.name not in self._actions and len(self._actions) >= MAX_ACTIONS:
                raise ValueError(f"at most {MAX_ACTIONS} actions can be registered")
            self._actions[act.name] = act
            listeners = list(self._listeners)
        for listener in listeners:
            listener(act)
        return act

    def remove(self, name: str) -> None:
        with self._lock:
            self._actions.pop(name, None)

    def get(self, name: str) -> Action | None:
        with self._lock:
            return self._actions.get(name)

    def all(self) -> list[Action]:
        with self._lock:
            return sorted(self._actions.values(), key=lambda a: (a.order, a.name))

    def on_add(self, listener: Callable[[Action], None]) -> None:
        """Call ``listener(action)`` for each action added from now on."""
        with self._lock:
            self._listeners.append(listener)

    def off_add(self, listener: Callable[[Action], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def matching(self, alerts: Iterable[Alert]) -> list[tuple[Action, str, tuple[Alert, ...]]]:
        """``(action, status, alerts)`` for each action some of ``alerts`` trigger, firing
        and resolved apart, in run order."""
        alerts = tuple(alerts)
        out = []
        for act in self.all():
            for status in STATUSES:
                hits = tuple(a for a in alerts if a.status == status and act.match.matches(a))
                if hits:
                    out.append((act, status, hits))
        return out

    def reset_after_fork(self) -> None:
        for act in list(self._actions.values()):
            act.limiter.reset_after_fork()


_sets: weakref.WeakSet[ActionSet] = weakref.WeakSet()


@forks.after_fork_in_child
def _after_fork() -> None:
    for action_set in list(_sets):
        action_set.reset_after_fork()


#: The process-wide actions (``@memexport.action`` registers here).
ACTIONS = ActionSet()


def _limits(max_runs: int, window: float, cooldown: float, timeout: float) -> Limits:
    return Limits(max_runs=max_runs, window=window, cooldown=cooldown, timeout=timeout)


@overload
def action(fn: F, *, name: str | None = ..., alerts: str | Iterable[str],
           labels: Mapping[str, Any] | None = ..., on: str | Iterable[str] = ...,
           max_runs: int = ..., window: float = ..., cooldown: float = ...,
           timeout: float = ..., frees: bool = ..., actions: ActionSet = ...) -> F: ...


@overload
def action(*, name: str | None = ..., alerts: str | Iterable[str],
           labels: Mapping[str, Any] | None = ..., on: str | Iterable[str] = ...,
           max_runs: int = ..., window: float = ..., cooldown: float = ...,
           timeout: float = ..., frees: bool = ..., actions: ActionSet = ...
           ) -> Callable[[F], F]: ...


def action(fn: Any = None, *, name: str | None = None, alerts: Any = None,
           labels: Mapping[str, Any] | None = None, on: Any = ("firing",), max_runs: int = 3,
           window: float = 3600.0, cooldown: float = 300.0, timeout: float = 30.0,
           frees: bool = False, actions: ActionSet = ACTIONS) -> Any:
    """Register ``fn(ctx)`` as an action run when Alertmanager reports one of ``alerts``.

    ``@memexport.action(alerts="MemexportCacheOverBudget", labels={"cache": "embeddings"})``
    on a function taking an ``ActionContext``. It runs on memexport's action thread, at most
    ``max_runs`` times per ``window`` seconds, ``cooldown`` seconds apart, one run at a time,
    and is stopped waiting for after ``timeout`` seconds (check ``ctx.expired()`` in loops).
    ``frees=True`` exports the bytes it reports with ``ctx.freed(n)``. Returns ``fn``.
    """
    if alerts is None:
        raise ValueError("action needs alerts= (alert names, or '*' for any alert)")
    match = Match.of(alerts, labels, on)
    limits = _limits(max_runs, window, cooldown, timeout)
    if not isinstance(frees, bool):
        raise ValueError(f"frees must be True or False, got {shown(frees)}")

    def register(f: F) -> F:
        actions.add(Action(name or str(getattr(f, "__name__", "")), f, match, limits, frees=frees,
                           steps=("custom",) if frees else ()))
        return f

    if name is not None:
        validate_action_name(name)
    return register if fn is None else register(fn)
