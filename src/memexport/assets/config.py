"""The one mixin-style config the shipped assets are built from: the alert rules, and the
dashboards' selectors, label names and UIDs, so ``dashboard_url`` links always match.

Every threshold, window, selector, label name and URL pattern lives here (the rules' own
thresholds in :mod:`memexport.assets.thresholds`) with its default, so a user tunes the assets
with a small file (``memexport assets --config mine.yml``) or ``--set
process.time_to_limit_critical=3h`` instead of editing YAML (:mod:`memexport.assets.loading`).
Durations are Prometheus durations (``90s``, ``15m``, ``2h``, ``1d``); ratios are 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memexport.assets.thresholds import (
    Actions,
    Caches,
    Cleanups,
    Conversations,
    FileDescriptors,
    Lifetimes,
    Memory,
    Meta,
    Pools,
    Process,
    Tasks,
)
from memexport.assets.values import ConfigError, Duration, format_duration, parse_duration
from memexport.assets.values import doc as _doc

__all__ = ["Config", "ConfigError", "Dashboards", "Duration", "Labels", "format_duration",
           "parse_duration"]


@dataclass(frozen=True)
class Dashboards:
    """Grafana dashboard UIDs: the dashboards' own and the alerts' ``dashboard_url``."""

    process: str = field(default="memexport-process", metadata=_doc("process memory"))
    caches: str = field(default="memexport-caches", metadata=_doc("caches"))
    pools: str = field(default="memexport-pools", metadata=_doc("pools"))
    agents: str = field(default="memexport-agents",
                        metadata=_doc("conversations, agents, cleanups and asyncio tasks"))
    memory: str = field(default="memexport-memory", metadata=_doc(
        "where memory goes: the RSS ledger and cgroup forensics"))


@dataclass(frozen=True)
class Labels:
    """Label names: memexport's per-kind labels and the multiprocess ``pid`` label."""

    cache: str = "cache"
    pool: str = "pool"
    conversation: str = "conversation"
    agent: str = "agent"
    cleanup: str = "cleanup"
    pid: str = field(default="pid", metadata=_doc("per-worker label of multiprocess mode"))


@dataclass(frozen=True)
class Config:
    """Everything the generated rules depend on; defaults give the committed alerts/."""

    selector: str = field(default="", metadata=_doc(
        "extra label matchers on every series the rules read, e.g. namespace=\"agents\""))
    target_labels: tuple[str, ...] = field(default=("job", "instance"), metadata=_doc(
        "labels naming one target; every alert keeps them"))
    group_prefix: str = field(default="memexport", metadata=_doc("rule group names start so"))
    time_scale: float = field(default=1.0, metadata=_doc(
        "multiplies every duration (0.0167 turns hours into minutes, for demos and tests)"))
    runbook_url: str = field(
        default="https://github.com/memexport/memexport/blob/main/alerts/runbook.md#{anchor}",
        metadata=_doc("{alertname} and {anchor} (lower-case alertname) are replaced"))
    grafana_url: str = "http://localhost:3000"
    dashboard_url: str = field(default="{grafana_url}/d/{uid}?{vars}", metadata=_doc(
        "{grafana_url}, {uid} and {vars} (var-<label>=<value> of the alert) are replaced"))
    dashboards: Dashboards = field(default_factory=Dashboards)
    labels: Labels = field(default_factory=Labels)
    process: Process = field(default_factory=Process)
    fds: FileDescriptors = field(default_factory=FileDescriptors)
    caches: Caches = field(default_factory=Caches)
    pools: Pools = field(default_factory=Pools)
    conversations: Conversations = field(default_factory=Conversations)
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    cleanups: Cleanups = field(default_factory=Cleanups)
    memory: Memory = field(default_factory=Memory)
    tasks: Tasks = field(default_factory=Tasks)
    actions: Actions = field(default_factory=Actions)
    meta: Meta = field(default_factory=Meta)
