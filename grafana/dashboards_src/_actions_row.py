"""The "Actions" row of the process dashboard: what the process did about its alerts.

Runs, failures and skips of each action (memexport.start_actions, docs/actions.md), how long
they took, the memory they gave back, the webhook's requests and the evidence on disk.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import dashboard as dm

from dashboards_src.common import (
    BYTES,
    COUNT,
    OPS,
    SECONDS,
    dashed,
    metric,
    rate,
    row,
    target,
    timeseries,
)

__all__ = ["with_actions_row"]


def _duration_quantile(q: float) -> str:
    buckets = rate("memexport_action_duration_seconds_bucket", by=("instance", "action", "le"))
    return f"histogram_quantile({q}, {buckets})"


def with_actions_row(d: Any) -> Any:
    """``d`` with the Actions row appended."""
    d = d.with_row(row("Actions"))
    for panel in (
        timeseries(
            "Action runs / s",
            [target(rate("memexport_action_runs_total", by=("instance", "action")),
                    "{{instance}} {{action}}")],
            OPS,
            description="Runs of each action started by an Alertmanager alert naming this "
            "process (memexport_action_runs_total). Actions are rate-limited: a few runs "
            "per hour at most.",
            w=8,
        ),
        timeseries(
            "Action failures and skips / s",
            [target(rate("memexport_action_failures_total",
                         by=("instance", "action", "reason")),
                    "{{instance}} {{action}} failed: {{reason}}"),
             target(rate("memexport_action_skipped_total",
                         by=("instance", "action", "reason")),
                    "{{instance}} {{action}} skipped: {{reason}}")],
            OPS,
            description="Runs that raised or timed out (memexport_action_failures_total), "
            "and matched alerts that started no run (cooldown, rate_limit, running, "
            "queue_full, dry_run: memexport_action_skipped_total). Failures page through "
            "MemexportActionFailing.",
            overrides=[dashed(".* skipped: .*")],
            w=8,
        ),
        timeseries(
            "Action duration (p50, p99)",
            [target(_duration_quantile(0.5), "{{instance}} {{action}} p50"),
             target(_duration_quantile(0.99), "{{instance}} {{action}} p99")],
            SECONDS,
            description="How long runs took (memexport_action_duration_seconds); a run that "
            "timed out counts its timeout.",
            w=8,
        ),
        timeseries(
            "Memory freed by actions (B/s)",
            [target(rate("memexport_action_freed_bytes_total", by=("instance", "action")),
                    "{{instance}} {{action}} RSS"),
             target(rate("memexport_action_step_freed_bytes_total",
                         by=("instance", "action", "step")),
                    "{{instance}} {{action}} {{step}}")],
            "binBps",
            description="RSS each freeing action gave back (before minus after its runs: "
            "memexport_action_freed_bytes_total), and what each step reported freed in its "
            "own measure (component bytes for caches and histories, RSS for the others: "
            "memexport_action_step_freed_bytes_total). Runs that free nothing while the "
            "alert keeps firing: MemexportActionSheddingIneffective.",
            overrides=[dashed(".* (caches|histories|pools|cleanups|gc|malloc_trim|custom)")],
            w=8,
        ),
        timeseries(
            "Webhook requests and alerts / s",
            [target(rate("memexport_webhook_requests_total", by=("instance", "result")),
                    "{{instance}} request {{result}}"),
             target(rate("memexport_webhook_alerts_total",
                         by=("instance", "status", "result")),
                    "{{instance}} alert {{status}} {{result}}"),
             target(rate("memexport_webhook_relays_total", by=("instance", "result")),
                    "{{instance}} relay {{result}}")],
            OPS,
            description="Requests to the actions webhook by result (accepted, or why "
            "refused: unauthorized, bad_payload, ...), the alerts they carried by status "
            "and whether they matched an action, named another process or were relayed to "
            "the replica they name, and the relayed notifications by result.",
            overrides=[dashed(".* (alert|relay) .*")],
            w=8,
        ),
        timeseries(
            "Evidence on disk",
            [target(f"max by (instance) ({metric('memexport_evidence_bytes')})",
                    "{{instance}} bytes"),
             target(f"max by (instance) ({metric('memexport_evidence_files')})",
                    "{{instance}} files")],
            BYTES,
            description="Bytes of evidence files (memexport_evidence_bytes) in the evidence "
            "directory, capped by evidence_max_bytes, and how many files "
            "(memexport_evidence_files, right axis).",
            overrides=[(".* files", [dm.DynamicConfigValue("unit", COUNT),
                                     dm.DynamicConfigValue("custom.axisPlacement", "right")])],
            w=8,
        ),
    ):
        d = d.with_panel(panel)
    return d
