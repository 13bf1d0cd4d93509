"""The one mixin-style config the shipped alert rules (and later the dashboards) are built from.

Every threshold, window, selector, label name and URL pattern lives here with its default, so
a user tunes the rules with a small file (``memexport assets rules --config mine.yml``) or
``--set process.time_to_limit_critical=3h`` instead of editing YAML. Durations are Prometheus
durations (``90s``, ``15m``, ``2h``, ``1d``); ratios are 0..1.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType

__all__ = [
    "Config",
    "ConfigError",
    "Duration",
    "apply_overrides",
    "format_duration",
    "from_mapping",
    "load_config",
    "parse_duration",
]

#: A Prometheus duration string (``30s``, ``15m``, ``1h30m``, ``1d``).
Duration = NewType("Duration", str)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"^(?:(\d+)(ms|s|m|h|d|w|y))+$")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message names it."""


def parse_duration(text: str, where: str = "duration") -> float:
    """Seconds in a Prometheus duration; ``ConfigError`` naming ``where`` if it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ConfigError(f"{where}: expected a Prometheus duration like 15m or 2h, "
                          f"got {str(text)[:40]!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for ``seconds`` (rounded to whole milliseconds)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ConfigError(f"duration must be positive, got {seconds!r} seconds")
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class Dashboards:
    """Grafana dashboard UIDs, for the ``dashboard_url`` annotation (grafana/dashboards_src)."""

    process: str = field(default="memexport-process", metadata=_doc("process memory"))
    caches: str = field(default="memexport-caches", metadata=_doc("caches"))
    pools: str = field(default="memexport-pools", metadata=_doc("pools"))
    agents: str = field(default="memexport-agents",
                        metadata=_doc("conversations, agents and cleanups"))


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
class Process:
    """Process memory: levels, time to the limit, growth against yesterday."""

    peak_window: Duration = field(default=Duration("15m"), metadata=_doc(
        "RSS is read as its peak over this window (longer than the GC sawtooth)"))
    trend_window: Duration = field(default=Duration("30m"), metadata=_doc(
        "least-squares fit of the peak; trend rules start this long after a start"))
    deceleration: float = field(default=0.5, metadata=_doc(
        "the slope of the last half window must be at least this fraction of the whole "
        "window's: warm-up levels off, a leak does not"))
    near_limit_warning: float = 0.80
    near_limit_warning_for: Duration = Duration("15m")
    near_limit_critical: float = 0.90
    near_limit_critical_for: Duration = Duration("5m")
    near_limit_keep_firing_for: Duration = Duration("15m")
    time_to_limit_warning: Duration = field(default=Duration("6h"), metadata=_doc(
        "ticket when the peak reaches the limit within this, at the current slope"))
    time_to_limit_warning_for: Duration = Duration("15m")
    time_to_limit_critical: Duration = field(default=Duration("2h"), metadata=_doc(
        "page when the peak reaches the limit within this"))
    time_to_limit_critical_for: Duration = Duration("10m")
    time_to_limit_keep_firing_for: Duration = Duration("30m")
    growing_vs_yesterday: float = field(default=0.015, metadata=_doc(
        "ticket when the hourly mean of the peak is this fraction of the limit above the same "
        "hour yesterday and still rising"))
    growing_steady_steps: int = field(default=3, metadata=_doc(
        "without a yesterday: rising in this many consecutive steps"))
    growing_steady_step: Duration = field(default=Duration("6h"), metadata=_doc(
        "... of this length (steps x step must exceed any daily ramp)"))
    growing_steady_min: float = field(default=0.01, metadata=_doc(
        "... each by at least this fraction of the limit"))
    growing_for: Duration = Duration("1h")
    growing_keep_firing_for: Duration = Duration("2h")
    unknown_limit_doubling: Duration = field(default=Duration("4h"), metadata=_doc(
        "growing fast: RSS would double within this (a ticket; a page when no limit can be "
        "read)"))
    fast_growth_for: Duration = Duration("15m")
    unknown_limit_for: Duration = Duration("15m")
    limit_unknown_for: Duration = Duration("15m")
    limit_unknown_keep_firing_for: Duration = Duration("30m")
    over_budget_for: Duration = Duration("15m")
    crash_loop_restarts: int = field(default=3, metadata=_doc(
        "ticket on this many restarts within crash_loop_window"))
    crash_loop_window: Duration = Duration("1h")
    crash_loop_keep_firing_for: Duration = Duration("30m")
    uncollectable_window: Duration = Duration("30m")
    uncollectable_for: Duration = Duration("1h")


@dataclass(frozen=True)
class FileDescriptors:
    """Open file descriptors against ``process_max_fds``, per process."""

    near_limit_warning: float = 0.80
    near_limit_warning_for: Duration = Duration("15m")
    near_limit_critical: float = 0.95
    near_limit_critical_for: Duration = Duration("5m")
    near_limit_keep_firing_for: Duration = Duration("15m")
    time_to_limit_warning: Duration = Duration("6h")
    time_to_limit_critical: Duration = Duration("2h")
    time_to_limit_for: Duration = Duration("15m")
    time_to_limit_keep_firing_for: Duration = Duration("30m")
    growing_vs_yesterday: float = field(default=0.05, metadata=_doc(
        "ticket when the hourly mean is this fraction of max_fds above the same hour yesterday "
        "and still rising"))
    growing_for: Duration = Duration("1h")
    growing_keep_firing_for: Duration = Duration("2h")


@dataclass(frozen=True)
class Caches:
    """Cache thrashing (measured against lookups), unbounded growth, budgets."""

    rate_window: Duration = Duration("10m")
    thrashing_hit_ratio: float = field(default=0.5, metadata=_doc(
        "thrashing: fewer hits than this fraction of lookups ..."))
    thrashing_evictions_per_lookup: float = field(default=0.25, metadata=_doc(
        "... and at least this many capacity evictions per lookup"))
    thrashing_min_lookups: float = field(default=0.1, metadata=_doc("lookups per second"))
    thrashing_for: Duration = Duration("15m")
    thrashing_keep_firing_for: Duration = Duration("30m")
    unbounded_removal_ratio: float = field(default=0.5, metadata=_doc(
        "... and removes (evicts, deletes, expires) less than this fraction of what it stores"))
    unbounded_min_items: int = 1000
    unbounded_for: Duration = Duration("3h")
    unbounded_linearity: float = field(default=0.7, metadata=_doc(
        "the slope of the last hour must be at least this fraction of the slope over "
        "unbounded_for: a dict filling towards a steady size decelerates, a leak does not"))
    unbounded_vs_yesterday: float = field(default=1.1, metadata=_doc(
        "where a yesterday exists, entries must exceed this multiple of the same hour's"))
    unbounded_keep_firing_for: Duration = Duration("1h")
    over_budget_for: Duration = Duration("15m")


@dataclass(frozen=True)
class Pools:
    """Pool exhaustion, saturation, waits, resources held or leaked."""

    held_on_purpose: str = field(default="", metadata=_doc(
        "regex of pool names whose resources are held on purpose (LISTEN/NOTIFY, pub/sub): "
        "never 'held too long' nor 'leaking'"))
    exhausted_window: Duration = Duration("5m")
    exhausted_warning_for: Duration = Duration("10m")
    exhausted_critical_for: Duration = Duration("20m")
    exhausted_keep_firing_for: Duration = Duration("15m")
    saturated_ratio: float = 0.9
    saturated_for: Duration = Duration("15m")
    saturated_keep_firing_for: Duration = Duration("15m")
    wait_p95_seconds: float = 1.0
    wait_for: Duration = Duration("10m")
    held_min: Duration = field(default=Duration("5m"), metadata=_doc(
        "held too long: out for longer than this ..."))
    held_p99_factor: float = field(default=10.0, metadata=_doc(
        "... and this many times the p99 hold time of the last hour"))
    held_since_start: Duration = field(default=Duration("10m"), metadata=_doc(
        "a resource taken within this of the process start and never returned is a lifetime "
        "resource, not a leak"))
    held_for: Duration = Duration("15m")
    leak_floor_rise: int = field(default=2, metadata=_doc(
        "leaking: the fewest resources in use rose by this many within leak_window ..."))
    leak_window: Duration = Duration("1h")
    leak_oldest: Duration = field(default=Duration("30m"), metadata=_doc(
        "... and the oldest has been out for longer than this"))
    leak_for: Duration = Duration("20m")
    leak_keep_firing_for: Duration = Duration("1h")


@dataclass(frozen=True)
class Conversations:
    """Histories growing without summaries or drops, live sessions leaking, drops, budgets."""

    history_offset: Duration = field(default=Duration("2h"), metadata=_doc(
        "growing: the longest history is above its value this long ago ..."))
    history_for: Duration = field(default=Duration("2h30m"), metadata=_doc(
        "... continuously for this long, with no summary and no drop"))
    history_keep_firing_for: Duration = Duration("1h")
    dropped_for: Duration = Duration("15m")
    threads_min: int = 100
    threads_for: Duration = Duration("3h")
    over_budget_for: Duration = Duration("15m")


@dataclass(frozen=True)
class Lifetimes:
    """Live conversations/agents leaking: Little's law, robust to churn and daily cycles."""

    rate_window: Duration = Duration("1h")
    baseline_window: Duration = field(default=Duration("1d"), metadata=_doc(
        "the usual apparent lifetime is a low quantile over this window"))
    baseline_quantile: float = 0.1
    factor: float = field(default=2.0, metadata=_doc(
        "leaking: live objects above creation rate x usual lifetime exceed this many times "
        "the day's average of that expected number"))
    min_live: int = 20
    min_created_per_hour: float = 6.0
    for_: Duration = field(default=Duration("1h"), metadata=_doc("for:"))
    keep_firing_for: Duration = Duration("2h")


