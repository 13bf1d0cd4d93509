"""Moved to :mod:`memexport.assets.dashboards.queries` (standard library only); this name stays
for scripts that put ``grafana/`` on ``sys.path``. ``load_dashboards()`` reads
``grafana/dashboards/`` by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memexport.assets.dashboards import queries as _queries
from memexport.assets.dashboards.queries import iter_panels, panel_queries, substitute

__all__ = ["DASHBOARDS_DIR", "iter_panels", "load_dashboards", "panel_queries", "substitute"]

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "dashboards"


def load_dashboards(directory: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """The committed dashboards: ``{file stem: dashboard JSON}`` (e.g. ``"process"``)."""
    return _queries.load_dashboards(DASHBOARDS_DIR if directory is None else directory)
