"""Sources of memexport's Grafana dashboards (see grafana/README.md).

Every module here except the helper modules (``common``, ``queries`` and names starting with
``_``) is one dashboard: it defines ``build() -> dict`` and ``grafana/generate.py`` writes its
JSON to ``grafana/dashboards/<module>.json``.
"""