@dataclass(frozen=True)
class Cleanups:
    """Cleanup jobs failing or not succeeding within twice their period."""

    failing_window: Duration = Duration("1h")
    failing_min: int = field(default=2, metadata=_doc(
        "failing: this many failures in the window, or every run of the window failed"))
    failing_for: Duration = Duration("15m")
    failing_keep_firing_for: Duration = Duration("30m")
    stale_periods: float = 2.0
    over_limit_for: Duration = Duration("15m")


@dataclass(frozen=True)
class Meta:
    """memexport's own health, the scrape, and Prometheus evaluating these rules."""

    collector_errors_window: Duration = Duration("10m")
    collector_errors_for: Duration = Duration("30m")
    overflow_window: Duration = Duration("30m")
    target_down_for: Duration = Duration("10m")
    rule_failures_window: Duration = Duration("5m")
    rule_failures_for: Duration = Duration("10m")
    rule_failures_selector: str = field(default="", metadata=_doc(
        "matchers for prometheus_rule_evaluation_failures_total; default: the rule_group of "
        "these rules (rule_group=~\".*;<group_prefix>-.*\")"))


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
    dashboards: Dashboards = Dashboards()
    labels: Labels = Labels()
    process: Process = Process()
    fds: FileDescriptors = FileDescriptors()
    caches: Caches = Caches()
    pools: Pools = Pools()
    conversations: Conversations = Conversations()
    lifetimes: Lifetimes = Lifetimes()
    cleanups: Cleanups = Cleanups()
    meta: Meta = Meta()


