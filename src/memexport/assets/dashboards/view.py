"""What of the assets config the dashboards read, and the PromQL helpers built on it.

A :class:`View` holds only the dashboard-affecting settings: the labels naming a target (the
``job``/``instance`` variables), the component label names, the extra selector, the dashboard
UIDs and the data source. Two configs with the same view give the same dashboards, so the
JSON shipped in the wheel serves every config whose view is the default one. No
grafana-foundation-sdk here: the view and its queries work without it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from memexport.assets.config import Config, Dashboards, Labels

__all__ = ["COMPONENTS", "View"]

#: Config keys of the component labels (``labels.cache`` ...), as the dashboards name them.
COMPONENTS = ("cache", "pool", "conversation", "agent", "cleanup")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class View:
    """The settings the dashboards depend on (and nothing else)."""

    target_labels: tuple[str, ...] = ("job", "instance")
    labels: Labels = dataclasses.field(default_factory=Labels)
    selector: str = ""
    uids: Dashboards = dataclasses.field(default_factory=Dashboards)
    datasource_uid: str = "memexport-prometheus"
    datasource_name: str = "memexport Prometheus"

    @classmethod
    def of(cls, cfg: Config) -> View:
        return cls(cfg.target_labels, cfg.labels, cfg.selector.strip(), cfg.dashboards,
                   cfg.grafana.datasource_uid, cfg.grafana.datasource_name)

    @property
    def series(self) -> str:
        """The label legends name a target by (the last target label: ``instance``)."""
        return self.target_labels[-1]

    def label(self, name: str) -> str:
        """The label name of a component key (``cache`` -> ``labels.cache``); any other label
        (``reason``, ``le``, ...) as it is."""
        return str(getattr(self.labels, name)) if name in COMPONENTS else name

    # -- selectors and grouping ---------------------------------------------------------------

    def sel(self, *components: str, extra: str = "") -> str:
        """Matchers filtering by the target variables, the config selector and the variables
        of ``components``: ``job=~"$job", instance=~"$instance", cache=~"$cache"``."""
        parts = [f'{t}=~"${t}"' for t in self.target_labels]
        parts += [f'{self.label(c)}=~"${self.label(c)}"' for c in components]
        parts += [p for p in (self.selector, extra) if p]
        return ", ".join(parts)

    def metric(self, name: str, *components: str, extra: str = "") -> str:
        """``name{<sel>}``: a selector filtered by the dashboard's variables."""
        return f"{name}{{{self.sel(*components, extra=extra)}}}"

    def labels_of(self, *extra: str) -> str:
        """The target labels and ``extra`` (component keys resolved), comma-separated."""
        return ", ".join([*self.target_labels, *(self.label(e) for e in extra)])

    def by(self, *extra: str) -> str:
        return f"by ({self.labels_of(*extra)})"

    def on(self, *extra: str) -> str:
        return f"on({self.labels_of(*extra)})"

    def agg(self, name: str, *components: str, agg: str = "sum", extra: str = "",
            by: Sequence[str] | None = None) -> str:
        """``sum by (job, instance, <components>) (name{<sel>})``."""
        keys = components if by is None else by
        return f"{agg} {self.by(*keys)} ({self.metric(name, *components, extra=extra)})"

    def rate(self, name: str, *components: str, by: Sequence[str] | None = (),
             fn: str = "rate", agg: str = "sum", extra: str = "") -> str:
        """``sum by (job, instance, <by>) (rate(name{<sel>}[$__rate_interval]))``; ``by=None``
        leaves the rate unaggregated. The window is always ``$__rate_interval``."""
        if fn not in ("rate", "irate", "increase"):
            raise ValueError(f"fn must be rate, irate or increase, not {fn!r}")
        inner = f"{fn}({self.metric(name, *components, extra=extra)}[$__rate_interval])"
        if by is None:
            return inner
        return f"{agg} {self.by(*by)} ({inner})"

    def legend(self, text: str) -> str:
        """A legend written with the default names (``{{instance}} {{cache}}``) in this view's
        label names."""
        def name(m: re.Match[str]) -> str:
            key = m.group(1)
            return "{{" + (self.series if key == "instance" else self.label(key)) + "}}"

        return _LEGEND.sub(name, text)
