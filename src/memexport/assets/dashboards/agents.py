"""Dashboard "memexport / Agents & conversations": histories, agents, memory stores, cleanups,
agent runs and asyncio tasks."""

from __future__ import annotations

from typing import Any

from memexport.assets.dashboards.names import (
    ADAPTER,
    agent,
    asyncio_tasks,
    budget,
    cleanup,
    conversation,
    of,
)
from memexport.assets.dashboards.panels import (
    BYTES,
    COUNT,
    OPS,
    SECONDS,
    dashboard,
    dashed,
    label_variable,
    render,
    rows,
    stat,
    target,
    thresholds,
    timeseries,
)
from memexport.assets.dashboards.view import View

__all__ = ["TITLE", "build"]

TITLE = "memexport / Agents & conversations"
CV, AG, CL = "conversation", "agent", "cleanup"
LIVE_CONVERSATIONS = of(CV, "memexport_conversations")
CONVERSATIONS_CREATED = of(CV, "memexport_conversations_created_total")
CONVERSATIONS_FINALIZED = of(CV, "memexport_conversations_finalized_total")
LIVE_AGENTS = of(AG, "memexport_agents")
AGENTS_CREATED = of(AG, "memexport_agents_created_total")
AGENTS_FINALIZED = of(AG, "memexport_agents_finalized_total")


def _overview(v: View) -> list[Any]:
    dropped = v.rate(conversation.DROPPED, CV, by=None)
    failures = v.rate(cleanup.FAILURES, CL, by=None)
    return [
        stat("Live conversations (all)",
             [target(v, f"sum({v.metric(LIVE_CONVERSATIONS, CV)})", "live")], COUNT,
             description="Conversation objects (sessions) alive now, all names."),
        stat("Live agents (all)", [target(v, f"sum({v.metric(LIVE_AGENTS, AG)})", "live")],
             COUNT, description="Agents alive now, all names."),
        stat("Longest history (all)",
             [target(v, f"max({v.metric(conversation.LARGEST, CV)})", "max")], COUNT,
             description="Messages in the longest single live history."),
        stat("Messages dropped / s", [target(v, f"sum({dropped}) or vector(0)", "dropped")],
             OPS, description="Messages pushed out of full deques without a summary.",
             steps=thresholds((0.000001, "orange"))),
        stat("Agents over their limit",
             [target(v, f"sum({v.metric(agent.OVER, AG)}) or vector(0)", "over")], COUNT,
             description="Live agents whose memory store is bigger than their own limit.",
             steps=thresholds((1, "red"))),
        stat("Cleanup failures / s", [target(v, f"sum({failures}) or vector(0)", "failures")],
             OPS, description="Failed cleanup runs per second, the selected cleanups.",
             steps=thresholds((0.000001, "orange"))),
    ]


