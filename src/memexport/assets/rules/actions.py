"""Rules on what the process does about its alerts (``memexport.start_actions``).

Every series exists from an action's registration (at 0), so ``increase()`` sees the first
run or failure. Counters are per worker in multiprocess mode (summed over ``pid``), duplicates
of a second exporter collapsed first, OpenTelemetry copies (``memexport_action``) dropped.
"""

from __future__ import annotations

from memexport.assets.rules.common import Q, Rule, num

__all__ = ["groups"]


def _increase(q: Q, metric: str, window: str, *keep: str, matchers: tuple[str, ...] = ()
              ) -> str:
    """Increase of ``metric`` per target and ``keep`` labels, over workers, duplicates once."""
    sel = q.m(metric, *matchers)
    inner = f"max {q.by(q.labels.pid, *keep)} (increase({sel}[{window}]))"
    return f"sum {q.by(*keep[:1])} ({inner})" if keep else f"sum {q.by()} ({inner})"


def _alerts(q: Q) -> list[Rule]:
    a = q.cfg.actions
    t = q.target_text()
    fw, iw, rw = q.d(a.failing_window), q.d(a.ineffective_window), q.d(a.rejected_window)
    action = 'action!=""'
    failures = _increase(q, "memexport_action_failures_total", fw, "action", "reason",
                         matchers=(action,))
    runs = _increase(q, "memexport_action_runs_total", fw, "action", matchers=(action,))
    freed = _increase(q, "memexport_action_freed_bytes_total", iw, "action", matchers=(action,))
    runs_i = _increase(q, "memexport_action_runs_total", iw, "action", matchers=(action,))
    rejected = q.m("memexport_webhook_requests_total", 'result!=""', 'result!="accepted"')
    on = q.on("action")
    return [
        q.alert("MemexportActionFailing", "warning", f"""
({failures} > 0)
  and {on}
({failures}
  >= {num(a.failing_ratio)} * {runs})
""", area="process", summary="An action triggered by alerts keeps failing.",
            description=f"Action {{{{ $labels.action }}}} on {t} failed "
                        f"{{{{ $value | humanize }}}} "
                        f"times in the last {a.failing_window}, at least "
                        f"{num(a.failing_ratio * 100)}% of its runs (it raised or ran past its "
                        f"timeout): the evidence or shedding the memory alerts trigger is not "
                        f"happening.",
            comment="Half or more of an action's runs failed (raised or timed out): the "
                    "evidence or shedding the memory alerts rely on is not happening."),
        q.alert("MemexportActionSheddingIneffective", "warning", f"""
{freed}
  < {q.on()} group_left
{num(a.ineffective_ratio)} * {q.per_target('process_resident_memory_bytes')}
  and {on}
({runs_i} >= {a.ineffective_runs})
""", area="process", summary="Shedding runs every alert cycle without freeing memory.",
            description=f"Action {{{{ $labels.action }}}} on {t} ran at least "
                        f"{a.ineffective_runs} times in {a.ineffective_window} and gave back "
                        f"{{{{ $value | humanize1024 }}}}B of RSS in all, under "
                        f"{num(a.ineffective_ratio * 100)}% of the process's RSS: what grows "
                        f"is out of its reach.",
            comment="A freeing action (shed, or frees=True) runs once per alert cycle and "
                    "gives back almost nothing: it treats a symptom, the memory is held "
                    "where shedding does not reach."),
        q.alert("MemexportActionWebhookRejected", "warning", f"""
sum {q.by()} (max {q.by(q.labels.pid, "result")} (increase({rejected}[{rw}]))) > 0
""", area="process", summary="The actions webhook is refusing requests.",
            description=f"The actions webhook of {t} refused {{{{ $value | humanize }}}} "
                        f"requests in the last {a.rejected_window} "
                        f"(memexport_webhook_requests_total by result says why): "
                        f"Alertmanager's notifications may not be reaching it.",
            comment="A wrong or missing token in Alertmanager's http_config, a payload it "
                    "cannot read, or someone probing the webhook."),
    ]


def groups(q: Q) -> list[dict[str, object]]:
    return [{"name": f"{q.cfg.group_prefix}-actions.alerts", "rules": _alerts(q)}]
