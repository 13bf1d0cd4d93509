"""Budgets as data: a limit exported next to the usage it bounds, compared in alert rules."""

from __future__ import annotations

import math

from memexport.core.checks import shown
from memexport.core.registry import REGISTRY, Registry

__all__ = ["budget"]


def budget(
    limit_bytes: float,
    *,
    kind: str | None = None,
    name: str | None = None,
    registry: Registry = REGISTRY,
) -> None:
    """Export a memory budget: for the whole process, or for the ``kind`` component ``name``.

    ``budget(2 * 2**30)`` exports ``memexport_process_memory_budget_bytes``;
    ``budget(50 * 2**20, kind="cache", name="llm_responses")`` exports
    ``memexport_cache_budget_bytes{cache="llm_responses"}``. The alert rules compare each with
    its usage, replacing in-process checks such as the guide's ``MemoryBudgetManager``.
    Setting a budget again replaces it.
    """
    if (isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int | float)
            or not math.isfinite(limit_bytes) or limit_bytes <= 0):
        raise ValueError(f"budget limit_bytes must be a positive finite number, got "
                         f"{shown(limit_bytes)}")
    if kind is None and name is not None:
        raise ValueError(f"budget name {shown(name)} needs a kind= (e.g. kind='cache')")
    if kind is not None and name is None:
        raise ValueError(f"budget for kind {shown(kind)} needs a name= naming the component")
    registry.set_budget(float(limit_bytes), kind, name)
