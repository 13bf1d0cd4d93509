"""Panel, variable and dashboard helpers over grafana-foundation-sdk, and ``render()``.

Every dashboard has the data source variable and one variable per target label (``job``,
``instance``), every panel and target queries ``${datasource}``, and ``render()`` turns a
builder into a deterministic dict (panel ids 1..n, refIds A, B, ...) so the committed JSON
changes only when the code does. ``render()`` also appends to each panel's description the
HELP text, from the kinds' tables, of the metrics its queries read, and writes two things the
pinned SDK cannot: a table's footer where Grafana's schema now has it
(``fieldConfig.defaults.custom.footer``) and no interval settings (``auto*``) on variables
that are not interval variables.

This module needs grafana-foundation-sdk (the ``dashboards`` extra).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import stat as stat_builder
from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.builders import timeseries as ts_builder
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models.common import DataSourceRef

from memexport.assets.dashboards.names import HELP, core
from memexport.assets.dashboards.view import View

__all__ = ["BYTES", "COUNT", "DS", "OPS", "RATIO", "SECONDS", "Dashboard", "Dataquery",
           "dashboard", "dashed", "label_variable", "link", "render", "right_axis", "row", "rows",
           "stat",
           "table", "target", "thresholds", "timeseries"]

#: Every panel and target queries the data source chosen in the ``datasource`` variable.
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: A series every memexport target exports (the registry times its own read on every scrape):
#: the target variables list the targets that have it.
VARIABLE_METRIC = core.DURATION_SECONDS

# Grafana units.
BYTES = "bytes"  # IEC: KiB, MiB, GiB
SECONDS = "s"
RATIO = "percentunit"  # 0..1 shown as 0..100 %
OPS = "ops"  # events per second
COUNT = "short"

_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def target(v: View, expr: str, legend: str = "{{instance}}", *, instant: bool = False,
           table: bool = False) -> Dataquery:
    """A Prometheus target on ``${datasource}``; ``table=True`` is an instant table query. The
    legend is written with the default label names (``{{instance}} {{cache}}``)."""
    q = Dataquery().expr(expr).datasource(DS).legend_format(v.legend(legend))
    if table:
        return q.format(pm.PromQueryFormat.TABLE).instant()
    return q.instant() if instant else q.range()


# -- variables ----------------------------------------------------------------------------


def _query_variable(name: str, query: str) -> QueryVariable:
    all_option = dm.VariableOption(selected=True, text="All", value="$__all")
    return (
        QueryVariable(name)
        .label(name)
        .datasource(DS)
        .query(query)
        .multi(True)
        .include_all(True)
        .all_value(".+")
        .current(all_option)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NATURAL_ASC)
    )


def label_variable(v: View, component: str, metric_name: str) -> QueryVariable:
    """A multi-value variable listing a component label of ``metric_name``, filtered by the
    target variables, e.g. ``label_variable(v, "cache", cache.ITEMS)``; panels filter by it
    with ``v.metric(name, "cache")``."""
    label = v.label(component)
    return _query_variable(label, f"label_values({v.metric(metric_name)}, {label})")


def _variables(v: View) -> list[Any]:
    """The data source variable and one variable per target label, each filtered by the ones
    before it (``job``, then ``instance`` of the chosen jobs)."""
    datasource = (
        DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(dm.VariableOption(selected=True, text=v.datasource_name,
                                   value=v.datasource_uid))
    )
    out: list[Any] = [datasource]
    for i, label in enumerate(v.target_labels):
        matchers = [f'{t}=~"${t}"' for t in v.target_labels[:i]]
        if v.selector:
            matchers.insert(0, v.selector)
        sel = f"{{{', '.join(matchers)}}}" if matchers else ""
        out.append(_query_variable(label, f"label_values({VARIABLE_METRIC}{sel}, {label})"))
    return out


# -- dashboard and panels -----------------------------------------------------------------


def dashboard(v: View, key: str, title: str, description: str, *,
              extra_variables: Iterable[Any] = ()) -> Dashboard:
    """A dashboard with memexport's defaults: its uid from the config (``dashboards.<key>``),
    tag, variables, time range, and a drop-down of the other memexport dashboards."""
    d = (
        Dashboard(title)
        .uid(getattr(v.uids, key))
        .description(description)
        .tags(["memexport"])
        .editable()
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            DashboardLink("memexport")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["memexport"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for var in [*_variables(v), *extra_variables]:
        d = d.with_variable(var)
    return d


def link(v: View, key: str, title: str, tooltip: str) -> DashboardLink:
    """A link to another memexport dashboard (``dashboards.<key>``), keeping variables/time."""
    return (DashboardLink(title).type(dm.DashboardLinkType.LINK)
            .url(f"/d/{getattr(v.uids, key)}").tooltip(tooltip).include_vars(True)
            .keep_time(True))


def row(title: str) -> Row:
    """A (expanded) row: the panels added after it belong to it."""
    return Row(title)


def rows(d: Dashboard, *sections: tuple[str, Sequence[Any]]) -> Dashboard:
    """``d`` with a row per ``(title, panels)``, each followed by its panels."""
    for title, panels in sections:
        d = d.with_row(row(title))
        for panel in panels:
            d = d.with_panel(panel)
    return d


def thresholds(*steps: tuple[float, str], base: str = "green") -> ThresholdsConfig:
    """Absolute thresholds: ``thresholds((0.8, "orange"), (0.9, "red"))``."""
    return (
        ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(None, base)] + [dm.Threshold(val, c) for val, c in steps])
    )


def dashed(regex: str) -> tuple[str, list[dm.DynamicConfigValue]]:
    """An override drawing the series whose name matches ``regex`` dashed (limits, budgets)."""
    return regex, [
        dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
        dm.DynamicConfigValue("custom.fillOpacity", 0),
    ]


def right_axis(regex: str, unit: str) -> tuple[str, list[dm.DynamicConfigValue]]:
    """An override drawing the series whose name matches ``regex`` on a right axis in ``unit``
    (a count beside bytes)."""
    return regex, [dm.DynamicConfigValue("unit", unit),
                   dm.DynamicConfigValue("custom.axisPlacement", "right")]


def timeseries(
    title: str,
    targets: Sequence[Dataquery],
    unit: str,
    *,
    description: str = "",
    w: int = 12,
    h: int = 8,
    min_value: float | None = 0,
    max_value: float | None = None,
    steps: ThresholdsConfig | None = None,
    overrides: Sequence[tuple[str, list[dm.DynamicConfigValue]]] = (),
) -> ts_builder.Panel:
    """A time series panel with a table legend (last, max) sorted by the last value."""
    p = (
        ts_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .unit(unit)
        .span(w)
        .height(h)
        .fill_opacity(10)
        .line_width(1)
        .show_points(cm.VisibilityMode.NEVER)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
            .sort_by("Last *")
            .sort_desc(True)
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(
            cm.SortOrder.DESCENDING))
    )
    if min_value is not None:
        p = p.min(min_value)
    if max_value is not None:
        p = p.max(max_value)
    if steps is not None:
        p = p.thresholds(steps).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    for regex, props in overrides:
        p = p.override_by_regexp(regex, props)
    return p


def stat(
    title: str,
    targets: Sequence[Dataquery],
    unit: str,
    *,
    description: str = "",
    w: int = 4,
    h: int = 4,
    steps: ThresholdsConfig | None = None,
    decimals: float | None = None,
) -> stat_builder.Panel:
    """A single-value panel showing the last value, coloured by ``steps``."""
    p = (
        stat_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .unit(unit)
        .span(w)
        .height(h)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(steps if steps is not None else thresholds())
    )
    if decimals is not None:
        p = p.decimals(decimals)
    return p


def table(
    title: str,
    targets: Sequence[Dataquery],
    unit: str,
    *,
    description: str = "",
    w: int = 12,
    h: int = 8,
    hide: Sequence[str] = ("Time", "job"),
    rename: dict[str, str] | None = None,
    sort_by: str = "Value",
) -> table_builder.Panel:
    """A table of instant query results (targets with ``table=True``), sorted descending.

    ``hide`` drops columns, ``rename`` renames them (``{"Value": "bytes"}``).
    """
    rename = rename or {}
    organize = dm.DataTransformerConfig(
        id_val="organize",
        options={"excludeByName": {name: True for name in hide}, "renameByName": rename},
    )
    return (
        table_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .unit(unit)
        .span(w)
        .height(h)
        .with_transformation(organize)
        .sort_by([cb.TableSortByFieldState().display_name(rename.get(sort_by, sort_by))
                  .desc(True)])
    )


# -- rendering ----------------------------------------------------------------------------


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels") or [])


def _help(panel: dict[str, Any]) -> str:
    """The HELP text of the kind metrics the panel's queries read, as a Markdown list."""
    names: dict[str, None] = {}
    for t in panel.get("targets") or []:
        for name in _NAME.findall(_STRING.sub('""', t.get("expr", ""))):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base in HELP:
                names[base] = None
    return "\n".join(f"- `{n}`: {HELP[n]}" for n in names)


