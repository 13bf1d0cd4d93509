"""Conversation, agent and cleanup rules.

Histories: the longest one growing for hours with no summary and no drop (any steady rate).
Live objects: Little's law -- live objects divided by the creation rate is their mean
lifetime, which session churn and daily traffic leave alone and a leak raises without bound.
Cleanups: failures (seen from the first one) and runs that stop succeeding.
"""

from __future__ import annotations

from memexport.assets.rules.common import Q, Rule, num

__all__ = ["groups"]

LARGEST = "conversation:memexport_conversation_largest_messages:max"
FAILURES = "cleanup:memexport_cleanup_failures:sum"


def _lifetime_names(kind: str) -> dict[str, str]:
    return {"rate": f"{kind}:memexport_{kind}s_created:rate",
            "lifetime": f"{kind}:memexport_{kind}s:lifetime_seconds",
            "baseline": f"{kind}:memexport_{kind}s_lifetime_seconds:baseline",
            "expected": f"{kind}:memexport_{kind}s:expected"}


def _recording(q: Q) -> list[Rule]:
    lt, lb = q.cfg.lifetimes, q.labels
    largest = q.c("memexport_conversation_largest_messages", lb.conversation)
    rules = [q.record(LARGEST, f"max {q.by(lb.conversation)} ({largest})")]
    for kind, lbl in (("conversation", lb.conversation), ("agent", lb.agent)):
        live = q.c(f"memexport_{kind}s", lbl)
        created = q.c(f"memexport_{kind}s_created_total", lbl)
        names = _lifetime_names(kind)
        min_rate = num(lt.min_created_per_hour / 3600 / q.cfg.time_scale)
        rules += [
            q.record(names["rate"], f"max {q.by(lbl)} (rate({created}[{q.d(lt.rate_window)}]))",
                     f"{kind.capitalize()}s created per second."),
            q.record(names["lifetime"], f"""
max {q.by(lbl)} (avg_over_time({live}[{q.d('15m')}]))
  /
({names['rate']} > {min_rate})
""", f"Mean lifetime of live {kind}s by Little's law (live / creation rate), in seconds."),
            q.record(names["baseline"], f"quantile_over_time({num(lt.baseline_quantile)}, "
                                        f"{names['lifetime']}[{q.d(lt.baseline_window)}])",
                     "Their usual lifetime: a low quantile over the baseline window, which "
                     "restarts and a leak hardly move."),
            q.record(names["expected"], f"{names['rate']} * {names['baseline']}",
                     f"Live {kind}s expected at the current creation rate: the excess over this "
                     f"is what was never freed, whatever the traffic does."),
        ]
    rules.append(q.record(FAILURES, f"""
sum {q.by(lb.cleanup)} (
  max {q.by(lb.cleanup, 'exception')} ({q.c('memexport_cleanup_failures_total', lb.cleanup)})
)
or {q.on(lb.cleanup)}
0 * max {q.by(lb.cleanup)} ({q.c('memexport_cleanup_runs_total', lb.cleanup)})
""", "Failures of each cleanup over all exception types, at 0 before the first one: a series "
     "per exception type appears at its first failure, which increase() alone would miss."))
    return rules


def _leaking(q: Q, kind: str, lbl: str, alertname: str, what: str) -> Rule:
    lt = q.cfg.lifetimes
    names = _lifetime_names(kind)
    live = f"max {q.by(lbl)} ({q.c(f'memexport_{kind}s', lbl)})"
    return q.alert(alertname, "warning", f"""
({live} - {names['expected']})
  > {num(lt.factor)} * avg_over_time({names['expected']}[{q.d(lt.baseline_window)}])
  and {q.on(lbl)}
({live} > {lt.min_live})
""", area="agents", component=lbl, for_=lt.for_, keep=lt.keep_firing_for,
        summary=f"Live {what} pile up (a leak).",
        description=f"{{{{ $labels.{lbl} }}}} on {q.target_text()} holds "
                    f"{{{{ $value | humanize }}}} more live {what} than its creation rate and "
                    f"their usual lifetime explain (Little's law), over {num(lt.factor)} times "
                    f"the usual number alive: they are created and never freed.",
        comment="Little's law: live = creation rate x lifetime. Churn and daily traffic move "
                "both sides together; what is never freed piles up above it.")


