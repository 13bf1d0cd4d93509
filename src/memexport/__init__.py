"""memexport: memory metrics for long-running multi-agent Python apps.

Wrap the objects that hold memory, start the exporter, and let Prometheus alert rules and
Grafana dashboards (shipped beside this package) watch them.
"""

from memexport.actions import action, start_actions
from memexport.core.budgets import budget
from memexport.core.config import configure
from memexport.core.registry import REGISTRY
from memexport.exporters.otel import use_opentelemetry  # needs opentelemetry only when called
from memexport.exporters.prometheus import (
    MetricsServer,
    make_asgi_app,
    make_wsgi_app,
    start_http_server,
)
from memexport.instrument.kind import uninstrument
from memexport.kinds.agent import agent
from memexport.kinds.cache import cache
from memexport.kinds.cleanup import cleanup
from memexport.kinds.conversation import conversation
from memexport.kinds.pool import pool
from memexport.process.collector import start_collector, stop_collector

__all__ = [
    "REGISTRY",
    "MetricsServer",
    "action",
    "agent",
    "budget",
    "cache",
    "cleanup",
    "configure",
    "conversation",
    "make_asgi_app",
    "make_wsgi_app",
    "pool",
    "start_actions",
    "start_collector",
    "start_http_server",
    "stop_collector",
    "uninstrument",
    "use_opentelemetry",
]
__version__ = "0.1.0"
