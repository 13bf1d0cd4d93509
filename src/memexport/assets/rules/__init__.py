"""The rule files, built from a :class:`~memexport.assets.config.Config`: one module per area."""

from __future__ import annotations

from memexport.assets.rules import agents, caches, pools, process
from memexport.assets.rules.common import Q

__all__ = ["AREAS", "build"]

#: Rule file stem -> builder of its groups, in file order.
AREAS = {
    "process": process.groups,
    "caches": caches.groups,
    "pools": pools.groups,
    "agents": agents.groups,
}


def build(q: Q) -> dict[str, list[dict[str, object]]]:
    """``{file stem: [group, ...]}`` for every rule file."""
    return {stem: fn(q) for stem, fn in AREAS.items()}
