"""The bounded referrer report: which types grew, and what holds a sample of their instances.

``gc.get_objects()`` counts the live objects the collector tracks by type; the types whose
count grew most since the last report (the first report: the most numerous) get a sample of
``SAMPLE`` instances whose referrers are found in one ``gc.get_referrers`` pass and counted
by type. Only type names and counts are written. It costs a walk of every tracked object
(about 0.1 s per million) and one more per report: off by default, and time-boxed.
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from memexport.actions.catalog import ActionContext
    from memexport.actions.sections import EvidenceState

__all__ = ["SAMPLE", "referrer_report", "type_counts"]

#: Instances of each growing type whose referrers are looked at.
SAMPLE = 20
#: Referrer types listed per growing type.
TOP_REFERRERS = 10


def _type_name(t: type) -> str:
    module = getattr(t, "__module__", "") or ""
    return t.__qualname__ if module == "builtins" else f"{module}.{t.__qualname__}"


def type_counts(objs: list[Any]) -> dict[str, int]:
    counts: Counter[type] = Counter(type(o) for o in objs)
    return {_type_name(t): n for t, n in counts.items()}


def referrer_report(state: EvidenceState, ctx: ActionContext) -> Any:
    """Top growing types with the types of their referrers (see the module docstring)."""
    objs = gc.get_objects()
    try:
        by_type: dict[str, type] = {}
        for o in objs:
            t = type(o)
            by_type.setdefault(_type_name(t), t)
        counts = type_counts(objs)
        base = state.type_counts
        state.type_counts = counts
        if base is None:
            growth = dict(counts)
        else:
            growth = {n: c - base.get(n, 0) for n, c in counts.items()}
        top = sorted((n for n in growth if growth[n] > 0), key=lambda n: growth[n],
                     reverse=True)[:state.referrer_types]
        report: list[dict[str, Any]] = []
        me = sys._getframe()
        for name in top:
            if ctx.expired():
                report.append({"type": name, "skipped": "deadline"})
                continue
            t = by_type[name]
            sample = [o for o in objs if type(o) is t][:SAMPLE]
            held: Counter[str] = Counter()
            for ref in gc.get_referrers(*sample):
                if ref is objs or ref is sample or ref is me:
                    continue
                held[_type_name(type(ref))] += 1
            del sample
            report.append({"type": name, "count": counts[name], "growth": growth[name],
                           "sampled": min(SAMPLE, counts[name]),
                           "referrers": dict(held.most_common(TOP_REFERRERS))})
        return {"objects": len(objs), "since_last": base is not None, "types": report}
    finally:
        del objs
