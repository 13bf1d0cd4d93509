"""The dashboards' code moved into the package: src/memexport/assets/dashboards/ (see
grafana/README.md). Only ``queries`` stays here, re-exported for scripts and tests that put
``grafana/`` on ``sys.path``."""
