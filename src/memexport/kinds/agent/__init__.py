"""Agents: live, created and finalized per name, memory stores against their own limits, cleanups.

``memexport.agent(obj_or_class, name)`` tracks agent objects. A leak shows as live agents
(created minus finalized) rising; a memory store outgrowing its budget as
``memexport_agent_memory_bytes`` over ``memexport_agent_memory_limit_bytes``. Each agent is
one registry component in its name's group, read with a profile built once per class; the
shapes it recognises are in ``memexport.kinds.agent.shapes``. For shapes memexport does not
recognise pass ``memory``, ``limit_bytes``, ``weak_refs``, ``cleanup`` and ``last_cleanup``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from memexport.core.registry import REGISTRY, Registry
from memexport.instrument.kind import NOT_GIVEN, KindSpec
from memexport.kinds.agent.shapes import CacheHandlerShape, GenericShape
from memexport.kinds.agent.table import EVENTS, KIND, AgentInfo, AgentOptions, options

__all__ = ["EVENTS", "KIND", "SPEC", "AgentInfo", "AgentOptions", "agent"]

T = TypeVar("T")

SPEC = KindSpec(KIND, EVENTS, (CacheHandlerShape(), GenericShape()), what="agent",
                hint="pass memory= (the attribute or callable giving its memory store)")


@overload
def agent(obj: T, name: str, *, memory: Any = ..., limit_bytes: Any = ..., weak_refs: Any = ...,
          cleanup: str | None = ..., last_cleanup: Any = ..., registry: Registry = ...) -> T: ...


@overload
def agent(*, name: str, memory: Any = ..., limit_bytes: Any = ..., weak_refs: Any = ...,
          cleanup: str | None = ..., last_cleanup: Any = ...,
          registry: Registry = ...) -> Callable[[T], T]: ...


def agent(obj: Any = NOT_GIVEN, name: Any = None, *, memory: Any = None,
          limit_bytes: Any = None, weak_refs: Any = None, cleanup: str | None = None,
          last_cleanup: Any = None, registry: Registry = REGISTRY) -> Any:
    """Track an agent (or, on a class, every instance it creates) under ``name``.

    ``agent = memexport.agent(MemoryManagedAgent("planner", memory_limit_mb=100),
    "planner")`` returns the same object, tracked; ``@memexport.agent(name="researcher")`` on
    a class tracks each instance it creates. For shapes memexport does not recognise pass
    ``memory`` (attribute name or callable returning the store: dict, list, deque or set),
    ``limit_bytes`` (a number, attribute or callable), ``weak_refs``, ``cleanup`` (the method
    that trims the store) and ``last_cleanup`` (datetime or unix seconds). The agent is held
    weakly.
    """
    opts = options(memory=memory, limit_bytes=limit_bytes, weak_refs=weak_refs,
                   cleanup=cleanup, last_cleanup=last_cleanup)
    if obj is NOT_GIVEN:
        SPEC.check_call(name, registry)
        return lambda target: SPEC.instrument(target, name, registry, opts)
    return SPEC.instrument(obj, name, registry, opts)
