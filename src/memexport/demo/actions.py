"""The demo's actions: Alertmanager's webhook on the demo's ``/metrics`` server.

The memory alerts trigger ``evidence`` (written to ``--evidence-dir``, a temporary directory
removed at exit by default) and ``shed``: the leaking request memo is emptied, the response
cache halved, support histories summarised by a ``@trimmer`` hook, the ``ballast`` cleanup
run, then ``gc.collect()`` and ``malloc_trim(0)``. ``--actions-token`` (or
``MEMEXPORT_ACTIONS_TOKEN``) requires a bearer token; without one the receiver answers on
loopback only, as the demo's server listens there by default.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import memexport
from memexport.actions import ActionService, evidence, shed, trimmer

__all__ = ["MEMORY_ALERTS", "setup", "summarise"]

#: The alerts the demo acts on (alerts/process.rules.yml, alerts/memory.rules.yml).
MEMORY_ALERTS = ("MemexportProcessMemoryNearLimit", "MemexportProcessMemoryGrowing",
                 "MemexportProcessMemoryLimitPredicted", "MemexportProcessOverBudget",
                 "MemexportCacheOverBudget", "MemexportCacheGrowingUnbounded",
                 "MemexportConversationOverBudget", "MemexportConversationHistoryGrowing")


@trimmer("support")
def summarise(manager: Any, fraction: float) -> None:
    """Fold the oldest ``fraction`` of a support session into a summary (the guide's way)."""
    history = manager.conversation_history
    n = int(len(history) * fraction)
    if n:
        taken = [history.popleft() for _ in range(n)]
        manager.summaries.append({"type": "summary", "message_count": len(taken)})


def setup(server: memexport.MetricsServer, *, token: str | None, evidence_dir: str | None,
          cooldown: float) -> tuple[ActionService, Callable[[], None]]:
    """Start the receiver on ``server``; returns it and what to call at exit."""
    own_dir = evidence_dir is None
    directory = (tempfile.mkdtemp(prefix="memexport-demo-evidence-") if evidence_dir is None
                 else evidence_dir)
    acts = [
        evidence(alerts=MEMORY_ALERTS, cooldown=cooldown, referrers=True),
        shed(alerts=MEMORY_ALERTS, cooldown=cooldown,
             caches={"request_memo": 1.0, "llm_responses": 0.5}, histories=("support",),
             cleanups=("ballast",)),
    ]
    service = memexport.start_actions(server, bearer_token=token, evidence_dir=directory,
                                      actions=acts)

    def stop() -> None:
        service.close()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)

    return service, stop