# -- loading ------------------------------------------------------------------------------------

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _key(name: str) -> str:
    """Config key of a dataclass field (``for_`` is written ``for``)."""
    return name.rstrip("_")


def _convert(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {str(value)[:40]!r}")
        return from_mapping(tp, value, where)
    if tp is Duration:
        parse_duration(value, where)
        return Duration(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {str(value)[:40]!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: expected a whole number >= 0, got {str(value)[:40]!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: expected a number >= 0, got {str(value)[:40]!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {str(value)[:40]!r}")
        return value
    if typing.get_origin(tp) is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not value or not all(
                isinstance(v, str) and _LABEL.match(v) for v in value):
            raise ConfigError(f"{where}: expected a list of label names, got "
                              f"{str(value)[:40]!r}")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported type {tp!r}")  # pragma: no cover


T = typing.TypeVar("T")


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a (partial) mapping; unknown keys and bad values raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a config dataclass")  # pragma: no cover
    hints = typing.get_type_hints(cls)
    fields = {_key(f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(sorted(fields))})")
    values = {fields[k].name: _convert(hints[fields[k].name], v, f"{where}.{k}")
              for k, v in data.items()}
    obj = cls(**values)
    _validate(obj, where)
    return obj


def _validate(obj: Any, where: str) -> None:
    if isinstance(obj, Config):
        if obj.time_scale <= 0:
            raise ConfigError(f"{where}.time_scale: must be > 0, got {obj.time_scale!r}")
        for name in dataclasses.astuple(obj.labels):
            if not _LABEL.match(name):
                raise ConfigError(f"{where}.labels: not a label name: {name[:40]!r}")
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and (f.name.endswith("ratio") or "quantile" in f.name
                                         or f.name.startswith(("near_limit", "thrashing_hit"))):
            if value > 1:
                raise ConfigError(f"{where}.{_key(f.name)}: a ratio must be <= 1, got {value!r}")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Put ``value`` at a dotted key (``process.trend_window``) of a nested mapping."""
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {p!r} is not a section")
        node = child
    node[parts[-1]] = value


def _raw(text: str) -> Any:
    """A ``--set`` value: JSON if it parses (numbers, lists, quoted strings), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` strings (dotted keys) to a config mapping, in order."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item[:60]!r}")
        _set(data, key.strip(), _raw(raw.strip()))
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The config from a YAML or JSON file (partial: defaults fill the rest) plus overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {str(p)[:200]!r}: {exc.strerror}") from None
        data = _parse(text, str(p))
    apply_overrides(data, list(overrides or []))
    return from_mapping(Config, data)


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        loaded: Any = json.loads(text)
    except ValueError:
        try:
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            raise ConfigError(f"{where}: not JSON, and PyYAML is not installed to read YAML "
                              f"(pip install pyyaml, or write the config as JSON)") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML: {str(exc)[:200]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where}: the config must be a mapping at the top level")
    data: dict[str, Any] = {}
    for key, value in loaded.items():  # dotted keys (as `memexport assets config` prints)
        _set(data, str(key), value)
    return data


def describe(cls: type[Any] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, default, doc)`` for every leaf of the config, for docs and --help."""
    out: list[tuple[str, str, str]] = []
    default = cls()
    for f in dataclasses.fields(cls):
        key = prefix + _key(f.name)
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            out.extend(describe(type(value), key + "."))
            continue
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        out.append((key, shown, f.metadata.get("doc", "")))
    return out
