"""Dashboard "memexport / Agents & conversations": histories, agents, memory stores, cleanups."""

from __future__ import annotations

from typing import Any

from dashboards_src.common import (
    BYTES,
    COUNT,
    OPS,
    SECONDS,
    dashboard,
    dashed,
    label_variable,
    metric,
    rate,
    render,
    row,
    stat,
    target,
    thresholds,
    timeseries,
)

UID = "memexport-agents"
TITLE = "memexport / Agents & conversations"

BY_CONV = ("instance", "conversation")
BY_AGENT = ("instance", "agent")
BY_CLEANUP = ("instance", "cleanup")

DROPPED = rate("memexport_conversation_messages_dropped_total", "conversation", by=None)
RUNS_INC = rate("memexport_cleanup_runs_total", by=BY_CLEANUP, fn="increase")
FREED_RSS = rate("memexport_cleanup_freed_bytes_total", by=BY_CLEANUP, fn="increase")
FREED_TRACKED = rate("memexport_cleanup_freed_tracked_bytes_total", by=BY_CLEANUP, fn="increase")
DURATION = rate("memexport_cleanup_duration_seconds_bucket", by=(*BY_CLEANUP, "le"))


def _conv(name: str, agg: str = "sum") -> str:
    return f"{agg} by (instance, conversation) ({metric(name, 'conversation')})"


def _agent(name: str, agg: str = "sum") -> str:
    return f"{agg} by (instance, agent) ({metric(name, 'agent')})"


def _cleanup(name: str, agg: str = "max") -> str:
    return f"{agg} by (instance, cleanup) ({metric(name)})"


