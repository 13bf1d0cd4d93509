"""The rule files, built from a :class:`~memexport.assets.config.Config`: one module per area,
plus the files written by hand in ``handwritten/`` (see its README)."""

from __future__ import annotations

from collections.abc import Callable

from memexport.assets.rules import actions, agents, caches, memory, pools, process, tasks
from memexport.assets.rules.common import Q

__all__ = ["AREAS", "build"]

#: Rule file stem -> builder of its groups, in file order. A hand-written file goes in
#: ``handwritten/`` instead: see rules/handwritten.py.
AREAS: dict[str, Callable[[Q], list[dict[str, object]]]] = {
    "process": process.groups,
    "caches": caches.groups,
    "pools": pools.groups,
    "agents": agents.groups,
    "memory": memory.groups,
    "tasks": tasks.groups,
    "actions": actions.groups,
}


def build(q: Q) -> dict[str, list[dict[str, object]]]:
    """``{file stem: [group, ...]}`` for every generated rule file."""
    return {stem: fn(q) for stem, fn in AREAS.items()}