def _conversations(v: View) -> list[Any]:
    name = "{{instance}} {{conversation}}"

    def conv(metric: str, agg: str = "sum") -> str:
        return v.agg(metric, CV, agg=agg)

    def rate(metric: str) -> str:
        return v.rate(metric, CV, by=(CV,))

    return [
        timeseries("Live conversations", [target(v, conv(LIVE_CONVERSATIONS), name)], COUNT,
                   description="Live conversation objects per name (one per session is "
                   "normal)."),
        timeseries("Sessions started / ended per second",
                   [target(v, rate(CONVERSATIONS_CREATED), f"{name} started"),
                    target(v, rate(CONVERSATIONS_FINALIZED), f"{name} ended")], OPS,
                   description="Conversation objects created and garbage-collected per "
                   "second."),
        timeseries("Messages held", [target(v, conv(conversation.MESSAGES), name)], COUNT,
                   description="Messages held by the live histories of each name, summed."),
        timeseries("Longest history", [target(v, conv(conversation.LARGEST, "max"), name)],
                   COUNT, description="Messages in the longest single history: a history "
                   "growing without bound shows here, a busy hour does not."),
        timeseries("History bytes vs budget",
                   [target(v, conv(conversation.BYTES), name),
                    target(v, conv(budget(CV), "max"), f"{name} budget")], BYTES,
                   description="Deep size of the live histories (sampled on the collector "
                   "thread), with the budget set by memexport.budget(kind='conversation').",
                   overrides=[dashed(".* budget")]),
        timeseries("Messages added / summarised / dropped per second",
                   [target(v, rate(conversation.ADDED), f"{name} added"),
                    target(v, rate(conversation.SUMMARIZED), f"{name} summarised"),
                    target(v, rate(conversation.DROPPED), f"{name} dropped")], OPS,
                   description="Dropped messages left a full deque without a summary: lost "
                   "context."),
        timeseries("Summaries held", [target(v, conv(conversation.SUMMARIES), name)], COUNT,
                   description="Summaries held by the live histories."),
        timeseries("LangGraph checkpoints, writes, threads",
                   [target(v, conv(ADAPTER.CHECKPOINTS), f"{name} checkpoints"),
                    target(v, conv(ADAPTER.CHECKPOINT_WRITES), f"{name} writes"),
                    target(v, conv(ADAPTER.THREADS), f"{name} threads")], COUNT,
                   description="What LangGraph in-memory savers hold: every checkpoint of every "
                   "thread, until delete_thread()."),
    ]


def _agents(v: View) -> list[Any]:
    name = "{{instance}} {{agent}}"

    def ag(metric: str, agg: str = "sum") -> str:
        return v.agg(metric, AG, agg=agg)

    def rate(metric: str) -> str:
        return v.rate(metric, AG, by=(AG,))

    return [
        timeseries("Live agents", [target(v, ag(LIVE_AGENTS), name)], COUNT,
                   description="Live agents per name: rising steadily is a leak."),
        timeseries("Agents created / finalized per second",
                   [target(v, rate(AGENTS_CREATED), f"{name} created"),
                    target(v, rate(AGENTS_FINALIZED), f"{name} finalized")], OPS,
                   description="Created above finalized for long is an agent leak."),
        timeseries("Agent memory vs limit",
                   [target(v, ag(agent.BYTES), name),
                    target(v, ag(agent.LIMIT), f"{name} limit"),
                    target(v, ag(budget(AG), "max"), f"{name} budget")], BYTES,
                   description="Deep size of the agents' memory stores against their own "
                   "limits (summed over live agents) and the budget.",
                   overrides=[dashed(".* (limit|budget)")]),
        timeseries("Agents over their own limit", [target(v, ag(agent.OVER), name)], COUNT,
                   description="Live agents whose store is bigger than their own limit."),
        timeseries("Memory items and weak references",
                   [target(v, ag(agent.ITEMS), f"{name} items"),
                    target(v, ag(agent.WEAK), f"{name} weak refs")], COUNT,
                   description="Entries in the memory stores; weak references still alive."),
        timeseries("Agent cleanups and evictions per second",
                   [target(v, rate(agent.CLEANUPS), f"{name} cleanups"),
                    target(v, rate(agent.EVICTED), f"{name} evicted")], OPS,
                   description="The agents' own cleanups and the entries they removed."),
        timeseries("Time since an agent's last cleanup",
                   [target(v, f"time() - {ag(agent.LAST_CLEANUP, 'max')}", name)], SECONDS,
                   description="Since the latest cleanup of any live agent of the name."),
    ]