def build() -> dict[str, Any]:
    """The agents & conversations dashboard as Grafana JSON."""
    d = dashboard(
        TITLE,
        UID,
        "Conversation histories, agents and cleanup jobs tracked with memexport.conversation, "
        "memexport.agent and memexport.cleanup: live sessions and agents, messages and bytes "
        "per name, the longest history, messages dropped without a summary, agent memory "
        "against its own limit, created vs finalized agents, and cleanup runs, failures, "
        "freed bytes and time since the last success.",
        extra_variables=[
            label_variable("conversation", "memexport_conversations"),
            label_variable("agent", "memexport_agents"),
        ],
    )

    d = d.with_row(row("Overview"))
    for panel in (
        stat(
            "Live conversations (all)",
            [target(f"sum({metric('memexport_conversations', 'conversation')})", "live")],
            COUNT,
            description="Conversation objects (sessions) alive now, all names.",
        ),
        stat(
            "Live agents (all)",
            [target(f"sum({metric('memexport_agents', 'agent')})", "live")],
            COUNT,
            description="Agents alive now, all names.",
        ),
        stat(
            "Longest history (all)",
            [
                target(
                    f"max({metric('memexport_conversation_largest_messages', 'conversation')})",
                    "max",
                )
            ],
            COUNT,
            description="Messages in the longest single live history.",
        ),
        stat(
            "Messages dropped / s",
            [
                target(
                    f"sum({DROPPED}) or vector(0)",
                    "dropped",
                )
            ],
            OPS,
            description="Messages pushed out of full deques without a summary.",
            steps=thresholds((0.000001, "orange")),
        ),
        stat(
            "Agents over their limit",
            [
                target(
                    f"sum({metric('memexport_agents_over_memory_limit', 'agent')}) or vector(0)",
                    "over",
                )
            ],
            COUNT,
            description="Live agents whose memory store is bigger than their own limit.",
            steps=thresholds((1, "red")),
        ),
        stat(
            "Cleanup failures / s",
            [
                target(
                    f"sum({rate('memexport_cleanup_failures_total', by=None)}) or vector(0)",
                    "failures",
                )
            ],
            OPS,
            description="Failed cleanup runs per second, all cleanups.",
            steps=thresholds((0.000001, "orange")),
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Conversations"))
    for panel in (
        timeseries(
            "Live conversations",
            [target(_conv("memexport_conversations"), "{{instance}} {{conversation}}")],
            COUNT,
            description="Live conversation objects per name (one per session is normal).",
        ),
        timeseries(
            "Sessions started / ended per second",
            [
                target(
                    rate("memexport_conversations_created_total", "conversation", by=BY_CONV),
                    "{{instance}} {{conversation}} started",
                ),
                target(
                    rate("memexport_conversations_finalized_total", "conversation", by=BY_CONV),
                    "{{instance}} {{conversation}} ended",
                ),
            ],
            OPS,
            description="Conversation objects created and garbage-collected per second.",
        ),
        timeseries(
            "Messages held",
            [target(_conv("memexport_conversation_messages"), "{{instance}} {{conversation}}")],
            COUNT,
            description="Messages held by the live histories of each name, summed.",
        ),
        timeseries(
            "Longest history",
            [
                target(
                    _conv("memexport_conversation_largest_messages", "max"),
                    "{{instance}} {{conversation}}",
                )
            ],
            COUNT,
            description="Messages in the longest single history: a history growing "
            "without bound shows here, a busy hour does not.",
        ),
        timeseries(
            "History bytes vs budget",
            [
                target(_conv("memexport_conversation_bytes"), "{{instance}} {{conversation}}"),
                target(
                    _conv("memexport_conversation_budget_bytes", "max"),
                    "{{instance}} {{conversation}} budget",
                ),
            ],
            BYTES,
            description="Deep size of the live histories (sampled on the collector thread), "
            "with the budget set by memexport.budget(kind='conversation').",
            overrides=[dashed(".* budget")],
        ),
        timeseries(
            "Messages added / summarised / dropped per second",
            [
                target(
                    rate("memexport_conversation_messages_added_total", "conversation", by=BY_CONV),
                    "{{instance}} {{conversation}} added",
                ),
                target(
                    rate(
                        "memexport_conversation_messages_summarized_total",
                        "conversation",
                        by=BY_CONV,
                    ),
                    "{{instance}} {{conversation}} summarised",
                ),
                target(
                    rate(
                        "memexport_conversation_messages_dropped_total", "conversation", by=BY_CONV
                    ),
                    "{{instance}} {{conversation}} dropped",
                ),
            ],
            OPS,
            description="Dropped messages left a full deque without a summary: lost context.",
        ),
        timeseries(
            "Summaries held",
            [target(_conv("memexport_conversation_summaries"), "{{instance}} {{conversation}}")],
            COUNT,
            description="Summaries held by the live histories.",
        ),
        timeseries(
            "LangGraph checkpoints, writes, threads",
            [
                target(
                    _conv("memexport_conversation_checkpoints"),
                    "{{instance}} {{conversation}} checkpoints",
                ),
                target(
                    _conv("memexport_conversation_checkpoint_writes"),
                    "{{instance}} {{conversation}} writes",
                ),
                target(
                    _conv("memexport_conversation_threads"), "{{instance}} {{conversation}} threads"
                ),
            ],
            COUNT,
            description="What LangGraph in-memory savers hold: every checkpoint of every "
            "thread, until delete_thread().",
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Agents"))
    for panel in (
        timeseries(
            "Live agents",
            [target(_agent("memexport_agents"), "{{instance}} {{agent}}")],
            COUNT,
            description="Live agents per name: rising steadily is a leak.",
        ),
        timeseries(
            "Agents created / finalized per second",
            [
                target(
                    rate("memexport_agents_created_total", "agent", by=BY_AGENT),
                    "{{instance}} {{agent}} created",
                ),
                target(
                    rate("memexport_agents_finalized_total", "agent", by=BY_AGENT),
                    "{{instance}} {{agent}} finalized",
                ),
            ],
            OPS,
            description="Created above finalized for long is an agent leak.",
        ),
        timeseries(
            "Agent memory vs limit",
            [
                target(_agent("memexport_agent_memory_bytes"), "{{instance}} {{agent}}"),
                target(
                    _agent("memexport_agent_memory_limit_bytes"), "{{instance}} {{agent}} limit"
                ),
                target(
                    _agent("memexport_agent_budget_bytes", "max"), "{{instance}} {{agent}} budget"
                ),
            ],
            BYTES,
            description="Deep size of the agents' memory stores against their own "
            "limits (summed over live agents) and the budget.",
            overrides=[dashed(".* (limit|budget)")],
        ),
        timeseries(
            "Agents over their own limit",
            [target(_agent("memexport_agents_over_memory_limit"), "{{instance}} {{agent}}")],
            COUNT,
            description="Live agents whose store is bigger than their own limit.",
        ),
        timeseries(
            "Memory items and weak references",
            [
                target(_agent("memexport_agent_memory_items"), "{{instance}} {{agent}} items"),
                target(_agent("memexport_agent_weak_refs"), "{{instance}} {{agent}} weak refs"),
            ],
            COUNT,
            description="Entries in the memory stores; weak references still alive.",
        ),
        timeseries(
            "Agent cleanups and evictions per second",
            [
                target(
                    rate("memexport_agent_cleanups_total", "agent", by=BY_AGENT),
                    "{{instance}} {{agent}} cleanups",
                ),
                target(
                    rate("memexport_agent_cleanup_evicted_total", "agent", by=BY_AGENT),
                    "{{instance}} {{agent}} evicted",
                ),
            ],
            OPS,
            description="The agents' own cleanups and the entries they removed.",
        ),
        timeseries(
            "Time since an agent's last cleanup",
            [
                target(
                    f"time() - {_agent('memexport_agent_last_cleanup_timestamp_seconds', 'max')}",
                    "{{instance}} {{agent}}",
                ),
            ],
            SECONDS,
            description="Since the latest cleanup of any live agent of the name.",
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Agent runs and asyncio tasks"))
    for panel in (
        timeseries(
            "Agent runs per second, and runs going",
            [
                target(
                    rate("memexport_agent_runs_total", "agent", by=BY_AGENT),
                    "{{instance}} {{agent}} runs",
                ),
                target(
                    rate("memexport_agent_run_failures_total", "agent", by=BY_AGENT),
                    "{{instance}} {{agent}} failed",
                ),
                target(_agent("memexport_agent_runs_active"), "{{instance}} {{agent}} going"),
            ],
            OPS,
            description="Runs started with each agent (OpenAI Agents SDK Runner.run, run_sync, "
            "run_streamed), those that raised, and runs still going (a count, on the same "
            "axis).",
        ),
        timeseries(
            "Pending asyncio tasks by coroutine",
            [
                target(
                    "sum by (instance, loop, coroutine) "
                    f"({metric('memexport_asyncio_tasks')})",
                    "{{instance}} {{loop}} {{coroutine}}",
                ),
            ],
            COUNT,
            description="Pending tasks per loop and coroutine (opt-in track_asyncio_tasks(); "
            "the rarest names under __overflow__). Rising steadily is a task leak "
            "(MemexportAsyncioTasksLeaking).",
        ),
        timeseries(
            "Oldest pending asyncio task",
            [
                target(
                    "max by (instance, loop, coroutine) "
                    f"({metric('memexport_asyncio_task_oldest_age_seconds')})",
                    "{{instance}} {{loop}} {{coroutine}}",
                ),
            ],
            SECONDS,
            description="How long the oldest pending task of each coroutine has waited (since "
            "a scrape first saw it). A long-lived server task grows here by design.",
        ),
    ):
        d = d.with_panel(panel)

    d = d.with_row(row("Cleanups"))
    for panel in (
        timeseries(
            "Cleanup runs and failures per second",
            [
                target(
                    rate("memexport_cleanup_runs_total", by=BY_CLEANUP),
                    "{{instance}} {{cleanup}} runs",
                ),
                target(
                    rate("memexport_cleanup_failures_total", by=(*BY_CLEANUP, "exception")),
                    "{{instance}} {{cleanup}} failed: {{exception}}",
                ),
            ],
            OPS,
            description="Runs of each memexport.cleanup, and failures by exception type.",
        ),
        timeseries(
            "Time since last success vs period",
            [
                target(
                    f"time() - {_cleanup('memexport_cleanup_last_success_timestamp_seconds')}",
                    "{{instance}} {{cleanup}}",
                ),
                target(
                    f"2 * {_cleanup('memexport_cleanup_period_seconds')}",
                    "{{instance}} {{cleanup}} 2x period",
                ),
            ],
            SECONDS,
            description="MemexportCleanupStale fires when the first line crosses the second.",
            overrides=[dashed(".* 2x period")],
        ),
        timeseries(
            "Bytes freed per run",
            [
                target(
                    f"{FREED_RSS} / {RUNS_INC}",
                    "{{instance}} {{cleanup}} rss",
                ),
                target(
                    f"{FREED_TRACKED} / {RUNS_INC}",
                    "{{instance}} {{cleanup}} tracked",
                ),
            ],
            BYTES,
            description="RSS returned to the OS, and tracked conversation/agent bytes "
            "freed (tracked=True), per run.",
        ),
        timeseries(
            "Cleanup duration (p50, p99)",
            [
                target(
                    f"histogram_quantile(0.5, {DURATION})",
                    "{{instance}} {{cleanup}} p50",
                ),
                target(
                    f"histogram_quantile(0.99, {DURATION})",
                    "{{instance}} {{cleanup}} p99",
                ),
            ],
            SECONDS,
            description="How long cleanup runs take.",
        ),
    ):
        d = d.with_panel(panel)

    return render(d)
