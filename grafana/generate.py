#!/usr/bin/env python3
"""Regenerate the committed dashboards, grafana/dashboards/*.json, from the package's code
(src/memexport/assets/dashboards/, grafana-foundation-sdk from the dev extra).

    python grafana/generate.py          # (re)write grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 listing files that differ from the code

The same as ``memexport assets dashboards --out grafana/dashboards`` (or ``--check``), with
the default settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"


def main(argv: list[str] | None = None) -> int:
    from memexport.assets.cli import main as assets_main

    args = list(sys.argv[1:] if argv is None else argv)
    mode = "--check" if "--check" in args else "--out"
    return assets_main(["dashboards", mode, str(DASHBOARDS_DIR)])


if __name__ == "__main__":
    sys.exit(main())
