"""PromQL and rule-building helpers shared by the rule modules: selectors, label lists, scaled
durations, and the alert/record dicts with their annotations.

Every selector gets the config's extra matchers; every aggregation keeps the target labels
(``job``, ``instance`` by default), so rules evaluate the same for one process, a multiprocess
target (``pid`` per worker) and a process serving both exporters (duplicate series).
"""

from __future__ import annotations

from typing import Any

from memexport.assets.config import Config, Duration, format_duration, parse_duration

__all__ = ["Q", "Rule"]

Rule = dict[str, Any]

#: The series every memexport target exports (declared at 0 on start): gates process rules.
GATE_METRIC = "memexport_collector_errors_total"


class Q:
    """Query helpers bound to one config."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.T = ", ".join(cfg.target_labels)
        self.labels = cfg.labels

    # -- selectors and grouping ---------------------------------------------------------------

    def m(self, name: str, *matchers: str) -> str:
        """``name{<config selector>, matchers...}`` (no braces when there are none)."""
        parts = [p for p in (self.cfg.selector.strip(), *matchers) if p]
        return f"{name}{{{', '.join(parts)}}}" if parts else name

    def c(self, name: str, kind_label: str, *matchers: str) -> str:
        """A component series: its kind label must be set (drops foreign duplicates)."""
        return self.m(name, f'{kind_label}!=""', *matchers)

    def by(self, *extra: str) -> str:
        return f"by ({', '.join([*self.cfg.target_labels, *extra])})"

    def on(self, *extra: str) -> str:
        return f"on ({', '.join([*self.cfg.target_labels, *extra])})"

    def gate(self) -> str:
        """One series per memexport target: restricts process rules to memexport targets."""
        return f"group {self.by()} ({self.m(GATE_METRIC)})"

    def per_target(self, name: str, *matchers: str, agg: str = "max") -> str:
        """``agg by (target) (max by (target, pid) (name))``: one value per target whatever
        the mode (per-worker series, duplicate series of a second exporter)."""
        inner = f"max {self.by(self.labels.pid)} ({self.m(name, *matchers)})"
        return f"{agg} {self.by()} ({inner})"

    def uptime(self) -> str:
        return f"(time() - {self.per_target('process_start_time_seconds', agg='min')})"

    # -- durations ----------------------------------------------------------------------------

    def seconds(self, d: Duration | str) -> float:
        return parse_duration(d) * self.cfg.time_scale

    def d(self, d: Duration | str) -> str:
        """A scaled duration for a range selector, ``offset``, ``for`` or ``keep_firing_for``."""
        return format_duration(self.seconds(d))

    def s(self, d: Duration | str) -> str:
        """A scaled duration as a number of seconds in an expression."""
        return num(self.seconds(d))

    def per_hour(self) -> str:
        """Seconds in one (scaled) hour: multiplies per-second slopes into per-hour ones."""
        return num(3600 * self.cfg.time_scale)

    # -- annotations --------------------------------------------------------------------------

    def target_text(self) -> str:
        return "/".join(f"{{{{ $labels.{t} }}}}" for t in self.cfg.target_labels)

    def runbook(self, alertname: str) -> str:
        return (self.cfg.runbook_url.replace("{alertname}", alertname)
                .replace("{anchor}", alertname.lower()))

    def dashboard(self, area: str, component: str | None) -> str:
        uid = getattr(self.cfg.dashboards, area)
        names = [*self.cfg.target_labels, *([component] if component else [])]
        vars_ = "&".join(f"var-{n}={{{{ $labels.{n} | urlquery }}}}" for n in names)
        return (self.cfg.dashboard_url.replace("{grafana_url}", self.cfg.grafana_url.rstrip("/"))
                .replace("{uid}", uid).replace("{vars}", vars_))

    def record(self, name: str, expr: str, comment: str = "") -> Rule:
        rule: Rule = {"record": name, "expr": _expr(expr)}
        if comment:
            rule = {"#": comment, **rule}
        return rule

    def alert(self, name: str, severity: str, expr: str, *, area: str, summary: str,
              description: str, for_: Duration | str | None = None,
              keep: Duration | str | None = None, component: str | None = None,
              comment: str = "") -> Rule:
        rule: Rule = {"alert": name, "expr": _expr(expr)}
        if comment:
            rule = {"#": comment, **rule}
        if for_:
            rule["for"] = self.d(for_)
        if keep:
            rule["keep_firing_for"] = self.d(keep)
        rule["labels"] = {"severity": severity}
        rule["annotations"] = {
            "summary": summary,
            "description": " ".join(description.split()),
            "runbook_url": self.runbook(name),
            "dashboard_url": self.dashboard(area, component),
        }
        return rule


def _expr(expr: str) -> str:
    """Multi-line PromQL ends with a newline (a YAML ``|`` block); one line stays one line."""
    expr = expr.strip()
    return expr + "\n" if "\n" in expr else expr


def num(x: float) -> str:
    """A number as PromQL writes it: integers without a fraction, others shortest-repr."""
    if float(x).is_integer():
        return str(int(x))
    return repr(round(float(x), 6))
