"""Regenerate every generated asset the repository commits, from the default config:
alerts/*.rules.yml, alerts/alertmanager.yml, grafana/dashboards/*.json,
grafana/provisioning/{datasources,dashboards}/memexport.yml and
deploy/kubernetes/prometheusrule.yaml (memexport.assets.layout.REPO).

    PYTHONPATH=src python tools/assets.py           # write what differs (never deletes)
    PYTHONPATH=src python tools/assets.py --check   # exit 1 listing what differs or is stale

The tests fail when a committed copy drifts (tests/test_alerts_assets.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    from memexport.assets.config import Config
    from memexport.assets.files import differences, write_files
    from memexport.assets.layout import REPO, render_layout

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 on a difference")
    args = p.parse_args(argv)
    files = render_layout(Config(), ROOT, REPO)
    if args.check:
        diff = differences(ROOT, files, REPO.stale)
        for line in diff:
            print(line)
        return 1 if diff else 0
    for name in write_files(ROOT, files):
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
