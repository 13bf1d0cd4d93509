"""The metric names the dashboards query, from the modules that export them: the kinds' tables
(with their HELP text, appended to the panels that show them), the process collector, the
RSS ledger, cgroup and tracemalloc readers, the registry, the actions' metrics
(``memexport.actions.metrics``) and prometheus_client's standard names. Renaming a metric
there renames it here; a metric a table drops is a KeyError here.

Adapter metrics (httpx, OpenAI Agents SDK, LangGraph) are written out: importing an adapter
module extends its kind's table as a side effect (and the LangGraph one imports langgraph),
which generating assets must not do; tests/test_dashboards.py holds them equal to the adapter
modules' constants.
"""

from __future__ import annotations

from memexport.actions import metrics as actions
from memexport.core import registry as core
from memexport.core.model import Kind
from memexport.integrations import asyncio_tasks
from memexport.kinds import cleanup
from memexport.kinds.agent import table as agent
from memexport.kinds.cache import table as cache
from memexport.kinds.conversation import table as conversation
from memexport.kinds.pool import table as pool
from memexport.process import cgroup, collector, gcpause, ledger, tracesites

__all__ = ["ADAPTER", "HELP", "KINDS", "STANDARD", "actions", "agent", "asyncio_tasks",
           "budget", "cache", "cgroup", "cleanup", "collector", "conversation", "core",
           "gcpause", "ledger", "of", "pool", "tracesites"]

#: The component kinds, by the config key of their label (``labels.cache``, ...).
KINDS: dict[str, Kind] = {"cache": cache.KIND, "pool": pool.KIND,
                          "conversation": conversation.KIND, "agent": agent.KIND,
                          "cleanup": cleanup.KIND}


class STANDARD:
    """prometheus_client's standard process and GC series (DESIGN.md keeps their names)."""

    RSS = "process_resident_memory_bytes"
    VMS = "process_virtual_memory_bytes"
    OPEN_FDS = "process_open_fds"
    MAX_FDS = "process_max_fds"
    START = "process_start_time_seconds"
    GC_COLLECTED = "python_gc_objects_collected_total"
    GC_UNCOLLECTABLE = "python_gc_objects_uncollectable_total"
    GC_COLLECTIONS = "python_gc_collections_total"
    UP = "up"  # Prometheus's own, per scrape target


class ADAPTER:
    """Metrics that adapters add to a kind (see the module docstring)."""

    POOL_EXPIRED = "memexport_pool_expired_total"  # integrations/httpx.py EXPIRED
    AGENT_RUNS = "memexport_agent_runs_total"  # integrations/openai_agents.py RUNS
    AGENT_RUNS_ACTIVE = "memexport_agent_runs_active"  # ... ACTIVE
    AGENT_RUN_FAILURES = "memexport_agent_run_failures_total"  # ... FAILURES
    CHECKPOINTS = "memexport_conversation_checkpoints"  # integrations/langgraph.py CHECKPOINTS
    CHECKPOINT_WRITES = "memexport_conversation_checkpoint_writes"  # ... WRITES
    THREADS = "memexport_conversation_threads"  # ... THREADS


def of(kind: str, name: str) -> str:
    """``name`` if the table of ``kind`` defines it (a KeyError naming it otherwise)."""
    if name not in KINDS[kind].by_name:
        raise KeyError(f"{name!r} is not a metric of the {kind} kind's table")
    return name


def budget(kind: str) -> str:
    """The budget gauge of ``kind`` (``memexport_<kind>_budget_bytes``)."""
    return KINDS[kind].budget_metric


#: HELP text of every metric a kind's own table defines.
HELP: dict[str, str] = {m.name: m.help for k in KINDS.values() for m in k.own}
