"""OpenAI Agents SDK (``openai-agents``, module ``agents``): sessions as conversations, agents
and their runs, an adapter of the conversation and agent kinds.

Asked only once ``agents`` is imported.

- ``memexport.conversation(session, name)``: any session (``SQLiteSession``, in memory or on a
  file, and every ``SessionABC`` or object with the ``Session`` protocol's coroutines). Items
  live in the session's database, which a scrape never queries: memexport counts them where
  they change, on the session's class (once; sessions not tracked pass straight through):
  ``add_items`` adds ``len(items)``, ``pop_item`` drops one, ``clear_session`` drops them all.
  ``memexport_conversation_messages`` is what this process added minus what it removed, plus,
  for a ``SQLiteSession``, the rows the session already had when it was instrumented (one
  ``COUNT(*)`` then, on the caller's thread, under the session's own lock). Other processes
  writing to the same database are not seen.
- ``memexport.agent(agent, name)``: an ``agents.Agent``'s lifecycle, and its runs: every run
  that starts with it (``Runner.run``, ``run_sync``, ``run_streamed``) counts in
  ``memexport_agent_runs_total``; runs still going in ``memexport_agent_runs_active`` (a
  streamed run until its stream completes); runs that raised in
  ``memexport_agent_run_failures_total``. The SDK's ``AgentRunner`` methods are replaced once
  and pass runs of agents not tracked straight through; ``undo()`` restores them.
"""

from __future__ import annotations

import contextvars
import inspect
import sys
import weakref
from collections.abc import Callable
from typing import Any

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import Component, Index, Profile
from memexport.instrument import patching
from memexport.instrument.kind import Shape
from memexport.kinds.agent.shapes import StoreShape, agent_profile
from memexport.kinds.agent.table import KIND as AGENT_KIND
from memexport.kinds.agent.table import AgentInfo, AgentOptions
from memexport.kinds.conversation.table import LARGEST, MESSAGES, ConversationOptions

__all__ = ["ACTIVE", "FAILURES", "METRICS", "RUNS", "AgentShape", "SessionShape", "shapes",
           "undo"]

RUNS = "memexport_agent_runs_total"
ACTIVE = "memexport_agent_runs_active"
FAILURES = "memexport_agent_run_failures_total"
METRICS = (
    MetricDef(RUNS, "counter", "Runs started with an agent of this name as the starting agent."),
    MetricDef(ACTIVE, "gauge", "Runs of the agents of this name still going."),
    MetricDef(FAILURES, "counter", "Runs of the agents of this name that raised."),
)
AGENT_KIND.extend(*METRICS)

_TAG = "agent:openai-agents-runs"
_SESSION_METHODS = ("add_items", "pop_item", "clear_session", "get_items")
#: Set while a tracked session's method runs: a subclass calling ``super()`` counts once.
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("memexport_session", default=False)
#: The agent whose run is being counted (``run_sync`` runs ``run`` in a task: counted once).
_running: contextvars.ContextVar[int] = contextvars.ContextVar("memexport_run", default=0)

Patches = dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]


