"""memexport's Grafana dashboards, generated from the assets config: one module per dashboard
(``build(view) -> dict``), metric names from the kinds' tables and the process modules,
selectors, label names, UIDs and data source from the same config as the alert rules, so an
alert's ``dashboard_url`` always opens a dashboard that has its variables.

How an installed package renders them, and why. The dashboards are built with
grafana-foundation-sdk (DESIGN.md: dashboards as code with the SDK, an exact pinned version),
a 8 MB package of generated builders that an app embedding memexport should not carry. So the
SDK is the ``dashboards`` extra (``pip install 'memexport[dashboards]'``), and the wheel ships
the dashboards' JSON for the default settings (the committed ``grafana/dashboards/``, drift
tested against this code). ``render_dashboards(cfg)`` renders with the SDK when it is
installed; without it, it returns the shipped JSON when every dashboard-affecting setting
(:class:`~memexport.assets.dashboards.view.View`: ``target_labels``, ``labels.*``,
``selector``, ``dashboards.*``, ``grafana.datasource_*``) has its default, and otherwise raises
:class:`DashboardsUnavailable` naming those settings and the extra. Thresholds, runbook and
Grafana URLs and the rest of the config do not change the dashboards, so tuning the alerts
never needs the SDK.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
from typing import Any

from memexport.assets.config import Config
from memexport.assets.dashboards.view import View
from memexport.assets.shipped import shipped
from memexport.assets.values import ConfigError

__all__ = ["DASHBOARDS", "DashboardsUnavailable", "View", "build_dashboards", "dumps",
           "render_dashboards", "view_changes"]

#: The dashboard modules, by file stem (``grafana/dashboards/<stem>.json``).
DASHBOARDS = ("agents", "caches", "memory", "pools", "process")
_VIEW_KEYS = {"target_labels": "target_labels", "labels": "labels", "selector": "selector",
              "uids": "dashboards", "datasource_uid": "grafana.datasource_uid",
              "datasource_name": "grafana.datasource_name"}


class DashboardsUnavailable(ConfigError):
    """The dashboards for these settings need grafana-foundation-sdk, which is not installed."""


def dumps(dashboard: dict[str, Any]) -> str:
    """The committed form of a dashboard: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def view_changes(cfg: Config) -> list[str]:
    """The dashboard-affecting settings of ``cfg`` that differ from the defaults."""
    mine, default = View.of(cfg), View.of(Config())
    out = []
    for f in dataclasses.fields(View):
        a, b = getattr(mine, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(a):
            out += [f"{_VIEW_KEYS[f.name]}.{g.name}" for g in dataclasses.fields(a)
                    if getattr(a, g.name) != getattr(b, g.name)]
        elif a != b:
            out.append(_VIEW_KEYS[f.name])
    return out


def sdk_installed() -> bool:
    return importlib.util.find_spec("grafana_foundation_sdk") is not None


def build_dashboards(cfg: Config | None = None) -> dict[str, dict[str, Any]]:
    """``{stem: dashboard JSON}`` rendered with grafana-foundation-sdk (ImportError without)."""
    view = View.of(cfg or Config())
    out: dict[str, dict[str, Any]] = {}
    for stem in DASHBOARDS:
        module = importlib.import_module(f"memexport.assets.dashboards.{stem}")
        out[stem] = module.build(view)
    return out


def render_dashboards(cfg: Config | None = None) -> dict[str, str]:
    """``{file name: JSON text}`` of every dashboard for ``cfg`` (see the module docstring)."""
    cfg = cfg or Config()
    if sdk_installed():
        return {f"{stem}.json": dumps(d) for stem, d in build_dashboards(cfg).items()}
    changed = view_changes(cfg)
    files = {f"{stem}.json": shipped(f"grafana/dashboards/{stem}.json") for stem in DASHBOARDS}
    if not changed and all(files.values()):
        return {name: path.read_text(encoding="utf-8")
                for name, path in files.items() if path is not None}
    why = (f"{', '.join(changed)} differ from the defaults" if changed
           else "this installation ships no dashboards")
    raise DashboardsUnavailable(
        f"the dashboards for these settings need grafana-foundation-sdk ({why}; the shipped "
        f"dashboards are for the default settings): pip install 'memexport[dashboards]'")