def _alerts(q: Q) -> list[Rule]:
    cv, cl, lb = q.cfg.conversations, q.cfg.cleanups, q.labels
    t = q.target_text()
    conv, on_conv = lb.conversation, q.on(lb.conversation)
    largest = q.c("memexport_conversation_largest_messages", conv)
    w10 = q.d("10m")
    off = q.d(cv.history_offset)

    def increased(metric: str) -> str:
        return (f"(max {q.by(conv)} (increase({q.c(metric, conv)}[{off}])) > 0)")

    threads_sel = q.c("memexport_conversation_threads", conv)
    dropped = q.c("memexport_conversation_messages_dropped_total", conv)
    threads = f"max {q.by(conv)} ({threads_sel})"
    threads_yesterday = f"max {q.by(conv)} ({threads_sel} offset {q.d('1d')})"
    budget_rule = []
    for name, kind, lbl, metric, what in (
            ("MemexportConversationOverBudget", "conversation", conv,
             "memexport_conversation_bytes", "Conversation histories"),
            ("MemexportAgentOverBudget", "agent", lb.agent, "memexport_agent_memory_bytes",
             "Agent memory stores")):
        budget_rule.append(q.alert(name, "warning", f"""
max {q.by(lbl)} ({q.c(metric, lbl)})
  > {q.on(lbl)}
max {q.by(lbl)} ({q.c(f'memexport_{kind}_budget_bytes', lbl)})
""", area="agents", component=lbl, for_=cv.over_budget_for,
            summary=f"{what} are over their byte budget.",
            description=f"{{{{ $labels.{lbl} }}}} {what.lower()} on {t} hold "
                        f"{{{{ $value | humanize1024 }}}}B, more than the budget set with "
                        f"memexport.budget()."))
    runs = (f"max {q.by(lb.cleanup)} (increase("
            f"{q.c('memexport_cleanup_runs_total', lb.cleanup)}[{q.d(cl.failing_window)}]))")
    fails = f"increase({FAILURES}[{q.d(cl.failing_window)}])"
    period = f"max {q.by(lb.cleanup)} ({q.c('memexport_cleanup_period_seconds', lb.cleanup)})"
    success = (f"max {q.by(lb.cleanup)} "
               f"({q.c('memexport_cleanup_last_success_timestamp_seconds', lb.cleanup)})")
    on_cl = q.on(lb.cleanup)
    return [
        q.alert("MemexportConversationHistoryGrowing", "warning", f"""
max {q.by(conv)} (
  min_over_time({largest}[{w10}])
    >
  max_over_time({largest}[{w10}] offset {off})
)
unless {on_conv} {increased('memexport_conversation_messages_summarized_total')}
unless {on_conv} {increased('memexport_conversation_messages_dropped_total')}
""", area="agents", component=conv, for_=cv.history_for, keep=cv.history_keep_firing_for,
            summary="A conversation history grows without bound.",
            description=f"The longest {{{{ $labels.{conv} }}}} history on {t} has kept growing "
                        f"for {cv.history_for} (now {{{{ $value }}}} messages, more than "
                        f"{cv.history_offset} before, all along) with no summary and no drop: "
                        f"nothing bounds it.",
            comment="Growth measured by duration, not by a fixed rate: any steady growth with no "
                    "summary and no drop fires."),
        q.alert("MemexportConversationMessagesDropped", "warning", f"""
max {q.by(conv)} (rate({dropped}[{q.d('15m')}])) > 0
""", area="agents", component=conv, for_=cv.dropped_for,
            summary="Conversation messages are dropped without a summary.",
            description=f"{{{{ $labels.{conv} }}}} histories on {t} drop "
                        f"{{{{ $value | humanize }}}} messages/s that were never summarised."),
        q.alert("MemexportConversationThreadsGrowing", "warning", f"""
{q.per_hour()} * max {q.by(conv)} (deriv({threads_sel}[{q.d('1h')}])) > 0
  and {on_conv} ({threads} > {cv.threads_min})
unless {on_conv} ({threads} <= 1.1 * {threads_yesterday})
""", area="agents", component=conv, for_=cv.threads_for, keep=cv.history_keep_firing_for,
            summary="Threads held by a LangGraph saver keep growing.",
            description=f"{{{{ $labels.{conv} }}}} on {t} holds ever more threads (now "
                        f"+{{{{ $value | humanize }}}} per hour, for {cv.threads_for}): threads "
                        f"are checkpointed and never deleted (delete_thread)."),
        _leaking(q, "conversation", conv, "MemexportConversationsLeaking", "conversations"),
        _leaking(q, "agent", lb.agent, "MemexportAgentsLeaking", "agents"),
        q.alert("MemexportAgentOverMemoryLimit", "warning", f"""
max {q.by(lb.agent)} ({q.c('memexport_agents_over_memory_limit', lb.agent)}) > 0
""", area="agents", component=lb.agent, for_=cl.over_limit_for,
            summary="An agent's memory store is over its own limit.",
            description=f"{{{{ $value }}}} {{{{ $labels.{lb.agent} }}}} agent(s) on {t} hold more "
                        f"memory than their own limit allows."),
        q.alert("MemexportCleanupFailing", "warning", f"""
{fails} >= {cl.failing_min}
or {on_cl}
(
  {fails} > 0
    and {on_cl}
  {fails} >= {on_cl} 0.9 * {runs}
)
""", area="agents", component=lb.cleanup, for_=cl.failing_for, keep=cl.failing_keep_firing_for,
            summary="A cleanup job keeps failing.",
            description=f"Cleanup {{{{ $labels.{lb.cleanup} }}}} on {t} failed "
                        f"{{{{ $value | humanize }}}} times in the last {cl.failing_window}."),
        q.alert("MemexportCleanupStale", "warning", f"""
(time() - {success})
  > {on_cl}
{num(cl.stale_periods)} * {period}
or {on_cl}
(
  ({num(cl.stale_periods)} * {period} unless {on_cl} {success})
    < {q.on()} group_left()
  {q.uptime()}
)
""", area="agents", component=lb.cleanup,
            summary="A cleanup job has not succeeded for more than twice its period.",
            description=f"Cleanup {{{{ $labels.{lb.cleanup} }}}} on {t} has not succeeded for "
                        f"more than {num(cl.stale_periods)} times its period "
                        f"({{{{ $value | humanizeDuration }}}})."),
        *budget_rule,
    ]


def groups(q: Q) -> list[dict[str, object]]:
    prefix = q.cfg.group_prefix
    return [
        {"name": f"{prefix}-agents.rules", "rules": _recording(q)},
        {"name": f"{prefix}-agents.alerts", "rules": _alerts(q)},
    ]
