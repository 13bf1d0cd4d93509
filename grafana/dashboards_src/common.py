"""Shared helpers for memexport's dashboards: variables, selectors, targets, panels, rendering.

Every dashboard uses the same three variables (``datasource``, ``job``, ``instance``), filters
every selector by them (``sel()``), uses ``$__rate_interval`` in every rate (``rate()``) and is
rendered by ``render()`` into a deterministic JSON-able dict (stable panel ids and refIds), so
the committed JSON only changes when the code does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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

__all__ = [
    "BYTES",
    "COUNT",
    "DATASOURCE_NAME",
    "DATASOURCE_UID",
    "DS",
    "OPS",
    "RATIO",
    "SECONDS",
    "VARIABLE_METRIC",
    "dashboard",
    "dashed",
    "label_variable",
    "metric",
    "rate",
    "render",
    "row",
    "sel",
    "stat",
    "table",
    "target",
    "thresholds",
    "timeseries",
    "variables",
]

# The provisioned Prometheus data source (grafana/provisioning/datasources/memexport.yml);
# the `datasource` variable selects it by default.
DATASOURCE_UID = "memexport-prometheus"
DATASOURCE_NAME = "memexport Prometheus"
# Every panel and target queries the data source chosen in the `datasource` variable.
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
# A series every memexport target exports (the registry records its own read time on every
# scrape): the job and instance variables list the targets that have it.
VARIABLE_METRIC = "memexport_collector_duration_seconds"

# Grafana units.
BYTES = "bytes"  # IEC: KiB, MiB, GiB
SECONDS = "s"
RATIO = "percentunit"  # 0..1 shown as 0..100 %
OPS = "ops"  # events per second
COUNT = "short"


# -- PromQL -------------------------------------------------------------------------------


def sel(*variables: str, extra: str = "") -> str:
    """Label matchers filtering by the dashboard's job and instance (plus ``variables``).

    ``sel("cache")`` gives ``job=~"$job", instance=~"$instance", cache=~"$cache"``; ``extra``
    is appended verbatim (e.g. ``'reason="size"'``).
    """
    parts = ['job=~"$job"', 'instance=~"$instance"']
    parts += [f'{v}=~"${v}"' for v in variables]
    if extra:
        parts.append(extra)
    return ", ".join(parts)


def metric(name: str, *variables: str, extra: str = "") -> str:
    """A metric selector filtered by the dashboard's variables: ``name{job=~"$job", ...}``."""
    return f"{name}{{{sel(*variables, extra=extra)}}}"


def rate(
    name: str,
    *variables: str,
    by: Sequence[str] | None = ("instance",),
    fn: str = "rate",
    agg: str = "sum",
    extra: str = "",
) -> str:
    """``sum by (instance) (rate(name{<sel>}[$__rate_interval]))``.

    ``fn`` may be ``rate``, ``irate`` or ``increase``; ``by=None`` leaves the rate
    unaggregated. The window is always ``$__rate_interval`` (scrape-interval aware).
    """
    if fn not in ("rate", "irate", "increase"):
        raise ValueError(f"fn must be rate, irate or increase, not {fn!r}")
    inner = f"{fn}({metric(name, *variables, extra=extra)}[$__rate_interval])"
    if by is None:
        return inner
    return f"{agg} by ({', '.join(by)}) ({inner})"


def target(
    expr: str,
    legend: str = "{{instance}}",
    *,
    instant: bool = False,
    table: bool = False,
) -> Dataquery:
    """A Prometheus target on ``${datasource}``; ``table=True`` is an instant table query."""
    q = Dataquery().expr(expr).datasource(DS).legend_format(legend)
    if table:
        q = q.format(pm.PromQueryFormat.TABLE).instant()
    elif instant:
        q = q.instant()
    else:
        q = q.range()
    return q


# -- variables ----------------------------------------------------------------------------


def _query_variable(name: str, label: str, query: str) -> QueryVariable:
    all_option = dm.VariableOption(selected=True, text="All", value="$__all")
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .multi(True)
        .include_all(True)
        .all_value(".+")
        .current(all_option)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NATURAL_ASC)
    )


def label_variable(name: str, metric_name: str, label: str | None = None) -> QueryVariable:
    """A multi-value variable listing ``label`` (default: ``name``) of ``metric_name``.

    Filtered by job and instance, e.g. ``label_variable("cache", "memexport_cache_items")``;
    filter panels with ``sel("cache")``.
    """
    label = label or name
    return _query_variable(
        name, label, f'label_values({metric_name}{{{sel()}}}, {label})'
    )


def variables(metric_name: str = VARIABLE_METRIC) -> list[Any]:
    """The three variables every memexport dashboard has: datasource, job, instance."""
    datasource = (
        DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(dm.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )
    job = _query_variable("job", "job", f"label_values({metric_name}, job)")
    instance = _query_variable(
        "instance", "instance", f'label_values({metric_name}{{job=~"$job"}}, instance)'
    )
    return [datasource, job, instance]


# -- dashboard and panels -----------------------------------------------------------------


def dashboard(
    title: str,
    uid: str,
    description: str,
    *,
    extra_variables: Iterable[Any] = (),
    variable_metric: str = VARIABLE_METRIC,
) -> Dashboard:
    """A dashboard with memexport's defaults: tag, variables, time range, links to the others."""
    d = (
        Dashboard(title)
        .uid(uid)
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
    for v in [*variables(variable_metric), *extra_variables]:
        d = d.with_variable(v)
    return d


def row(title: str) -> Row:
    """A (expanded) row: the panels added after it belong to it."""
    return Row(title)


def thresholds(*steps: tuple[float, str], base: str = "green") -> ThresholdsConfig:
    """Absolute thresholds: ``thresholds((0.8, "orange"), (0.9, "red"))``."""
    return (
        ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(None, base)] + [dm.Threshold(v, c) for v, c in steps])
    )


def dashed(regex: str) -> tuple[str, list[dm.DynamicConfigValue]]:
    """An override drawing the series whose name matches ``regex`` dashed (limits, budgets)."""
    return regex, [
        dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
        dm.DynamicConfigValue("custom.fillOpacity", 0),
    ]


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
        options={
            "excludeByName": {name: True for name in hide},
            "renameByName": rename,
        },
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


def _panels(panels: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels") or [])


def render(builder: Dashboard) -> dict[str, Any]:
    """Build ``builder`` into a JSON-able dict with stable panel ids and target refIds."""
    d: dict[str, Any] = json.loads(JSONEncoder().encode(builder.build()))
    for n, panel in enumerate(_panels(d.get("panels") or []), start=1):
        panel["id"] = n
        for i, t in enumerate(panel.get("targets") or []):
            t["refId"] = chr(ord("A") + i)
            t.setdefault("datasource", {"type": "prometheus", "uid": "${datasource}"})
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