def _runs_and_tasks(v: View) -> list[Any]:
    name = "{{instance}} {{agent}}"
    tasks = "{{instance}} {{loop}} {{coroutine}}"
    return [
        timeseries("Agent runs per second, and runs going",
                   [target(v, v.rate(ADAPTER.AGENT_RUNS, AG, by=(AG,)), f"{name} runs"),
                    target(v, v.rate(ADAPTER.AGENT_RUN_FAILURES, AG, by=(AG,)),
                           f"{name} failed"),
                    target(v, v.agg(ADAPTER.AGENT_RUNS_ACTIVE, AG), f"{name} going")], OPS,
                   description="Runs started with each agent (OpenAI Agents SDK Runner.run, "
                   "run_sync, run_streamed), those that raised, and runs still going (a count, "
                   "on the same axis)."),
        timeseries("Pending asyncio tasks by coroutine",
                   [target(v, v.agg(asyncio_tasks.TASKS, by=("loop", "coroutine")), tasks)],
                   COUNT, description="Pending tasks per loop and coroutine (opt-in "
                   "track_asyncio_tasks(); the rarest names under __overflow__). Rising "
                   "steadily is a task leak (MemexportAsyncioTasksLeaking)."),
        timeseries("Oldest pending asyncio task",
                   [target(v, v.agg(asyncio_tasks.AGE, agg="max", by=("loop", "coroutine")),
                           tasks)], SECONDS,
                   description="How long the oldest pending task of each coroutine has waited "
                   "(since a scrape first saw it). A long-lived server task grows here by "
                   "design."),
    ]


def _cleanups(v: View) -> list[Any]:
    name = "{{instance}} {{cleanup}}"
    runs = v.rate(cleanup.RUNS, CL, by=(CL,), fn="increase")
    freed = v.rate(cleanup.FREED, CL, by=(CL,), fn="increase")
    freed_tracked = v.rate(cleanup.FREED_TRACKED, CL, by=(CL,), fn="increase")
    duration = v.rate(f"{cleanup.DURATION}_bucket", CL, by=(CL, "le"))
    return [
        timeseries("Cleanup runs and failures per second",
                   [target(v, v.rate(cleanup.RUNS, CL, by=(CL,)), f"{name} runs"),
                    target(v, v.rate(cleanup.FAILURES, CL, by=(CL, "exception")),
                           f"{name} failed: {{{{exception}}}}")], OPS,
                   description="Runs of each memexport.cleanup, and failures by exception "
                   "type."),
        timeseries("Time since last success vs period",
                   [target(v, f"time() - {v.agg(cleanup.LAST_SUCCESS, CL, agg='max')}", name),
                    target(v, f"2 * {v.agg(cleanup.PERIOD, CL, agg='max')}",
                           f"{name} 2x period")], SECONDS,
                   description="MemexportCleanupStale fires when the first line crosses the "
                   "second (twice the period by default).", overrides=[dashed(".* 2x period")]),
        timeseries("Bytes freed per run",
                   [target(v, f"{freed} / {runs}", f"{name} rss"),
                    target(v, f"{freed_tracked} / {runs}", f"{name} tracked")], BYTES,
                   description="RSS returned to the OS, and tracked conversation/agent bytes "
                   "freed (tracked=True), per run."),
        timeseries("Cleanup duration (p50, p99)",
                   [target(v, f"histogram_quantile(0.5, {duration})", f"{name} p50"),
                    target(v, f"histogram_quantile(0.99, {duration})", f"{name} p99")],
                   SECONDS, description="How long cleanup runs take."),
    ]


def build(v: View) -> dict[str, Any]:
    """The agents & conversations dashboard as Grafana JSON."""
    d = dashboard(
        v, "agents", TITLE,
        "Conversation histories, agents and cleanup jobs tracked with memexport.conversation, "
        "memexport.agent and memexport.cleanup: live sessions and agents, messages and bytes "
        "per name, the longest history, messages dropped without a summary, agent memory "
        "against its own limit, created vs finalized agents, cleanup runs, failures, freed "
        "bytes and time since the last success, agent runs and pending asyncio tasks.",
        extra_variables=[label_variable(v, CV, LIVE_CONVERSATIONS),
                         label_variable(v, AG, LIVE_AGENTS),
                         label_variable(v, CL, cleanup.RUNS)],
    )
    return render(rows(d, ("Overview", _overview(v)), ("Conversations", _conversations(v)),
                       ("Agents", _agents(v)),
                       ("Agent runs and asyncio tasks", _runs_and_tasks(v)),
                       ("Cleanups", _cleanups(v))))
