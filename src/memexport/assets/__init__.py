"""Assets shipped beside the library, generated from one config: the Prometheus alert rules
(``alerts/*.rules.yml``) now, the Grafana dashboards' selectors and UIDs later.

``render_rules(Config())`` gives the committed files; ``memexport assets rules --config
mine.yml --out DIR`` writes a tuned copy.
"""

from __future__ import annotations

from memexport.assets.config import Config, ConfigError
from memexport.assets.generate import render_rules, write_rules
from memexport.assets.loading import load_config

__all__ = ["Config", "ConfigError", "load_config", "render_rules", "write_rules"]
