"""Files shipped beside the package: the committed dashboards' JSON, the runbook and the
Alertmanager example for the actions webhook.

In a wheel they are package data under ``memexport/assets/shipped/`` (``force-include`` in
pyproject.toml copies ``grafana/dashboards/``, ``alerts/runbook.md`` and
``alerts/alertmanager-actions.yml`` there, keeping their paths); in a source checkout
(editable install, ``PYTHONPATH=src``) they are read from the repository itself.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped"]

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parents[2]  # src/memexport/assets -> the repository


def shipped(relative: str) -> Path | None:
    """The shipped file at ``relative`` (``grafana/dashboards/process.json``), or None."""
    for base in (_HERE / "shipped", _CHECKOUT):
        path = base / relative
        if path.is_file() and (base != _CHECKOUT or (base / "pyproject.toml").is_file()):
            return path
    return None