def _fix_table(panel: dict[str, Any]) -> None:
    """The footer where Grafana's schema has it now (the SDK writes the old options.footer)."""
    footer = panel.get("options", {}).pop("footer", None) or {}
    custom = panel.setdefault("fieldConfig", {}).setdefault("defaults", {}).setdefault(
        "custom", {})
    custom["footer"] = {"reducers": list(footer.get("reducer") or [])}


def render(builder: Dashboard) -> dict[str, Any]:
    """Build ``builder`` into a JSON-able dict with stable panel ids and target refIds."""
    d: dict[str, Any] = json.loads(JSONEncoder().encode(builder.build()))
    for n, panel in enumerate(_panels(d.get("panels") or []), start=1):
        panel["id"] = n
        for i, t in enumerate(panel.get("targets") or []):
            t["refId"] = chr(ord("A") + i)
            t.setdefault("datasource", {"type": "prometheus", "uid": "${datasource}"})
        if metrics := _help(panel):
            panel["description"] = f"{panel.get('description', '')}\n\n{metrics}".strip()
        if panel.get("type") == "table":
            _fix_table(panel)
    for var in d.get("templating", {}).get("list") or []:
        if var.get("type") != "interval":
            for key in ("auto", "auto_count", "auto_min"):
                var.pop(key, None)
    d.setdefault("annotations", {})["list"] = [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
    ]
    return d
