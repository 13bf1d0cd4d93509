"""gunicorn settings: every worker's memexport metrics through one /metrics.

memexport writes each worker's metrics into prometheus_client's multiprocess files; the app
serves them merged (see app.py). Run from this directory:

    export PROMETHEUS_MULTIPROC_DIR=$(mktemp -d)
    gunicorn -c gunicorn.conf.py app:app

and scrape http://127.0.0.1:8000/metrics.
"""

from memexport.exporters.multiprocess import child_exit, on_starting, post_fork  # noqa: F401

bind = "127.0.0.1:8000"
workers = 4