def _class(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


# -- sessions ----------------------------------------------------------------------------------


def is_session_class(cls: type) -> bool:
    base = _class("agents.memory.session", "SessionABC")
    if base is not None and issubclass(cls, base):
        return True
    return all(inspect.iscoroutinefunction(getattr(cls, m, None)) for m in _SESSION_METHODS)


class _Items:
    """A tracked session's item count, kept by memexport (the component's ``state``)."""

    __slots__ = ("n",)

    def __init__(self, n: int = 0) -> None:
        self.n = n


def _count(_obj: Any, comp: Component) -> int | None:
    state = comp.state
    return state.n if isinstance(state, _Items) else None


def _items_of(comp: Component) -> _Items:
    state = comp.state
    if not isinstance(state, _Items):  # an instance of a decorated class: from its first call
        state = comp.state = _Items()
    return state


def _rows(session: Any) -> int:
    """The rows a ``SQLiteSession`` holds now (0 when that cannot be read)."""
    sqlite_cls = _class("agents.memory.sqlite_session", "SQLiteSession")
    if sqlite_cls is None or not isinstance(session, sqlite_cls):
        return 0
    s: Any = session
    try:
        with s._locked_connection() as conn:
            row = conn.execute(f"SELECT COUNT(*) FROM {s.messages_table} "
                               f"WHERE session_id = ?", (s.session_id,)).fetchone()
        return int(row[0])
    except Exception:  # closed, another schema: start from what memexport sees
        return 0


def _session_patch(index: Index, method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    get = index.get

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(self))
            if comp is None or _inside.get():
                return await original(self, *args, **kwargs)
            token = _inside.set(True)
            state = _items_of(comp)
            try:
                if method == "add_items":
                    items = args[0] if args else kwargs.get("items", ())
                    result = await original(self, *args, **kwargs)
                    k = len(items) if hasattr(items, "__len__") else 0
                    if k:
                        state.n += k
                        comp.group.handles.added_many(k)
                    return result
                if method == "pop_item":
                    result = await original(self, *args, **kwargs)
                    if result is not None:
                        state.n = max(0, state.n - 1)
                        comp.group.handles.dropped()
                    return result
                before = state.n  # clear_session
                result = await original(self, *args, **kwargs)
                state.n = 0
                if before:
                    comp.group.handles.dropped_many(before)
                return result
            finally:
                _inside.reset(token)
        wrapper.__name__ = method
        wrapper.__doc__ = original.__doc__
        return wrapper
    return factory


class SessionShape(Shape):
    """An Agents SDK session: item counts kept where items are added and removed."""

    style = "patch"
    label = "an OpenAI Agents SDK session"

    def matches(self, obj: Any, opts: ConversationOptions) -> bool:
        return not opts.explicit and not isinstance(obj, type) and is_session_class(type(obj))

    def matches_class(self, cls: type, opts: ConversationOptions) -> bool:
        return not opts.explicit and is_session_class(cls)

    def profile(self, obj: Any, opts: ConversationOptions, kind: Kind) -> Profile:
        return Profile(kind, {}, with_comp={MESSAGES: _count, LARGEST: _count})

    def patches(self, cls: type, index: Index, opts: ConversationOptions,
                profile: Profile | None) -> Patches:
        return {m: _session_patch(index, m) for m in ("add_items", "pop_item", "clear_session")
                if inspect.iscoroutinefunction(getattr(cls, m, None))}

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        comp.state = _Items(_rows(obj))


# -- agents and runs ---------------------------------------------------------------------------


class _Runs:
    """A tracked agent's runs in flight (the component's ``state``)."""

    __slots__ = ("going", "streams")

    def __init__(self) -> None:
        self.going = 0
        #: Streamed runs, weakly (a ``RunResultStreaming`` is an unhashable dataclass).
        self.streams: dict[int, weakref.ref[Any]] = {}

    def stream(self, result: Any) -> None:
        for key, ref in list(self.streams.items()):  # forget the finished ones
            r = ref()
            if r is None or getattr(r, "is_complete", True):
                self.streams.pop(key, None)
        self.streams[id(result)] = weakref.ref(result)

    def active(self) -> int:
        going = 0
        for ref in list(self.streams.values()):
            r = ref()
            if r is not None and not getattr(r, "is_complete", True):
                going += 1
        return self.going + going


def _active(_obj: Any, comp: Component) -> int | None:
    state = comp.state
    return state.active() if isinstance(state, _Runs) else None


def _starting(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("starting_agent")


def _runs_of(comp: Component) -> _Runs:
    state = comp.state
    if not isinstance(state, _Runs):  # an instance of a decorated class: from its first run
        state = comp.state = _Runs()
    return state


def _run_patches(index: Index) -> Patches:
    def get(agent_id: int) -> Component | None:
        return None if agent_id == _running.get() else index.get(agent_id)

    def run_async(original: Callable[..., Any]) -> Callable[..., Any]:
        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(_starting(args, kwargs)))
            if comp is None:
                return await original(self, *args, **kwargs)
            runs = _runs_of(comp)
            comp.group.counter(RUNS).inc()
            runs.going += 1
            token = _running.set(id(_starting(args, kwargs)))
            try:
                return await original(self, *args, **kwargs)
            except BaseException:
                comp.group.counter(FAILURES).inc()
                raise
            finally:
                _running.reset(token)
                runs.going -= 1
        run.__doc__ = original.__doc__
        return run

    def run_sync(original: Callable[..., Any]) -> Callable[..., Any]:
        def run_sync(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(_starting(args, kwargs)))
            if comp is None:
                return original(self, *args, **kwargs)
            runs = _runs_of(comp)
            comp.group.counter(RUNS).inc()
            runs.going += 1
            token = _running.set(id(_starting(args, kwargs)))
            try:
                return original(self, *args, **kwargs)
            except BaseException:
                comp.group.counter(FAILURES).inc()
                raise
            finally:
                _running.reset(token)
                runs.going -= 1
        run_sync.__doc__ = original.__doc__
        return run_sync

    def run_streamed(original: Callable[..., Any]) -> Callable[..., Any]:
        def run_streamed(self: Any, *args: Any, **kwargs: Any) -> Any:
            comp = get(id(_starting(args, kwargs)))
            token = _running.set(id(_starting(args, kwargs))) if comp is not None else None
            try:
                result = original(self, *args, **kwargs)
            except BaseException:
                if comp is not None:
                    comp.group.counter(RUNS).inc()
                    comp.group.counter(FAILURES).inc()
                raise
            finally:
                if token is not None:
                    _running.reset(token)
            if comp is not None:
                comp.group.counter(RUNS).inc()
                try:
                    _runs_of(comp).stream(result)
                except TypeError:  # not weak-referenceable: counted, never active
                    pass
            return result
        run_streamed.__doc__ = original.__doc__
        return run_streamed

    return {"run": run_async, "run_sync": run_sync, "run_streamed": run_streamed}


def _patch_runner(index: Index) -> None:
    runner = _class("agents.run", "AgentRunner")
    if runner is None:
        return
    for attr, factory in _run_patches(index).items():
        if callable(getattr(runner, attr, None)):
            patching.patch(runner, attr, factory, _TAG)


def undo() -> None:
    """Restore the SDK's ``AgentRunner`` methods (called by ``adapters.unload``)."""
    runner = _class("agents.run", "AgentRunner")
    if runner is None:
        return
    for attr in ("run", "run_sync", "run_streamed"):
        fn = vars(runner).get(attr)
        if getattr(fn, patching.MARK, None) == _TAG:
            patching.unpatch(runner, attr)


def is_agent(obj: Any) -> bool:
    cls = _class("agents.agent", "Agent")
    return cls is not None and not isinstance(obj, type) and isinstance(obj, cls)


class AgentShape(StoreShape):
    """An ``agents.Agent``: its lifecycle and its runs (it keeps no memory of its own)."""

    label = "an OpenAI Agents SDK Agent"

    def matches(self, obj: Any, opts: AgentOptions) -> bool:
        return not opts.explicit and is_agent(obj)

    def agent_info(self, obj_or_cls: Any, opts: AgentOptions) -> AgentInfo:
        return AgentInfo()

    def profile(self, obj: Any, opts: AgentOptions, kind: Kind) -> Profile:
        profile = agent_profile(kind, AgentInfo(), obj)
        profile.with_comp[(ACTIVE, ())] = _active
        return profile

    def patches(self, cls: type, index: Index, opts: AgentOptions, profile: Profile | None
                ) -> Patches:
        _patch_runner(index)  # the runner's methods, not the agent class's: once
        return {}

    def wired(self, target: Any, obj: Any, comp: Component, handles: Any, opts: Any) -> None:
        comp.state = _Runs()
        for metric in (RUNS, FAILURES):
            comp.group.counter(metric)  # from 0


_CONVERSATION = (SessionShape(),)
_AGENT = (AgentShape(),)


def shapes(kind: str) -> tuple[Shape, ...]:
    """The shapes this adapter adds to ``kind``."""
    return _CONVERSATION if kind == "conversation" else _AGENT if kind == "agent" else ()
